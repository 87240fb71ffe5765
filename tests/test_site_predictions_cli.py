"""Launch-time validation: user mistakes fail before the pipeline runs, naming the flag."""
import gzip
import subprocess
import sys

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions

from beam_jobs import runtime
from beam_jobs import site_predictions
from beam_jobs import usage
from common import paths


@pytest.fixture
def inputs(tmp_path):
  (tmp_path / 'in').mkdir()
  (tmp_path / 'in' / 'a.jsonl').write_text('{"site_id": "a"}\n')
  (tmp_path / 'in' / 'b.jsonl.gzip').write_bytes(gzip.compress(b'{"site_id": "a"}\n'))
  (tmp_path / 'models' / 'a').mkdir(parents=True)
  return tmp_path


@pytest.mark.parametrize('args,flag,words', [
    (['--input={t}/in/*.csv'], '--input', 'no files match'),
    (['--input={t}/in/*.jsonl', '--input_table=p:d.t'], '--input', 'exactly one'),
    ([], '--input', 'exactly one'),
    (['--input_table=not a table'], '--input_table', 'PROJECT:DATASET.TABLE'),
    (['--input={t}/in/*.jsonl', '--model_root={t}/nowhere'], '--model_root', 'does not exist'),
    (['--input={t}/in/*.jsonl', '--model_version=latest'], '--model_version', 'not an integer'),
    (['--input={t}/in/*.jsonl', '--rows_per_chunk=0'], '--rows_per_chunk', 'at least 1'),
    (['--input={t}/in/*.jsonl', '--key_field='], '--key_field', 'must not be empty'),
    (['--input={t}/in/*'], '--input_compression', 'b.jsonl.gzip ends in .gzip (gzip) but'),
])
def test_usage_errors_name_the_flag(inputs, capsys, args, flag, words):
  argv = [a.format(t=inputs) for a in args]
  if not any(a.startswith('--model_root') for a in argv):
    argv.append(f'--model_root={inputs}/models')
  argv.append(f'--output={inputs}/out')
  assert site_predictions.main(argv) == 2
  err = capsys.readouterr().err
  assert err.startswith(f'error: {flag}:') and words in err
  assert not (inputs / 'out').exists()


@pytest.mark.parametrize('check, storage_call, message', [
    (usage.require_matches, 'match', "--input: cannot list 'gs://b/in/*': refused"),
    (usage.require_exists, 'exists', "--input: cannot read 'gs://b/in/*': refused"),
])
def test_a_storage_error_is_a_usage_error_naming_the_flag(monkeypatch, check, storage_call,
                                                          message):

  def refuse(path):
    raise OSError('refused')

  monkeypatch.setattr(paths, storage_call, refuse)
  with pytest.raises(usage.UsageError) as raised:
    check('input', 'gs://b/in/*')
  assert str(raised.value) == message and raised.value.flag == 'input'


def test_console_entry_exits_2_with_one_line(inputs):
  proc = subprocess.run([
      sys.executable, '-m', 'beam_jobs.site_predictions', f'--input={inputs}/none/*.jsonl',
      f'--model_root={inputs}/models', f'--output={inputs}/out'
  ],
                        capture_output=True,
                        text=True,
                        timeout=600,
                        check=False)
  assert proc.returncode == 2
  assert f"error: --input: no files match '{inputs}/none/*.jsonl'" in proc.stderr


@pytest.mark.parametrize('given,expected', [(None, 'FnApiRunner'), ('DirectRunner', 'FnApiRunner'),
                                            ('PrismRunner', 'PrismRunner'),
                                            ('DataflowRunner', 'DataflowRunner')])
def test_direct_runner_runs_offline_in_process(given, expected):
  options = PipelineOptions([f'--runner={given}'] if given else [])
  assert runtime.choose_runner(options) == expected
  assert options.view_as(StandardOptions).runner == expected


def test_help_lists_the_jobs_flags(capsys):
  assert site_predictions.main(['--help']) == 0
  text = capsys.readouterr().out
  for flag in ('--input', '--input_table', '--model_root', '--output', '--output_format',
               '--output_table', '--rows_per_chunk', '--max_models_per_worker', '--overwrite',
               '--max_failed_fraction'):
    assert flag in text
