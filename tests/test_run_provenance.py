"""What a run says about itself: the model version on every prediction line, the provenance
in ``summary.json``, and a failed remote-style run that still leaves its report."""
import importlib.metadata
import json
import pathlib
import subprocess

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

import detect_helpers
import savedmodel_builders
import site_job_data
from beam_jobs import detect_images
from beam_jobs import provenance
from beam_jobs import runtime
from beam_jobs import site_predictions
from tests_support import read_jsonl

pytestmark = pytest.mark.e2e
REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def model_root(tmp_path_factory):
  root = tmp_path_factory.mktemp('provenance-models')
  savedmodel_builders.build_model_root(str(root))
  return root


@pytest.fixture(scope='module')
def site_run(model_root, tmp_path_factory):
  root = tmp_path_factory.mktemp('provenance-run')
  site_job_data.write_inputs(root / 'input')
  out = root / 'out'
  site_predictions.run([
      f'--input={root}/input/*.jsonl', f'--model_root={model_root}', f'--output={out}',
      '--key_field=rid', '--max_failed_fraction=1', '--rows_per_chunk=2', '--run_id=prov-1'
  ])
  return root, out


def _git(*args):
  """``git -C REPO args``' output, or None where this is not a git checkout."""
  done = subprocess.run(['git', '-C', str(REPO), *args],
                        capture_output=True,
                        text=True,
                        check=False)
  return done.stdout.strip() if done.returncode == 0 else None


def _git_head():
  return _git('rev-parse', 'HEAD')


def _git_dirty():
  if _git_head() is None:
    return None
  return bool(_git('status', '--porcelain', '--untracked-files=no'))


def test_every_prediction_line_names_the_version_folder_it_came_from(site_run):
  _, out = site_run
  lines = read_jsonl(out / 'predictions')
  assert len(lines) == len(site_job_data.GOOD_ROWS)
  expected = {'lin-a': '2', 'lin-b': '10', '42': '1', 'multi': '1', 'echo': '3', 'flat': None}
  assert {(l['site_id'] if isinstance(l['site_id'], str) else str(l['site_id']), l['model_version'])
          for l in lines} == set(expected.items())
  sites = {l['site_id']: l for l in read_jsonl(out / 'sites')}
  for site, version in expected.items():
    assert sites[site]['model_versions'] == ([] if version is None else [version]), site


def test_the_summary_records_input_model_root_code_and_output_flags(site_run, model_root):
  root, out = site_run
  summary = json.loads((out / 'summary.json').read_text())
  recorded = summary['provenance']
  assert recorded['input'] == f'{root}/input/*.jsonl'
  assert recorded['model_root'] == str(model_root)
  assert recorded['model_version'] is None and recorded['model_versions'] is None
  assert recorded['code'] == {
      'distribution': 'beam-batch-inference',
      'version': importlib.metadata.version('beam-batch-inference'),
      'git_commit': _git_head(),
      'git_dirty': _git_dirty()
  }
  flags = recorded['flags']
  assert flags['key_field'] == 'rid' and flags['rows_per_chunk'] == 2
  assert flags['output_format'] == 'jsonl' and flags['site_field'] == 'site_id'
  assert flags['signature'] == 'serving_default' and flags['max_failed_fraction'] == 1.0
  assert flags['output_table'] is None and flags['sites_table'] is None
  assert summary['run_id'] == 'prov-1'


def test_a_pinned_version_and_the_aiplatform_format_are_recorded(model_root, tmp_path):
  (tmp_path / 'in').mkdir()
  row = {'site_id': 'lin-a', 'x': [1.0, 2.0, 3.0]}
  (tmp_path / 'in' / 'a.jsonl').write_text(json.dumps(row) + '\n')
  out = tmp_path / 'out'
  site_predictions.run([
      f'--input={tmp_path}/in/*.jsonl', f'--model_root={model_root}', f'--output={out}',
      '--model_version=1', '--output_format=aiplatform'
  ])
  recorded = json.loads((out / 'summary.json').read_text())['provenance']
  assert recorded['model_version'] == '1' and recorded['flags']['output_format'] == 'aiplatform'
  [result] = [
      json.loads(l) for f in out.glob('prediction.results-*') for l in f.read_text().splitlines()
  ]
  # AI Platform's layout: only the outputs, here of the pinned (older) version.
  expected = savedmodel_builders.call_directly(str(model_root / 'lin-a' / '1'), row)
  assert list(result) == ['y'] and result['y'] == pytest.approx(float(expected['y']), rel=1e-6)
  newest = savedmodel_builders.call_directly(str(model_root / 'lin-a' / '2'), row)
  assert result['y'] != pytest.approx(float(newest['y']), rel=1e-3)


def test_input_of_bigquery_sources_is_named_without_the_query_text():
  options = PipelineOptions(['--input_query=SELECT secret FROM t', '--model_root=m'])
  recorded = provenance.site_job(options.view_as(site_predictions.SitePredictionOptions),
                                 input_path=None,
                                 max_failed_fraction=0.1)
  assert recorded['input'] == 'query'
  options = PipelineOptions(['--input_table=p:d.t', '--model_root=m'])
  recorded = provenance.site_job(options.view_as(site_predictions.SitePredictionOptions),
                                 input_path=None,
                                 max_failed_fraction=0.1)
  assert recorded['input'] == 'bigquery:p:d.t'


