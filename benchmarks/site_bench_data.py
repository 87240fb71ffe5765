"""Benchmark data for the per-site job: thousands of site SavedModels and their rows.

Exporting a Keras model takes about a second (and a fresh process about ten),
so 3,000 separate trainings are out of reach. What varies between real
trainings of one architecture is (1) the weights and (2) the order in which
Keras 3 lays out the exported graph's variables, which differs per process.
Both are reproduced cheaply:

1. a few "trainings" per architecture are exported, each in its own fresh
   Python process (so their variable orders genuinely differ), with
   different weights;
2. each site's SavedModel is a copy of one training's export whose variables
   checkpoint is rewritten with new values under the same keys
   (``tf.raw_ops.SaveV2`` with every key of the original, the object graph
   ``_CHECKPOINTABLE_OBJECT_GRAPH`` included). Every checkpoint key of a
   variable gets the same new value, as a real export would have.

Everything is cached under the data folder: reruns only read it.
"""
import json
import os
import shutil
import subprocess
import sys
from typing import Dict, List

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEATURES = ('temperature_c', 'occupancy', 'floor_area_m2')
OUTPUT = 'energy_kwh'
# Architecture name -> hidden layers (units, activation). "energy" is the
# sample's own model (samples/energy_sites.py).
ARCHITECTURES = {
    'energy': None,
    'wide': [(16, 'tanh')],
    'deep': [(8, 'relu'), (4, 'relu')],
}
_DONE = '.complete'


def export_training(architecture: str, seed: int, path: str) -> None:
  """One training's export (run in a fresh process by :func:`training_dirs`)."""
  import keras  # pylint: disable=import-outside-toplevel
  from samples import energy_sites  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  if ARCHITECTURES[architecture] is None:
    model = energy_sites.build_keras_model(energy_sites.random_profile(rng))
  else:
    keras.utils.set_random_seed(seed)
    inputs = {name: keras.Input(shape=(1,), name=name) for name in FEATURES}
    x = keras.layers.Concatenate(name='features')([inputs[n] for n in FEATURES])
    x = keras.layers.Normalization(mean=[15.0, 0.5, 2500.0], variance=[81.0, 0.1, 1.6e6],
                                   name='scale')(x)
    for i, (units, activation) in enumerate(ARCHITECTURES[architecture]):
      x = keras.layers.Dense(units, activation=activation, name=f'hidden{i}')(x)
    model = keras.Model(inputs, {OUTPUT: keras.layers.Dense(1, name=OUTPUT)(x)})
  model.export(path, verbose=False)


def training_dirs(data_dir: str, architecture: str, trainings: int,
                  parallel: int = 2) -> List[str]:
  """Exports (once) ``trainings`` trainings of ``architecture``, each in a fresh process."""
  dirs = [os.path.join(data_dir, 'trainings', f'{architecture}-{t}') for t in range(trainings)]
  missing = [(t, d) for t, d in enumerate(dirs) if not os.path.exists(os.path.join(d, _DONE))]
  code = ('import sys; sys.path.insert(0, sys.argv[1]); import site_bench_data as d; '
          'd.export_training(sys.argv[2], int(sys.argv[3]), sys.argv[4])')
  seed_base = 1000 * (list(ARCHITECTURES).index(architecture) + 1)
  for start in range(0, len(missing), parallel):
    running = []
    for t, path in missing[start:start + parallel]:
      shutil.rmtree(path, ignore_errors=True)
      print(f'  exporting training {architecture}-{t} in a fresh process', flush=True)
      running.append((path, subprocess.Popen(
          [sys.executable, '-c', code, os.path.dirname(os.path.abspath(__file__)),
           architecture, str(seed_base + t), path], env=child_env(), cwd=REPO)))
    for path, proc in running:
      if proc.wait() != 0:
        raise RuntimeError(f'exporting {path} failed (exit {proc.returncode})')
      open(os.path.join(path, _DONE), 'w').close()
  return dirs


