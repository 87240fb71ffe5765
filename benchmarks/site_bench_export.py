"""Site models exported the way teams really export them (run in worker processes).

Every site takes ``temperature_c``, ``occupancy``, ``floor_area_m2``
(``float32[None, 1]`` each) and returns ``{"energy_kwh": float32[None, 1]}``.
Weights are drawn per site from a generator seeded by the site's index and
version, so a site's export is the same whichever worker makes it.

How a worker exports (``export_sites``), by ``how``:

- ``keras-named``: a fresh ``keras.Model`` per site with explicit layer names,
  ``model.export(path)``, in a loop, no ``clear_session`` (model scopes count
  up: ``functional_1/hidden_1``, ``functional_1_1/hidden_1``, ...);
- ``keras-generated``: the same with Keras's own layer names (``dense``,
  ``dense_1``, ... differ per site);
- ``keras-fresh``: ``keras.utils.clear_session()`` before each site, so names
  are those of a fresh process (the ``processes`` style runs several workers,
  whose variable orders differ as separate trainings' do);
- ``module``: a plain ``tf.Module`` with unnamed ``tf.Variable``s saved with
  ``tf.saved_model.save``, in a loop.

Run as ``python site_bench_export.py JOB_JSON`` with
``{"how", "sites": [[index, version, architecture], ...], "root"}``.
"""
import json
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

FEATURES = ('temperature_c', 'occupancy', 'floor_area_m2')
OUTPUT = 'energy_kwh'
MEAN = (15.0, 0.5, 2500.0)
VARIANCE = (81.0, 0.1, 1.6e6)
# Architecture name -> (normalize inputs, hidden layers (units, activation)).
# "energy" is the sample's network; "u<N>" is a single relu layer of N units
# (the "distinct" style gives every site its own N).
ARCHITECTURES = {
    'energy': (False, [(4, 'relu')]),
    'wide': (True, [(16, 'tanh')]),
    'deep': (True, [(8, 'relu'), (4, 'relu')]),
}
EXPORT_KINDS = ('keras-named', 'keras-generated', 'keras-fresh', 'module')


def layers_of(architecture: str) -> Tuple[bool, List[Tuple[int, str]]]:
  if architecture.startswith('u') and architecture[1:].isdigit():
    return True, [(int(architecture[1:]), 'relu')]
  return ARCHITECTURES[architecture]


def site_name(index: int) -> str:
  return f'site-{index:05d}'


def site_rng(index: int, version: int) -> np.random.Generator:
  return np.random.default_rng([index, version])


def build_keras(architecture: str, rng: np.random.Generator, *, named: bool):
  """A fresh Keras functional model with this site's weights."""
  import keras  # pylint: disable=import-outside-toplevel
  normalize, hidden = layers_of(architecture)

  def name(text: str) -> Optional[str]:
    return text if named else None

  inputs = {n: keras.Input(shape=(1, ), name=n) for n in FEATURES}
  x = keras.layers.Concatenate(name=name('features'))([inputs[n] for n in FEATURES])
  if normalize:
    x = keras.layers.Normalization(mean=list(MEAN), variance=list(VARIANCE), name=name('scale'))(x)
  dense = []
  for i, (units, activation) in enumerate(hidden):
    dense.append(keras.layers.Dense(units, activation=activation, name=name(f'hidden{i}')))
    x = dense[-1](x)
  dense.append(keras.layers.Dense(1, name=name(OUTPUT)))
  model = keras.Model(inputs, {OUTPUT: dense[-1](x)})
  fan_in = 3
  for layer in dense:
    kernel, bias = layer.get_weights()
    scale = 1.0 if normalize or layer is not dense[0] else 1e-2
    layer.set_weights([(rng.normal(0, scale / np.sqrt(fan_in), kernel.shape)).astype(np.float32),
                       rng.normal(0, 1, bias.shape).astype(np.float32)])
    fan_in = kernel.shape[1]
  return model


def save_module(architecture: str, rng: np.random.Generator, path: str) -> None:
  """A plain tf.Module of the architecture, unnamed variables, tf.saved_model.save."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  normalize, hidden = layers_of(architecture)
  module = tf.Module()
  module.layers = []
  fan_in = 3
  for units, activation in hidden + [(1, None)]:
    scale = 1.0 if normalize or module.layers else 1e-2
    module.layers.append(
        (tf.Variable(rng.normal(0, scale / np.sqrt(fan_in), (fan_in, units)).astype(np.float32)),
         tf.Variable(rng.normal(0, 1, (units, )).astype(np.float32))))
    fan_in = units
  activations = [a for _, a in hidden] + [None]
  mean = tf.constant(MEAN, tf.float32)
  std = tf.sqrt(tf.constant(VARIANCE, tf.float32))
  specs = {n: tf.TensorSpec([None, 1], tf.float32, name=n) for n in FEATURES}

  @tf.function(input_signature=[specs[n] for n in FEATURES])
  def serve(temperature_c, occupancy, floor_area_m2):
    x = tf.concat([temperature_c, occupancy, floor_area_m2], axis=1)
    if normalize:
      x = (x - mean) / std
    for (kernel, bias), activation in zip(module.layers, activations):
      x = tf.matmul(x, kernel) + bias
      if activation == 'relu':
        x = tf.nn.relu(x)
      elif activation == 'tanh':
        x = tf.tanh(x)
    return {OUTPUT: x}

  module.serve = serve
  tf.saved_model.save(module, path, signatures={'serving_default': serve})


def export_sites(how: str, root: str, sites: Sequence[Sequence]) -> None:
  """Exports ``[index, version, architecture]`` sites under ``root``, in order, in this process."""
  if how not in EXPORT_KINDS:
    raise ValueError(f'unknown export kind {how!r}')
  import shutil  # pylint: disable=import-outside-toplevel
  for index, version, architecture in sites:
    path = os.path.join(root, site_name(index), str(version))
    shutil.rmtree(path, ignore_errors=True)
    rng = site_rng(index, version)
    if how == 'module':
      save_module(architecture, rng, path)
      continue
    if how == 'keras-fresh':
      import keras  # pylint: disable=import-outside-toplevel
      keras.utils.clear_session()
    build_keras(architecture, rng, named=how != 'keras-generated').export(path, verbose=False)


def main(argv: List[str]) -> int:
  with open(argv[1], encoding='utf-8') as f:
    job: Dict = json.load(f)
  export_sites(job['how'], job['root'], job['sites'])
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
