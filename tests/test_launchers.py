"""The Flex templates' thin launchers, run the way the template launcher runs them:
as scripts (``__main__``), in an environment like their job's image.

The per-site image has no torch: here a ``sitecustomize`` module on PYTHONPATH sets
``sys.modules['torch'] = None`` at interpreter start-up (in every Python process
the run starts), so ``import torch`` raises ImportError as if it were not installed.
"""
import ast
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import savedmodel_builders
import site_job_data
from test_templates import JOB_EXTRAS
from test_templates import JOBS
from tests_support import read_jsonl

pytestmark = pytest.mark.e2e

REPO = pathlib.Path(__file__).resolve().parents[1]
HELP_MARKERS = {
    'site_predictions': ('usage: site-predictions', '--model_root'),
    'detect_images': ('usage: detect-images', '--score_threshold')
}
_NO_TORCH = ('import sys\n'
             "sys.modules['torch'] = None  # import torch: ImportError, as if not installed\n")


def launcher(job) -> pathlib.Path:
  return REPO / 'templates' / job / 'main.py'


def run_launcher(job, args, tmp_path, *, torch_installed):
  """python templates/<job>/main.py ARGS in a fresh process, from tmp_path."""
  path = [str(REPO)]
  if not torch_installed:
    blocker = tmp_path / 'no_torch'
    blocker.mkdir(exist_ok=True)
    (blocker / 'sitecustomize.py').write_text(_NO_TORCH)
    path.insert(0, str(blocker))
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
  return subprocess.run([sys.executable, str(launcher(job)), *args],
                        cwd=tmp_path,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=900)


@pytest.mark.parametrize('job', JOBS)
def test_launchers_are_thin(job):
  """Nothing defined in __main__ (nothing Beam could pickle by value): an import
  of the installed job's main and the call."""
  tree = ast.parse(launcher(job).read_text())
  assert not [
      n for n in ast.walk(tree)
      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
  ]
  imports = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
  assert [(n.module, [a.name for a in n.names])
          for n in imports] == [(f'beam_jobs.{job}', ['main'])]
  guard = tree.body[-1]
  assert isinstance(guard, ast.If) and ast.unparse(guard.test) == "__name__ == '__main__'"
  assert [ast.unparse(s) for s in guard.body] == ['sys.exit(main())']


@pytest.mark.parametrize('job', JOBS)
def test_launchers_print_their_jobs_help_in_an_image_like_environment(job, tmp_path):
  result = run_launcher(job, ['--help'], tmp_path, torch_installed='detect' in JOB_EXTRAS[job])
  assert result.returncode == 0, result.stderr[-3000:]
  for marker in HELP_MARKERS[job]:
    assert marker in result.stdout


def test_detection_launcher_fails_without_torch(tmp_path):
  """Control: the blocker works, and the detection job does need the detect extra."""
  assert 'detect' in JOB_EXTRAS['detect_images']
  result = run_launcher('detect_images', ['--help'], tmp_path, torch_installed=False)
  assert result.returncode != 0
  assert "ModuleNotFoundError: import of torch halted" in result.stderr


def test_site_launcher_runs_a_tiny_job_without_torch(tmp_path):
  assert JOB_EXTRAS['site_predictions'] == set()
  model = savedmodel_builders.save_linear(str(tmp_path / 'models' / 'lin-a' / '1'), [1.0, 2.0, 3.0],
                                          0.5)
  good = [r for r in site_job_data.GOOD_ROWS if r['site_id'] == 'lin-a']
  bad = {
      '{"site_id": "lin-a", "rid": ': 'bad_json',
      json.dumps({
          'site_id': 'nope',
          'rid': 'nomodel',
          'x': [1, 2, 3]
      }): 'no_model',
      json.dumps({
          'site_id': 'lin-a',
          'rid': 'nox',
          'y': [1, 2, 3]
      }): 'missing_feature'
  }
  (tmp_path / 'input').mkdir()
  lines = [json.dumps(good[0]), *bad, *(json.dumps(r) for r in good[1:])]
  (tmp_path / 'input' / 'part.jsonl').write_text('\n'.join(lines) + '\n')
  out = tmp_path / 'out'
  result = run_launcher('site_predictions', [
      f'--input={tmp_path}/input/*.jsonl', f'--model_root={tmp_path}/models', f'--output={out}',
      '--key_field=rid', '--max_failed_fraction=1'
  ],
                        tmp_path,
                        torch_installed=False)
  assert result.returncode == 0, result.stderr[-3000:]

  predictions = {p['key']: p for p in read_jsonl(out / 'predictions')}
  assert sorted(predictions) == sorted(r['rid'] for r in good)
  for row in good:
    expected = savedmodel_builders.call_directly(model, row)
    assert predictions[row['rid']]['instance'] == row
    np.testing.assert_allclose(predictions[row['rid']]['prediction']['y'], expected['y'], rtol=1e-6)
  letters = read_jsonl(out / 'errors')
  assert sorted(l['reason'] for l in letters) == sorted(bad.values())
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['records_read'] == len(lines)
  assert summary['predictions_written'] == len(good)
  assert summary['failed_total'] == len(bad) and summary['reconciled'] is True