def child_env() -> Dict[str, str]:
  """This checkout first on the path; local-run settings for Google libraries."""
  env = dict(os.environ)
  env['PYTHONPATH'] = REPO + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
  env.setdefault('GOOGLE_APPLICATION_CREDENTIALS',
                 os.path.join(REPO, 'samples', 'local_credentials.json'))
  env.setdefault('NO_GCE_CHECK', 'true')
  env.setdefault('GOOGLE_CLOUD_PROJECT', 'local-project')
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  return env


def site_name(index: int) -> str:
  return f'site-{index:05d}'


class _Checkpoint:
  """A training's checkpoint: every key, and each key's variable name."""

  def __init__(self, model_dir: str):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow.core.protobuf import trackable_object_graph_pb2  # pylint: disable=import-outside-toplevel
    reader = tf.train.load_checkpoint(os.path.join(model_dir, 'variables', 'variables'))
    self.values = {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()}
    graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(
        self.values['_CHECKPOINTABLE_OBJECT_GRAPH'])
    self.names = {a.checkpoint_key: a.full_name for n in graph.nodes for a in n.attributes}

  def write_perturbed(self, prefix: str, rng: np.random.Generator) -> None:
    """Writes this checkpoint with new values for every variable, under the same keys."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    new = {}
    keys, tensors = [], []
    for key, value in sorted(self.values.items()):
      if key in self.names and np.issubdtype(np.asarray(value).dtype, np.floating):
        name = self.names[key]
        if name not in new:
          new[name] = (value * rng.uniform(0.5, 1.5, np.shape(value))
                       + rng.normal(0, 0.1, np.shape(value))).astype(value.dtype)
        value = new[name]
      keys.append(key)
      tensors.append(tf.constant(value))
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=keys,
                      shape_and_slices=[''] * len(keys), tensors=tensors)


def model_root(data_dir: str, sites: int, architectures: List[str], trainings: int) -> str:
  """``{root}/{site}/1/`` for ``sites`` sites; site i has architecture i mod len(architectures)."""
  root = os.path.join(data_dir, f'models-{sites}-{"+".join(architectures)}-t{trainings}')
  if os.path.exists(os.path.join(root, _DONE)):
    return root
  shutil.rmtree(root, ignore_errors=True)
  sources = {a: training_dirs(data_dir, a, trainings) for a in architectures}
  checkpoints = {d: _Checkpoint(d) for dirs in sources.values() for d in dirs}
  print(f'  deriving {sites} site models from {len(checkpoints)} trainings', flush=True)
  rng = np.random.default_rng(sites)
  for i in range(sites):
    arch = architectures[i % len(architectures)]
    source = sources[arch][(i // len(architectures)) % trainings]
    target = os.path.join(root, site_name(i), '1')
    shutil.copytree(source, target, ignore=shutil.ignore_patterns('variables', _DONE))
    os.makedirs(os.path.join(target, 'variables'))
    checkpoints[source].write_perturbed(os.path.join(target, 'variables', 'variables'), rng)
  open(os.path.join(root, _DONE), 'w').close()
  return root


def input_dir(data_dir: str, sites: int, rows: int, files: int = 8) -> str:
  """``rows`` hourly readings per site as JSON-lines, sites interleaved, in ``files`` parts."""
  folder = os.path.join(data_dir, f'input-{sites}x{rows}')
  if os.path.exists(os.path.join(folder, _DONE)):
    return folder
  shutil.rmtree(folder, ignore_errors=True)
  os.makedirs(folder)
  rng = np.random.default_rng(rows)
  outs = [open(os.path.join(folder, f'part-{k:02d}.jsonl'), 'w', encoding='utf-8')
          for k in range(files)]
  try:
    n = 0
    for hour in range(rows):
      temperature = np.round(rng.normal(15, 9, sites), 1)
      occupancy = np.round(rng.uniform(0, 1, sites), 2)
      area = rng.integers(300, 5000, sites)
      for i in range(sites):
        site = site_name(i)
        outs[n % files].write(json.dumps({
            'site_id': site, 'reading_id': f'{site}-h{hour:04d}', 'hour': hour,
            'temperature_c': float(temperature[i]), 'occupancy': float(occupancy[i]),
            'floor_area_m2': int(area[i])}) + '\n')
        n += 1
  finally:
    for f in outs:
      f.close()
  open(os.path.join(folder, _DONE), 'w').close()
  return folder