def test_code_version_never_fails_without_git(monkeypatch):
  provenance.code_version.cache_clear()
  monkeypatch.setenv('PATH', '/nonexistent')
  try:
    code = provenance.code_version()
    assert code['git_commit'] is None and code['git_dirty'] is None
  finally:
    provenance.code_version.cache_clear()


def _run_as_remote(build, argv, **kwargs):
  """``build`` on the local runner, wired as on Dataflow (``fail_job=True``)."""
  options = runtime.parse_options(argv)
  runtime.choose_runner(options)
  pipeline = beam.Pipeline(options=options)
  build(pipeline, options, fail_job=True, **kwargs)
  pipeline.run().wait_until_finish()


def test_a_failed_remote_site_run_writes_summary_and_report_then_fails(model_root, tmp_path):
  (tmp_path / 'in').mkdir()
  (tmp_path / 'in' / 'a.jsonl').write_text(''.join(
      json.dumps({
          'site_id': 'lin-a',
          'x': 'text'
      }) + '\n' for _ in range(3)))
  out = tmp_path / 'out'
  with pytest.raises(Exception, match=r'run failed: 0 of 3 records predicted'):
    _run_as_remote(
        site_predictions.build_pipeline,
        [f'--input={tmp_path}/in/*.jsonl', f'--model_root={model_root}', f'--output={out}'])
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['status'] == 'failed' and summary['failed'] == {'bad_feature': 3}
  html = (out / 'report.html').read_text()
  assert 'data-stat="failed_total" data-value="3"' in html
  assert len(read_jsonl(out / 'errors')) == 3


def test_a_failed_remote_detection_run_writes_summary_and_report_then_fails(tmp_path):
  (tmp_path / 'in' / 'cam1').mkdir(parents=True)
  (tmp_path / 'in' / 'cam1' / 'a.jpg').write_bytes(b'\xff\xd8\xff\xe0 not really')
  out = tmp_path / 'out'
  argv = ['--input', str(tmp_path / 'in'), '--output', str(out)] + detect_helpers.darknet_flags()
  config = detect_images.validate(runtime.parse_options(argv).view_as(
      detect_images.DetectImagesOptions),
                                  local_runner=True)
  with pytest.raises(Exception, match=r'run failed: 0 of 1 images processed'):
    _run_as_remote(detect_images.build_pipeline, argv, config=config)
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['status'] == 'failed' and summary['images_failed'] == 1
  assert summary['provenance']['input'] == config.pattern
  assert summary['provenance']['model']['model_config'].endswith('.cfg')
  assert summary['provenance']['flags']['max_failed_fraction'] == 0.1
  assert 'data-stat="images_failed" data-value="1"' in (out / 'report.html').read_text()


def test_a_changed_tracked_file_marks_the_commit_dirty(tmp_path, monkeypatch):
  monkeypatch.setenv('GIT_CEILING_DIRECTORIES', str(tmp_path))  # wherever tmp_path lies
  repo = tmp_path / 'checkout'
  (repo / 'pkg').mkdir(parents=True)
  module = repo / 'pkg' / 'job.py'
  module.write_text('x = 1\n')
  assert provenance.git_state(str(module)) == (None, None)  # not a checkout
  git = ['git', '-C', str(repo), '-c', 'user.name=t', '-c', 'user.email=t@example.com']
  subprocess.run([*git, 'init', '-q'], check=True)
  subprocess.run([*git, 'add', '.'], check=True)
  subprocess.run([*git, 'commit', '-qm', 'one'], check=True)
  head = subprocess.run([*git, 'rev-parse', 'HEAD'], check=True, capture_output=True,
                        text=True).stdout.strip()
  assert provenance.git_state(str(module)) == (head, False)
  (repo / 'pkg' / 'notes.txt').write_text('untracked\n')  # not code the commit names
  assert provenance.git_state(str(module)) == (head, False)
  module.write_text('x = 2\n')
  assert provenance.git_state(str(module)) == (head, True)


def test_a_copy_installed_inside_another_checkout_names_no_commit(tmp_path, monkeypatch):
  # pip install (not editable) into a virtual environment inside a user's own project.
  monkeypatch.setenv('GIT_CEILING_DIRECTORIES', str(tmp_path))
  project = tmp_path / 'project'
  installed = project / '.venv' / 'site-packages' / 'beam_jobs'
  installed.mkdir(parents=True)
  (installed / 'provenance.py').write_text('# installed copy\n')
  (project / 'train.py').write_text('pass\n')
  git = ['git', '-C', str(project), '-c', 'user.name=t', '-c', 'user.email=t@example.com']
  subprocess.run([*git, 'init', '-q'], check=True)
  subprocess.run([*git, 'add', 'train.py'], check=True)
  subprocess.run([*git, 'commit', '-qm', 'their project'], check=True)
  assert provenance.git_state(str(installed / 'provenance.py')) == (None, None)
