"""Turning instance rows into the tensors a SavedModel signature takes.

Features are looked up by the signature's input names and cast to its
dtypes; a ``[None, k]`` input takes a list of k values, and a ``[None, 1]``
input also takes a plain value. Other fields of the row are ignored here.

Each value is converted by one rule (:mod:`models.site.feature_values`), whatever
the other rows of its chunk hold; :func:`batch_rows` converts plain values
(numbers, lists of k numbers, one string per row) a column at a time, and
only the others one by one.
"""
import itertools
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.python.eager import context as eager_context
from tensorflow.python.framework import ops

from common.failures import RecordFailure
from models.site.feature_values import PLAIN_NUMBERS
from models.site.feature_values import integer_bounds
from models.site.feature_values import kind_of
from models.site.feature_values import to_array


class InputSpec(NamedTuple):
  """One signature input: its dtype and the shape of one row's value."""
  name: str
  dtype: tf.dtypes.DType
  row_shape: Tuple[Optional[int], ...]  # dims after the batch dim; None = any

  @property
  def is_string(self) -> bool:
    return self.dtype == tf.string

  def describe(self) -> str:
    dims = ', '.join('?' if d is None else str(d) for d in self.row_shape)
    return f'{self.dtype.name}[{dims}]'


def signature_inputs(signature) -> Dict[str, InputSpec]:
  """Input specs of a concrete signature function, by input name."""
  _, kwargs = signature.structured_input_signature
  specs = {}
  for name, spec in kwargs.items():
    dims = spec.shape.as_list() if spec.shape.rank is not None else [None]
    specs[name] = InputSpec(name, spec.dtype, tuple(dims[1:]))
  return specs


def eager_tensor(value: np.ndarray) -> tf.Tensor:
  """``tf.constant(value)`` of a NumPy array, without its Python layers (same tensor).

  The array is not copied first, as ``tf.constant`` does: callers pass
  arrays nobody changes afterwards (fresh batches, read-only weights).
  """
  ctx = eager_context.context()
  ctx.ensure_initialized()
  return ops.EagerTensor(value, ctx.device_name, None)


class FeatureBatch(NamedTuple):
  """Rows that share one value shape per input, ready for one model call."""
  row_indices: List[int]
  tensors: Dict[str, np.ndarray]


def _plain_width(spec: InputSpec) -> Optional[int]:
  """Values of ``spec`` that vectorise: 0 = one value per row, k = a list of k; None = none."""
  if spec.row_shape == ():
    return 0
  if len(spec.row_shape) == 1 and spec.row_shape[0]:
    return spec.row_shape[0]
  return None


_PLAIN_LEAVES = {
    'f': PLAIN_NUMBERS,
    'i': frozenset({int}),
    'b': frozenset({bool}),
    's': frozenset({str})
}


def _plain_leaves(spec: InputSpec, kind: str, column: List[Any]) -> Optional[List[Any]]:
  """The leaves of a column, row-major, when every value is plain: a value of
  the plain leaf type of ``kind``, or (fixed width k) a list of k of them."""
  width, allowed = _plain_width(spec), _PLAIN_LEAVES.get(kind)
  if width is None or allowed is None or kind == 's' and width != 0:
    return None
  types = set(map(type, column))
  if width == 0 or width == 1 and list not in types:  # a plain value fills a width-one input
    leaves = column
  elif types == {list} and set(map(len, column)) == {width}:
    leaves = list(itertools.chain.from_iterable(column))
    types = set(map(type, leaves))
  else:
    return None
  return leaves if allowed.issuperset(types) else None


def _stack(spec: InputSpec, kind: str, leaves: List[Any],
           rows: int) -> Tuple[np.ndarray, np.ndarray]:
  """Plain leaves (:func:`_plain_leaves`) of ``rows`` rows as one array, and
  which rows pass the rule (each as :func:`convert` would decide).

  Raises:
    ValueError, OverflowError: the leaves do not convert at once (an int
      beyond int64 or float64, a lone surrogate): convert them one by one.
  """
  if kind == 's':
    array = np.empty(len(leaves), dtype=object)
    array[:] = [text.encode('utf-8') for text in leaves]
    passed = np.ones(rows, dtype=bool)
  elif kind == 'b':
    array, passed = np.array(leaves, dtype=bool), np.ones(rows, dtype=bool)
  elif kind == 'i':
    wide = np.array(leaves, dtype=np.int64)
    low, high = integer_bounds(spec)
    if spec.dtype == tf.int64:  # np.array checked the bounds
      passed = np.ones(rows, dtype=bool)
    else:
      passed = ((wide >= low) & (wide <= high)).reshape(rows, -1).all(axis=1)
    array = wide.astype(spec.dtype.as_numpy_dtype)
  else:
    wide = np.array(leaves, dtype=np.float64)
    with np.errstate(over='ignore', invalid='ignore'):
      array = wide.astype(spec.dtype.as_numpy_dtype)
    # NaN and infinities stay so in the cast; values beyond the dtype become inf.
    finite = np.isfinite(array)
    passed = np.ones(rows, dtype=bool) if finite.all() else finite.reshape(rows, -1).all(axis=1)
  return array.reshape((rows, ) + spec.row_shape), passed


