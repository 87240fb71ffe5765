"""--help answers at once: printed from the light flag modules, before Beam, TensorFlow or
torch is imported, listing exactly the flags Beam accepts for the job, with the library's
defaults, the required flags marked, and an example."""
import argparse
import json
import os
import pathlib
import subprocess
import sys

import pytest
from apache_beam.io.filesystem import CompressionTypes

from beam_jobs import cli
from beam_jobs import detect_images
from beam_jobs import flags_detect
from beam_jobs import flags_site
from beam_jobs import site_predictions
from beam_jobs.io_options import ConsoleOptions
from beam_jobs.io_options import JobIOOptions
from models.detector import yolo_handler
from models.site import instance_config
from models.site import pool
from transforms.detection import image_decode
from transforms.site import bigquery_output
from transforms.site import file_list
from transforms.site import grouping
from transforms.site import prediction_output
from transforms import text_lines

REPO = pathlib.Path(__file__).resolve().parents[1]
HEAVY = ('apache_beam', 'tensorflow', 'torch', 'numpy', 'models', 'transforms', 'common',
         'google.protobuf', 'google.auth', 'google.api_core', 'google.cloud.storage')
JOBS = {
    'site_predictions': (cli.SITE, site_predictions, site_predictions.SitePredictionOptions),
    'detect_images': (cli.DETECT, detect_images, detect_images.DetectImagesOptions),
}

# How each way of starting a job is run, then what it imported.
_PROBE = r'''
import json, runpy, sys
how, job = sys.argv[1], sys.argv[2]
sys.argv = [job, '--help']
try:
  if how == 'module':
    runpy.run_module('beam_jobs.' + job, run_name='__main__', alter_sys=True)
  elif how == 'script':
    runpy.run_path('beam_jobs/' + job + '.py', run_name='__main__')
  else:
    from beam_jobs import cli
    sys.exit(getattr(cli, job)())
except SystemExit as e:
  code = e.code
sys.stderr.write(json.dumps({'code': code, 'modules': sorted(sys.modules)}))
'''


@pytest.mark.parametrize('how', ['module', 'script', 'console'])
@pytest.mark.parametrize('job', JOBS)
def test_help_imports_nothing_heavy(job, how):
  env = dict(os.environ, PYTHONPATH=str(REPO))
  proc = subprocess.run([sys.executable, '-c', _PROBE, how, job],
                        cwd=REPO,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=120,
                        check=False)
  report = json.loads(proc.stderr.strip().splitlines()[-1])
  assert report['code'] == 0, proc.stderr
  heavy = [
      m for m in report['modules'] if m in HEAVY or m.startswith(tuple(h + '.' for h in HEAVY))
  ]
  assert not heavy
  assert proc.stdout.startswith(f'usage: {JOBS[job][0].prog} ')
  assert 'example:' in proc.stdout


def _option_strings(parser):
  return {s for action in parser._actions for s in action.option_strings}  # pylint: disable=protected-access


@pytest.mark.parametrize('job', JOBS)
def test_help_lists_exactly_the_flags_beam_accepts(job):
  spec, _, options_class = JOBS[job]
  beam_side = argparse.ArgumentParser()
  for cls in (JobIOOptions, ConsoleOptions, options_class):
    cls._add_argparse_args(beam_side)  # pylint: disable=protected-access
  assert _option_strings(cli.help_parser(spec)) == _option_strings(beam_side)
  defaults = {a.dest: a.default for a in beam_side._actions}  # pylint: disable=protected-access
  shown = {a.dest: a.default for a in cli.help_parser(spec)._actions}  # pylint: disable=protected-access
  assert shown == defaults


@pytest.mark.parametrize('job', JOBS)
def test_the_jobs_main_prints_the_same_help(job, capsys):
  spec, module, _ = JOBS[job]
  assert module.main(['--help']) == 0
  via_module = capsys.readouterr().out
  assert cli.console(spec, ['--help']) == 0
  assert capsys.readouterr().out == via_module


def test_site_help_marks_required_flags_and_shows_defaults(capsys):
  assert cli.site_predictions(['--input=x', '--help']) == 0
  text = capsys.readouterr().out
  usage = text.split('\n\n', 1)[0]
  for flag in ('--input=', '--input_table=', '--input_query=', '--model_root=', '--output='):
    assert flag in usage
  flat = ' '.join(text.split())
  assert '--model_root DIR (required)' in flat
  assert '--output DIR (required)' in flat
  assert 'required: exactly one of --input, --input_table, --input_query' in flat
  assert f'(default: {grouping.DEFAULT_ROWS_PER_CHUNK})' in flat
  assert f'(default: {pool.DEFAULT_MAX_MODELS})' in flat
  assert f'(default: {pool.DEFAULT_MAX_BYTES >> 20})' in flat
  assert f'(default: {text_lines.DEFAULT_MAX_LINE_BYTES})' in flat
  assert "site-predictions --input='readings/*.jsonl' --model_root=models/" in text
  assert 'exit status: 0 run ok; 1 run failed' in flat


