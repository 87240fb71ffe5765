"""A tiny SavedModel with one input of each kind the job feeds, for outcome tests.

Every output is elementwise and exactly rounded (no division: TF's
vectorised reciprocal differs in the last bit from its scalar one), so a
row's outputs are the same bits in a batch of any size: a difference between
a row predicted alone and in a chunk can only come from how the job
converted its values.
"""
import numpy as np
import tensorflow as tf

POLE = 13.0
"""``half`` is a / 2, but infinite for a == POLE and NaN for a == -POLE."""


def _half(a):
  inf, nan = tf.constant(np.inf, tf.float32), tf.constant(np.nan, tf.float32)
  return tf.where(tf.equal(a, POLE), inf, tf.where(tf.equal(a, -POLE), nan, a * 0.5))


class _Mixed(tf.Module):
  """serving_default(a: float32[None], b: int64[None], s: string[None], v: float32[None, 2])
  -> {"ax": 3a + 1, "half": a / 2 (inf at 13, NaN at -13), "b2": 2b, "slen": len(s),
      "vy": v * [2, -1] + 0.5}"""

  def __init__(self):
    super().__init__()
    self.scale = tf.Variable(np.asarray([2.0, -1.0], np.float32))

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.float32, name='a'),
      tf.TensorSpec([None], tf.int64, name='b'),
      tf.TensorSpec([None], tf.string, name='s'),
      tf.TensorSpec([None, 2], tf.float32, name='v')
  ])
  def serve(self, a, b, s, v):
    return {
        'ax': a * 3.0 + 1.0,
        'half': _half(a),
        'b2': b * 2,
        'slen': tf.strings.length(s),
        'vy': v * self.scale + 0.5
    }


class _Numeric(tf.Module):
  """:class:`_Mixed` without ``s`` (and ``slen``): numbers only."""

  def __init__(self):
    super().__init__()
    self.scale = tf.Variable(np.asarray([2.0, -1.0], np.float32))

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.float32, name='a'),
      tf.TensorSpec([None], tf.int64, name='b'),
      tf.TensorSpec([None, 2], tf.float32, name='v')
  ])
  def serve(self, a, b, v):
    return {'ax': a * 3.0 + 1.0, 'half': _half(a), 'b2': b * 2, 'vy': v * self.scale + 0.5}


def save_mixed(path: str, *, with_string: bool = True) -> str:
  """Exports :class:`_Mixed` (or, without ``with_string``, :class:`_Numeric`) to
  ``path`` (unversioned layout); returns ``path``."""
  module = _Mixed() if with_string else _Numeric()
  tf.saved_model.save(module, path, signatures={'serving_default': module.serve})
  return path
