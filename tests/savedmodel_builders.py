"""Tiny SavedModels for tests, written to a temporary folder."""
import os
from typing import Dict, Sequence

import numpy as np
import tensorflow as tf


class _Linear(tf.Module):
  """serving_default(x: float32[None, k]) -> {"y": float32[None]}"""

  def __init__(self, weights: Sequence[float], bias: float):
    super().__init__()
    self.w = tf.Variable(np.asarray(weights, np.float32))
    self.b = tf.Variable(np.float32(bias))

  @tf.function
  def serve(self, x):
    return {'y': tf.linalg.matvec(x, self.w) + self.b}


class _TwoInTwoOut(tf.Module):
  """serving_default(a: float32[None], b: int64[None]) -> {"total": float32, "double_b": int64}"""

  def __init__(self, scale: float):
    super().__init__()
    self.scale = tf.Variable(np.float32(scale))

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.float32, name='a'),
      tf.TensorSpec([None], tf.int64, name='b')
  ])
  def serve(self, a, b):
    return {'total': self.scale * a + tf.cast(b, tf.float32), 'double_b': 2 * b}


class _KeyEcho(tf.Module):
  """serving_default(key: string[None], x: float32[None, 2]) -> {"key", "score"}"""

  def __init__(self, weights: Sequence[float]):
    super().__init__()
    self.w = tf.Variable(np.asarray(weights, np.float32))

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, name='key'),
      tf.TensorSpec([None, 2], tf.float32, name='x')
  ])
  def serve(self, key, x):
    return {'key': tf.identity(key), 'score': tf.sigmoid(tf.linalg.matvec(x, self.w))}


def _save(module: tf.Module, signature, path: str) -> str:
  tf.saved_model.save(module, path, signatures={'serving_default': signature})
  return path


def save_linear(path: str, weights: Sequence[float], bias: float) -> str:
  m = _Linear(weights, bias)
  spec = tf.TensorSpec([None, len(weights)], tf.float32, name='x')
  return _save(m, m.serve.get_concrete_function(spec), path)


def save_two_in_two_out(path: str, scale: float) -> str:
  m = _TwoInTwoOut(scale)
  return _save(m, m.serve, path)


def save_key_echo(path: str, weights: Sequence[float]) -> str:
  m = _KeyEcho(weights)
  return _save(m, m.serve, path)


def call_directly(model_dir: str, row: Dict, signature: str = 'serving_default') -> Dict:
  """The model's outputs for one row, computed without the pipeline."""
  fn = tf.saved_model.load(model_dir).signatures[signature]
  _, specs = fn.structured_input_signature
  args = {}
  for name, spec in specs.items():
    value = np.asarray([row[name]])
    if spec.dtype != tf.string:
      value = value.astype(spec.dtype.as_numpy_dtype)
    if spec.shape.rank == 2 and spec.shape[1] == 1 and value.ndim == 1:
      value = value.reshape(-1, 1)  # a plain number for a [None, 1] input
    args[name] = tf.constant(value, dtype=spec.dtype)
  return {k: v.numpy()[0] for k, v in fn(**args).items()}


def build_model_root(root: str) -> Dict[str, str]:
  """The standard test model root; returns site -> model folder.

  lin-a / lin-b / 42: same architecture, different weights; the highest
  integer version must win (lin-a 2 over 1, lin-b 10 over 9); multi: two inputs, two outputs; echo: string key echoed;
  flat: unversioned layout; empty: a folder without a SavedModel;
  corrupt: garbage saved_model.pb.
  """
  dirs = {
      'lin-a': save_linear(os.path.join(root, 'lin-a', '2'), [1.0, 2.0, 3.0], 0.5),
      'lin-b': save_linear(os.path.join(root, 'lin-b', '10'), [-1.0, 0.25, 4.0], -2.0),
      '42': save_linear(os.path.join(root, '42', '1'), [0.0, 1.0, 0.0], 42.0),
      'multi': save_two_in_two_out(os.path.join(root, 'multi', '1'), 1.5),
      'echo': save_key_echo(os.path.join(root, 'echo', '3'), [0.7, -0.3]),
      'flat': save_linear(os.path.join(root, 'flat'), [0.5, 0.5, 0.5], 10.0),
  }
  # Older versions that must not be used (10 > 9 numerically, not as text).
  save_linear(os.path.join(root, 'lin-a', '1'), [100.0, 100.0, 100.0], 100.0)
  save_linear(os.path.join(root, 'lin-b', '9'), [100.0, 100.0, 100.0], 100.0)
  os.makedirs(os.path.join(root, 'empty'))
  os.makedirs(os.path.join(root, 'corrupt', '1'))
  with open(os.path.join(root, 'corrupt', '1', 'saved_model.pb'), 'wb') as f:
    f.write(b'\x00not a protobuf\xff' * 10)
  return dirs