def _is_plain_value(spec: InputSpec, kind: str):
  """A per-value :func:`_plain_leaves` (for columns that are not all plain)."""
  width, allowed = _plain_width(spec), _PLAIN_LEAVES.get(kind)
  if width is None or allowed is None or kind == 's' and width != 0:
    return lambda value: False
  if width == 0:
    return lambda value: type(value) in allowed
  if width == 1:
    return lambda value: type(value) in allowed or (type(value) is list and len(value) == 1 and
                                                    type(value[0]) in allowed)
  return lambda value: type(value) is list and len(value) == width and allowed.issuperset(
      map(type, value))


class _Column:
  """One input's values for the rows of a chunk, and the rows it fails (by index)."""

  def __init__(self, stacked: Optional[np.ndarray], positions: Dict[int, int],
               singles: Dict[int, np.ndarray], errors: Dict[int, RecordFailure]):
    self.stacked, self.positions, self.singles, self.errors = (stacked, positions, singles, errors)

  @classmethod
  def of(cls,
         spec: InputSpec,
         rows: Sequence[Mapping[str, Any]],
         stacked: Optional[np.ndarray] = None,
         passed: Optional[np.ndarray] = None) -> '_Column':
    """Plain values stacked in one go (``stacked``/``passed``: already done for
    every row), the others converted one by one with :func:`to_array`."""
    kind = kind_of(spec)
    if stacked is not None:
      plain = list(range(len(rows)))
      others = []
    else:
      is_plain = _is_plain_value(spec, kind)
      column = [row.get(spec.name) for row in rows]
      plain = [i for i, value in enumerate(column) if is_plain(value)]
      others = [i for i, value in enumerate(column) if not is_plain(value)]
      if plain:
        values = [column[i] for i in plain]
        if _plain_width(spec):
          values = [[v] if type(v) is not list else v for v in values]  # pylint: disable=unidiomatic-typecheck
          values = list(itertools.chain.from_iterable(values))
        try:
          stacked, passed = _stack(spec, kind, values, len(plain))
        except (ValueError, OverflowError):
          others.extend(plain)
          plain = []
    positions = {i: pos for pos, i in enumerate(plain) if passed[pos]}
    others.extend(i for pos, i in enumerate(plain) if not passed[pos])
    singles, errors = {}, {}
    for index in others:
      try:
        singles[index] = to_array(spec, rows[index])
      except RecordFailure as e:
        errors[index] = e
    return cls(stacked, positions, singles, errors)

  def shape(self, index: int) -> Tuple[int, ...]:
    if index in self.positions:
      return self.stacked.shape[1:]
    return self.singles[index].shape

  def take(self, indices: List[int]) -> np.ndarray:
    if not self.singles:
      return self.stacked[[self.positions[i] for i in indices]]
    # ``stacked[pos, ...]`` keeps a row an array of its dtype (a plain ``stacked[pos]`` of
    # a string column is a bytes scalar, which np.stack would make fixed-width 'S' data:
    # trailing NUL bytes lost).
    return np.stack([
        self.stacked[self.positions[i], ...] if i in self.positions else self.singles[i]
        for i in indices
    ])


def batch_rows(
    specs: Mapping[str, InputSpec],
    rows: Sequence[Mapping[str,
                           Any]]) -> Tuple[List[FeatureBatch], List[Tuple[int, RecordFailure]]]:
  """Converts rows to model inputs, isolating the rows that cannot be fed.

  Each row's outcome is that of :func:`to_array` on it alone (the first
  failing input, in signature order, names its error); the values of a row
  are the same in any chunk. Plain values (numbers, or lists of k numbers,
  of the input's leaf type; one string per row) are converted a column at a
  time; only the others one by one.

  Returns:
    (batches, failures): batches of rows with equal value shapes, in row
    order, and ``(row index, error)`` for every row that cannot be converted.
  """
  if not rows:
    return [], []
  fast: Dict[str, np.ndarray] = {}
  slow: Dict[str, _Column] = {}
  for name, spec in specs.items():
    kind = kind_of(spec)
    leaves = _plain_leaves(spec, kind, [row.get(name) for row in rows])
    stacked = passed = None
    if leaves is not None:
      try:
        stacked, passed = _stack(spec, kind, leaves, len(rows))
      except (ValueError, OverflowError):
        pass
    if stacked is not None and passed.all():
      fast[name] = stacked
    else:
      slow[name] = _Column.of(spec, rows, stacked, passed)
  if not slow:
    return [FeatureBatch(list(range(len(rows))), fast)], []

  failed = {}
  for column in reversed(slow.values()):  # the first failing input in signature order wins
    failed.update(column.errors)
  failures = sorted(failed.items())
  good = [i for i in range(len(rows)) if i not in failed]
  groups: Dict[tuple, List[int]] = {}
  if all(None not in specs[name].row_shape for name in slow):
    groups[()] = good  # fixed shapes: every good row has them
  else:
    for index in good:
      groups.setdefault(tuple(c.shape(index) for c in slow.values()), []).append(index)
  batches = []
  for indices in groups.values():
    if indices:
      tensors = {
          name: slow[name].take(indices) if name in slow else fast[name][indices]
          for name in specs
      }
      batches.append(FeatureBatch(indices, tensors))
  return batches, failures
