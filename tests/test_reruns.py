"""Reruns into the same --output end with exactly one run's files: a used folder is
refused without --overwrite; --overwrite deletes only job outputs, temp files included."""
import json
import pathlib

import pytest

import detect_helpers
import savedmodel_builders
from beam_jobs import detect_images
from beam_jobs import output_folder
from beam_jobs import site_predictions
from beam_jobs.usage import UsageError
from common import paths
from tests_support import read_jsonl


def _files(root: pathlib.Path) -> list:
  return sorted(p.relative_to(root).as_posix() for p in root.rglob('*') if p.is_file())


@pytest.fixture(scope='module')
def layout(tmp_path_factory):
  root = tmp_path_factory.mktemp('reruns')
  savedmodel_builders.save_linear(str(root / 'models' / 'lin' / '1'), [1.0, 2.0], 0.5)
  rows = [{'site_id': 'lin', 'rid': f'r{i}', 'x': [i, 1.0]} for i in range(6)]
  rows.append({'site_id': 'lin', 'rid': 'bad', 'x': 'text'})
  (root / 'in').mkdir()
  (root / 'in' / 'a.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  return root


def _run(layout, out, *extra):
  return site_predictions.main([
      f'--input={layout}/in/*.jsonl', f'--model_root={layout}/models', f'--output={out}',
      '--key_field=rid', '--max_failed_fraction=0.2', *extra
  ])


def _simulate_a_killed_run(out: pathlib.Path) -> None:
  """What a run killed mid-write leaves, on top of an earlier run's files."""
  temp = out / 'errors' / 'beam-temp-errors-xyz'
  temp.mkdir(parents=True, exist_ok=True)
  (temp / 'part').write_text(json.dumps({'reason': 'stale'}) + '\n')
  (out / 'predictions').mkdir(exist_ok=True)
  for shard in range(5):
    (out / 'predictions' / f'predictions-0000{shard}-of-00005.jsonl'
     ).write_text(json.dumps({'key': f'stale{shard}'}) + '\n')
  (out / 'beam-temp-prediction.results-abc').mkdir()
  (out / 'beam-temp-prediction.results-abc' / 'x').write_text('stale')


@pytest.mark.e2e
def test_rerun_with_overwrite_ends_with_exactly_the_new_set(layout, tmp_path, capsys):
  out = tmp_path / 'out'
  assert _run(layout, out) == 0
  _simulate_a_killed_run(out)
  stale = _files(out)

  assert _run(layout, out) == 2
  line = capsys.readouterr().err.strip().splitlines()[-1]
  assert line.startswith(f"error: --output: '{out}' already holds {len(stale)} file(s)")
  assert '--overwrite' in line
  assert _files(out) == stale, 'a refused run changes nothing'

  assert _run(layout, out, '--overwrite') == 0
  summary = json.loads((out / 'summary.json').read_text())
  listed = {paths.relative_to(f, str(out)) for files in summary['outputs'].values() for f in files}
  assert set(_files(out)) == listed | {'summary.json', 'report.html'}
  assert not any('beam-temp' in f or 'of-00005' in f for f in _files(out))
  assert sorted(l['key'] for l in read_jsonl(out / 'predictions')) == [f'r{i}' for i in range(6)]
  assert [l['record']['rid'] for l in read_jsonl(out / 'errors')] == ['bad']
  assert summary['failed_total'] == 1 and summary['reconciled']


@pytest.mark.e2e
def test_overwrite_true_as_templates_pass_it_and_false_as_the_default(layout, tmp_path):
  out = tmp_path / 'out'
  assert _run(layout, out, '--overwrite=false') == 0
  assert _run(layout, out, '--overwrite=false') == 2
  assert _run(layout, out, '--overwrite=true', '--output_format=aiplatform') == 0
  files = _files(out)
  assert not any(f.startswith('predictions/') for f in files)
  assert any(f.startswith('prediction.results-') for f in files)


def test_overwrite_never_deletes_what_no_job_writes(layout, tmp_path, capsys):
  out = tmp_path / 'bucket-root'
  (out / 'predictions').mkdir(parents=True)
  (out / 'predictions' / 'predictions-00000-of-00001.jsonl').write_text('{}\n')
  (out / 'data').mkdir()
  (out / 'data' / 'readings.jsonl').write_text('{}\n')
  (out / 'notes.txt').write_text('mine')
  before = _files(out)
  assert _run(layout, out, '--overwrite') == 2
  line = capsys.readouterr().err.strip().splitlines()[-1]
  assert line.startswith(f"error: --output: '{out}' holds 2 file(s) no job here writes")
  assert f"'{out}/data/readings.jsonl'" in line and 'choose a new or empty folder' in line
  assert _files(out) == before


def test_an_empty_existing_folder_is_fine_and_a_file_is_not(tmp_path):
  (tmp_path / 'empty' / 'sub').mkdir(parents=True)
  output_folder.prepare(str(tmp_path / 'empty'), overwrite=False)
  (tmp_path / 'file').write_text('x')
  with pytest.raises(UsageError, match='is a file'):
    output_folder.prepare(str(tmp_path / 'file'), overwrite=True)


@pytest.mark.parametrize('relative, owned', [
    ('summary.json', True),
    ('report.html', True),
    ('predictions/predictions-0-of-1.jsonl', True),
    ('errors/beam-temp-errors-1/x', True),
    ('beam-temp-prediction.results-9/x', True),
    ('prediction.results-00000-of-00001', True),
    ('prediction.errors_stats-00000-of-00001', True),
    ('annotated/cam1/a-det.jpg', True),
    ('detections/detections-0-of-1.jsonl', True),
    ('sites/lin.html', True),
    ('predictions', False),
    ('summary.json/x', False),
    ('readings.jsonl', False),
    ('data/errors/x', False),
    ('prediction.results', False),
])
def test_what_counts_as_a_job_output(relative, owned):
  assert output_folder.is_owned(relative) is owned


@pytest.mark.gcs
def test_gs_output_rules(gcs_bucket):
  out = f'{gcs_bucket}/runs/day1'
  paths.write_bytes(f'{out}/', b'')  # a console-made "folder"
  output_folder.prepare(out, overwrite=False)  # counts as empty
  paths.write_bytes(f'{out}/errors/beam-temp-errors-1/part', b'x')
  paths.write_bytes(f'{out}/predictions/predictions-00000-of-00002.jsonl', b'{}\n')
  paths.write_bytes(f'{out}/summary.json', b'{}')
  paths.write_bytes(f'{gcs_bucket}/runs/day10/keep.jsonl', b'{}\n')  # a sibling prefix
  with pytest.raises(UsageError, match=r'already holds 3 file\(s\).*--overwrite'):
    output_folder.prepare(out + '/', overwrite=False)
  output_folder.prepare(out, overwrite=True)
  left = sorted(m.path for m in paths.match(f'{gcs_bucket}/**'))
  assert left == [f'{out}/', f'{gcs_bucket}/runs/day10/keep.jsonl']
  with pytest.raises(UsageError, match='no job here writes'):
    output_folder.prepare(f'{gcs_bucket}/runs', overwrite=True)
  assert paths.exists(f'{gcs_bucket}/runs/day10/keep.jsonl')


@pytest.mark.e2e
def test_detection_rerun_replaces_detections_and_annotated_copies(tmp_path, capsys):
  detect_helpers.save(tmp_path / 'in' / 'cam1' / 'coffee.jpg', detect_helpers.coffee()[::2, ::2])
  out = tmp_path / 'out'
  args = ['--input', str(tmp_path / 'in'), '--output', str(out)] + detect_helpers.darknet_flags()
  assert detect_images.main(args) == 0
  (out / 'annotated' / 'cam1' / 'old-det.jpg').write_bytes(b'stale')
  (out / 'detections' / 'detections-00000-of-00003.jsonl').write_text('{"image": "stale"}\n')
  assert detect_images.main(args) == 2
  assert '--overwrite' in capsys.readouterr().err.strip().splitlines()[-1]
  assert detect_images.main(args + ['--overwrite']) == 0
  assert _files(out / 'annotated') == ['cam1/coffee-det.jpg']
  (line, ) = detect_helpers.read_jsonl(out / 'detections')
  assert line['image'].endswith('coffee.jpg')
