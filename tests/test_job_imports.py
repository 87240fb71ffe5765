"""What each job's process imports: the per-site job runs without torch, and without what
Beam's GPU ModelManager pulls in (torch, SciPy's optimizers: seconds and hundreds of MiB
per worker process), even where both are installed; detection without torch installed
stops with one line saying what to install.

SciPy itself is absent from the per-site image (tests/test_packaging.py checks the
closure of its requirements); here, where the test requirements install it, TensorFlow
imports ``scipy.sparse`` on ``import tensorflow`` (a guarded import of its own).
"""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

import savedmodel_builders

pytestmark = pytest.mark.e2e

REPO = pathlib.Path(__file__).resolve().parents[1]

# Runs a console script in this process, then reports its exit status and sys.modules.
_RUN_AND_LIST = r'''
import json, sys
if sys.argv[1] == 'no-torch':
  sys.modules['torch'] = None         # import torch: ImportError, as if not installed
from beam_jobs import cli
code = getattr(cli, sys.argv[2])(sys.argv[3:])
with open('modules.json', 'w') as f:
  json.dump({'code': code, 'modules': sorted(sys.modules)}, f)
sys.exit(code)
'''


def _python(tmp_path, code, *args):
  """Runs ``code`` in a fresh interpreter in ``tmp_path``, with this checkout importable."""
  env = dict(os.environ, PYTHONPATH=str(REPO))
  return subprocess.run([sys.executable, '-c', code, *args],
                        cwd=tmp_path,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=600,
                        check=False)


def _run(tmp_path, torch, job, args):
  return _python(tmp_path, _RUN_AND_LIST, torch, job, *args)


def test_a_site_job_run_imports_neither_torch_nor_scipy(tmp_path):
  savedmodel_builders.save_linear(str(tmp_path / 'models' / 'a' / '1'), [1.0, 2.0], 0.5)
  (tmp_path / 'in').mkdir()
  (tmp_path / 'in' / 'x.jsonl').write_text(''.join(
      json.dumps({
          'site_id': 'a',
          'x': [i, 1.0]
      }) + '\n' for i in range(20)))
  out = tmp_path / 'out'
  proc = _run(
      tmp_path, 'torch-installed', 'site_predictions',
      [f'--input={tmp_path}/in/x.jsonl', f'--model_root={tmp_path}/models', f'--output={out}'])
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads((tmp_path / 'modules.json').read_text())
  assert report['code'] == 0
  assert json.loads((out / 'summary.json').read_text())['predictions_written'] == 20
  modules = {m.split('.')[0] for m in report['modules']}
  assert 'tensorflow' in modules and 'apache_beam' in modules  # it did run the job here
  assert 'torch' not in modules
  assert 'keras' not in modules  # TensorFlow imported without its eager Keras load
  assert 'pandas' not in modules  # Beam imported without its eager pandas load (lean_imports)
  assert not [m for m in report['modules'] if m.startswith('scipy.optimize')]
  assert 'Resource module is not available' not in proc.stderr  # Beam's fallback warning
  assert importlib.util.find_spec('torch') is not None  # though torch is installed here


def test_detection_without_torch_says_what_to_install(tmp_path):
  proc = _run(tmp_path, 'no-torch', 'detect_images',
              [f'--input={tmp_path}', f'--output={tmp_path}/out'])
  assert proc.returncode == 2, proc.stderr
  assert proc.stderr.splitlines() == [
      "error: detect-images needs torch, which is not installed: "
      "pip install 'beam-batch-inference[detect]' (see the README's set-up)"
  ]
  assert not (tmp_path / 'out').exists()


# In a fresh interpreter: TensorFlow without Keras, then Keras as usual, exporting a model
# that the job's own loader (models.site) predicts with.
_KERAS_AFTERWARDS = r'''
import sys
import numpy as np
from common import tensorflow_import
tensorflow_import.import_without_keras()
assert 'tensorflow' in sys.modules and 'keras' not in sys.modules, sorted(sys.modules)
assert tensorflow_import.KERAS_EAGER_LOAD not in sys.modules
import keras
inputs = keras.Input(shape=(2,), name='x')
model = keras.Model(inputs, keras.layers.Dense(1, name='y')(inputs))
model.export(sys.argv[1], verbose=False)
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1]).signatures['serving_default']
x = np.array([[1.0, 2.0]], np.float32)
[got] = served(x=tf.constant(x)).values()
np.testing.assert_array_equal(got.numpy(), model.predict(x, verbose=0))
print('ok')
'''


def test_tensorflow_without_keras_leaves_keras_importable_afterwards(tmp_path):
  proc = _python(tmp_path, _KERAS_AFTERWARDS, str(tmp_path / 'm'))
  assert proc.returncode == 0 and proc.stdout.strip() == 'ok', proc.stderr[-3000:]


# In a fresh interpreter: validate and build the per-site pipeline; TensorFlow stays out of
# the launching process until a model loads (on Dataflow and in multi-process local runs,
# that is never: the workers load the models).
_BUILD_ONLY = r'''
import json, sys
from apache_beam.testing.test_pipeline import TestPipeline
from beam_jobs import runtime
from beam_jobs import site_predictions
from beam_jobs.site_validation import validate
options = runtime.parse_options(sys.argv[1:])
plan = validate(options.view_as(site_predictions.SitePredictionOptions))
site_predictions.build_pipeline(TestPipeline(options=options), options, plan=plan)
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))))
'''


@pytest.mark.parametrize('input_format', ['jsonl', 'tfrecord', 'csv'])
def test_building_the_site_pipeline_imports_no_tensorflow(tmp_path, input_format):
  savedmodel_builders.save_linear(str(tmp_path / 'models' / 'a' / '1'), [1.0, 2.0], 0.5)
  (tmp_path / f'in.{input_format}').write_bytes(b'')
  proc = _python(tmp_path, _BUILD_ONLY, f'--input={tmp_path}/in.{input_format}',
                 f'--model_root={tmp_path}/models', f'--output={tmp_path}/out',
                 f'--input_format={input_format}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