def test_detect_help_marks_required_flags_and_shows_defaults(capsys):
  assert cli.detect_images(['-h']) == 0
  flat = ' '.join(capsys.readouterr().out.split())
  assert '--input DIR (required)' in flat and '--output DIR (required)' in flat
  assert 'model (required: --model, or --model_config, --model_weights and --class_names)' in flat
  assert f'(default: {yolo_handler.DEFAULT_SCORE_THRESHOLD})' in flat
  assert f'(default: {image_decode.DEFAULT_MAX_IMAGE_PIXELS})' in flat
  assert 'detect-images --input=images/ --output=out/run-1 --model_config=yolov3.cfg' in flat


# Each light flag module's constant and the library's it repeats: (light module, name,
# library module, name).
LIGHT_CONSTANTS = [
    (flags_site, 'DEFAULT_MAX_MODELS', pool, 'DEFAULT_MAX_MODELS'),
    (flags_site, 'DEFAULT_MAX_BYTES', pool, 'DEFAULT_MAX_BYTES'),
    (flags_site, 'DEFAULT_ROWS_PER_CHUNK', grouping, 'DEFAULT_ROWS_PER_CHUNK'),
    (flags_site, 'DEFAULT_MAX_LINE_BYTES', text_lines, 'DEFAULT_MAX_LINE_BYTES'),
    (flags_site, 'JSONL', prediction_output, 'JSONL'),
    (flags_site, 'AIPLATFORM', prediction_output, 'AIPLATFORM'),
    (flags_site, 'OUTPUT_FORMATS', prediction_output, 'OUTPUT_FORMATS'),
    (flags_site, 'FILE_LOADS', bigquery_output, 'FILE_LOADS'),
    (flags_site, 'WRITE_METHODS', bigquery_output, 'WRITE_METHODS'),
    (flags_site, 'INPUT_FORMATS', file_list, 'INPUT_FORMATS'),
    (flags_site, 'LISTED_FORMATS', file_list, 'FORMATS'),
    (flags_site, 'INSTANCE_TYPES', instance_config, 'INSTANCE_TYPES'),
    (flags_detect, 'DEFAULT_BATCH_SIZE', yolo_handler, 'DEFAULT_BATCH_SIZE'),
    (flags_detect, 'DEFAULT_SCORE_THRESHOLD', yolo_handler, 'DEFAULT_SCORE_THRESHOLD'),
    (flags_detect, 'DEFAULT_IOU_THRESHOLD', yolo_handler, 'DEFAULT_IOU_THRESHOLD'),
    (flags_detect, 'DEFAULT_MAX_DETECTIONS', yolo_handler, 'DEFAULT_MAX_DETECTIONS'),
    (flags_detect, 'DEVICES', yolo_handler, 'DEVICES'),
    (flags_detect, 'DEFAULT_MAX_IMAGE_PIXELS', image_decode, 'DEFAULT_MAX_IMAGE_PIXELS'),
]


@pytest.mark.parametrize('light, name, library, library_name',
                         LIGHT_CONSTANTS,
                         ids=[f'{light.__name__}.{name}' for light, name, _, _ in LIGHT_CONSTANTS])
def test_light_defaults_are_the_librarys(light, name, library, library_name):
  assert getattr(light, name) == getattr(library, library_name)


def test_light_compressions_are_beams():
  assert set(
      flags_site.COMPRESSIONS) == {v
                                   for k, v in vars(CompressionTypes).items() if k.isupper()}


def test_console_entry_runs_the_job_with_its_exit_codes(tmp_path, capsys):
  assert cli.site_predictions(
      [f'--input={tmp_path}/none/*.jsonl', f'--model_root={tmp_path}',
       f'--output={tmp_path}/out']) == 2
  assert capsys.readouterr().err == f"error: --input: no files match '{tmp_path}/none/*.jsonl'\n"
  assert cli.detect_images(['--score_treshold=0.3']) == 2
  assert capsys.readouterr().err == (
      'error: unknown flag --score_treshold (did you mean --score_threshold?)\n')
  assert cli.site_predictions(['--log_level=LOUD']) == 2
  assert capsys.readouterr().err == (
      "error: --log_level: invalid choice: 'LOUD' (choose from 'DEBUG', 'INFO', 'WARNING', "
      "'ERROR')\n")


@pytest.mark.parametrize(
    'args, here', [([], True), (['--runner=DirectRunner'], True),
                   (['--runner', 'FnApiRunner'], True), (['--direct_running_mode=in_memory'], True),
                   (['--direct_running_mode=multi_processing', '--direct_num_workers=2'], False),
                   (['--direct_running_mode', 'multi_processing'], False),
                   (['--runner=DataflowRunner'], False), (['--runner=PrismRunner'], False)])
def test_workers_run_in_the_launcher_only_on_the_in_process_runner(args, here):
  assert cli.workers_run_here(args) is here