def save_doubler(path: str, input_name: str) -> str:
  """serving_default(<input_name>: float32[None]) -> {"out": 2 * input}"""
  m = tf.Module()
  m.factor = tf.Variable(np.float32(2.0))
  sig = tf.function(lambda **kw: {
      'out': m.factor * kw[input_name]
  }).get_concrete_function(**{input_name: tf.TensorSpec([None], tf.float32, name=input_name)})
  return _save(m, sig, path)


# Models for the shared-graph fast path (tests/test_architecture_key.py,
# tests/test_fast_path*.py, tests/test_pool_memory*.py), exported the way
# users export them: fresh models in a loop, separate processes, Keras or
# plain tf.Module, each site with its own weights.

TWO_LAYER_VARIABLES = {
    'hidden/kernel': (3, 4),
    'hidden/bias': (4, ),
    'mix/kernel': (4, 4),
    'mix/bias': (4, ),
    'out/scale': (4, )
}


def two_layer_values(seed: int) -> Dict[str, np.ndarray]:
  """Random values for :func:`save_two_layer` (two biases of the same shape)."""
  rng = np.random.default_rng(seed)
  return {
      name: rng.normal(0, 1, shape).astype(np.float32)
      for name, shape in TWO_LAYER_VARIABLES.items()
  }


class _TwoLayer(tf.Module):
  """serving_default(x: float32[None, 3]) -> {"y": float32[None]}.

  Variables are created, and listed in ``all_variables``, in ``order``: their
  object-graph node ids and checkpoint keys (list positions) differ between
  exports made with different orders, as Keras 3's do between trainings,
  while the traced program (which reads them by name) is the same.
  ``wiring``: ``"plain"``; ``"swapped"`` feeds ``mix/bias`` to the first
  layer and ``hidden/bias`` to the second (same program, variables renamed);
  ``"after"`` adds the first bias after the activation (another program).
  """

  def __init__(self, values, order, activation, input_name, output_name, constant, wiring):
    super().__init__()
    self.all_variables = [tf.Variable(values[name], name=name) for name in order]
    self.by_name = {v.name.split(':')[0]: v for v in self.all_variables}
    self._activation = {'relu': tf.nn.relu, 'tanh': tf.tanh}[activation]
    self._output_name = output_name
    self._constant = None if constant is None else tf.constant(constant, tf.float32)
    self._wiring = wiring
    self.serve = tf.function(
        self._serve, input_signature=[tf.TensorSpec([None, 3], tf.float32, name=input_name)])

  def _serve(self, x):
    v = self.by_name
    first, second = ('mix/bias', 'hidden/bias') if self._wiring == 'swapped' else ('hidden/bias',
                                                                                   'mix/bias')
    if self._wiring == 'after':
      h = self._activation(tf.matmul(x, v['hidden/kernel'])) + v[first]
    else:
      h = self._activation(tf.matmul(x, v['hidden/kernel']) + v[first])
    h = self._activation(tf.matmul(h, v['mix/kernel']) + v[second])
    y = tf.reduce_sum(h * v['out/scale'], axis=1)
    if self._constant is not None:
      y = y + self._constant
    return {self._output_name: y}


def save_two_layer(
    path: str,
    values: Dict[str, np.ndarray],
    *,
    order: Sequence[str] = tuple(TWO_LAYER_VARIABLES),
    activation: str = 'relu',
    input_name: str = 'x',
    output_name: str = 'y',
    constant=None,
    wiring: str = 'plain',
    signature_names: Sequence[str] = ('serving_default', )) -> str:
  """A two-layer tf.Module export; see :class:`_TwoLayer`."""
  m = _TwoLayer(values, order, activation, input_name, output_name, constant, wiring)
  function = m.serve.get_concrete_function()
  tf.saved_model.save(m, path, signatures={name: function for name in signature_names})
  return path


KERAS_FEATURES = ('temperature_c', 'occupancy', 'floor_area_m2')


def keras_model(seed: int,
                *,
                named: bool = True,
                units: int = 4,
                activation: str = 'relu',
                mean: Sequence[float] = (15.0, 0.5, 2500.0),
                train: bool = False):
  """A fresh Keras functional model: 3 named inputs -> normalization -> dense -> dense.

  ``named``: explicit layer names (else Keras's ``dense``, ``dense_1``, ...).
  ``train``: a short ``fit`` on random rows (as a training loop would), else
  random weights. The Keras model scope counts up per model built in the
  process, as in any training loop without ``clear_session``.
  """
  import keras  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  inputs = {n: keras.Input(shape=(1, ), name=n) for n in KERAS_FEATURES}
  x = keras.layers.Concatenate(name='features' if named else None)(
      [inputs[n] for n in KERAS_FEATURES])
  x = keras.layers.Normalization(mean=list(mean),
                                 variance=[81.0, 0.1, 1.6e6],
                                 name='scale' if named else None)(x)
  hidden = keras.layers.Dense(units, activation=activation, name='hidden' if named else None)
  out = keras.layers.Dense(1, name='energy_kwh' if named else None)
  model = keras.Model(inputs, {'energy_kwh': out(hidden(x))})
  for layer in (hidden, out):
    layer.set_weights([rng.normal(0, 1, w.shape).astype(np.float32) for w in layer.get_weights()])
  if train:
    model.compile(optimizer='adam', loss='mse')
    features = {n: rng.normal(0, 1, (32, 1)).astype(np.float32) for n in KERAS_FEATURES}
    model.fit(features, {'energy_kwh': rng.normal(0, 1, (32, 1))}, epochs=1, verbose=0)
  return model


def export_keras(path: str, seed: int, **options) -> str:
  """``model.export(path)`` of :func:`keras_model` (Keras 3's SavedModel export)."""
  keras_model(seed, **options).export(path, verbose=False)
  return path


def keras_rows(seed: int, count: int = 5):
  """Rows for the Keras and tf.Module site models (plain numbers, distinct per row)."""
  rng = np.random.default_rng(seed)
  return [{
      'temperature_c': float(np.round(rng.normal(15, 9), 1)),
      'occupancy': float(np.round(rng.uniform(0, 1), 2)),
      'floor_area_m2': float(rng.integers(300, 5000))
  } for _ in range(count)]


class _SiteModule(tf.Module):
  """The Keras model's program as a plain tf.Module with unnamed variables."""

  def __init__(self, seed: int, units: int):
    super().__init__()
    rng = np.random.default_rng(seed)
    self.layers = [(tf.Variable(rng.normal(0, 0.01, (3, units)).astype(np.float32)),
                    tf.Variable(rng.normal(0, 1, (units, )).astype(np.float32))),
                   (tf.Variable(rng.normal(0, 1, (units, 1)).astype(np.float32)),
                    tf.Variable(rng.normal(0, 1, (1, )).astype(np.float32)))]

  @tf.function(
      input_signature=[tf.TensorSpec([None, 1], tf.float32, name=n) for n in KERAS_FEATURES])
  def serve(self, temperature_c, occupancy, floor_area_m2):
    x = tf.concat([temperature_c, occupancy, floor_area_m2], axis=1)
    (k1, b1), (k2, b2) = self.layers
    return {'energy_kwh': tf.matmul(tf.nn.relu(tf.matmul(x, k1) + b1), k2) + b2}


def save_site_module(path: str, seed: int, units: int = 4) -> str:
  """A tf.Module site model with unnamed ``tf.Variable``s, ``tf.saved_model.save``."""
  m = _SiteModule(seed, units)
  return _save(m, m.serve, path)


def full_load_outputs(path: str, rows, signature: str = 'serving_default') -> Dict[str, np.ndarray]:
  """A site's outputs for ``rows`` (one batch) from its own ``tf.saved_model.load``."""
  loaded = tf.saved_model.load(path)
  fn = loaded.signatures[signature]
  _, specs = fn.structured_input_signature
  feed = {}
  for name, spec in specs.items():
    value = np.asarray([row[name] for row in rows], spec.dtype.as_numpy_dtype)
    feed[name] = tf.constant(value.reshape([-1] + spec.shape.as_list()[1:]))
  return {name: value.numpy() for name, value in fn(**feed).items()}


class _Embedding(tf.Module):
  """serving_default(ids: int64[None]) -> {"v": float32[None, 3]}: a sparse read of a table."""

  def __init__(self, seed: int):
    super().__init__()
    self.table = tf.Variable(np.random.default_rng(seed).normal(0, 1, (5, 3)).astype(np.float32))
    self.scale = tf.Variable(np.float32(seed + 1))

  @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name='ids')])
  def serve(self, ids):
    return {'v': tf.gather(self.table, ids) * self.scale}


def save_embedding(path: str, seed: int) -> str:
  """A signature reading a variable with ``ResourceGather``: shares, holding variables."""
  m = _Embedding(seed)
  return _save(m, m.serve, path)


class _Counter(tf.Module):
  """serving_default(x: float32[None]) -> {"y": x + calls}; every call adds 1 to ``calls``."""

  def __init__(self):
    super().__init__()
    self.calls = tf.Variable(0.0, name='calls')

  @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name='x')])
  def serve(self, x):
    self.calls.assign_add(1.0)
    return {'y': x + self.calls}


class _Lookup(tf.Module):
  """serving_default(k: string[None]) -> {"v": float32}, from a captured lookup table."""

  def __init__(self):
    super().__init__()
    self.table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(['a', 'b'],
                                                                               [1.0, 2.0]),
                                           default_value=0.0)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='k')])
  def serve(self, k):
    return {'v': self.table.lookup(k)}


def save_counter(path: str) -> str:
  """A stateful signature (assigns to its variable): cannot share a graph."""
  m = _Counter()
  return _save(m, m.serve, path)


def save_lookup(path: str) -> str:
  """A signature capturing a lookup table: cannot share a graph."""
  m = _Lookup()
  return _save(m, m.serve, path)
