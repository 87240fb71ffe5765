"""Turning instance rows into the tensors a SavedModel signature takes.

Features are looked up by the signature's input names and cast to its
dtypes; a ``[None, k]`` input takes a list of k values, and a ``[None, 1]``
input also takes a plain value. Other fields of the row are ignored here.

One rule decides each value, whatever the other rows of its chunk hold
(:func:`to_array`); :func:`batch_rows` converts whole columns at once only
when that gives every row what the rule gives it. The rule, per input kind:

* float inputs (float16/32/64, bfloat16): ints, floats and Decimals (BigQuery
  NUMERIC), converted through float64 then cast. ``bad_feature``: bools,
  strings, NaN and infinities, numbers beyond the dtype's range (``1e39``
  for float32, ints beyond float64).
* integer inputs: ints and whole floats or Decimals within the dtype's range
  (``2**70`` or ``2.0**63`` for int64, ``-1`` for uint8 are ``bad_feature``),
  converted exactly. Bools and fractions are ``bad_feature``.
* bool inputs: bools only.
* string inputs: text (encoded as UTF-8; text with a lone surrogate is
  ``bad_feature``), or ``{"b64": <standard base64>}`` for bytes (invalid
  base64 is ``bad_feature``). Numbers and bools are ``bad_feature``.

A value must be nested lists of the input's row shape (no ragged lists; a
plain value also fills a width-one input); ``null`` or an absent field is
``missing_feature``, a ``null`` inside a list ``bad_feature``.
"""
import base64
import binascii
import decimal
import itertools
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from models.site_model_errors import BAD_FEATURE
from models.site_model_errors import MISSING_FEATURE
from models.site_model_errors import SiteModelError

_PLAIN_NUMBERS = frozenset({int, float})
_LISTS = (list, tuple)


class InputSpec(NamedTuple):
  """One signature input: its dtype and the shape of one row's value."""
  name: str
  dtype: tf.dtypes.DType
  row_shape: Tuple[Optional[int], ...]   # dims after the batch dim; None = any

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


def _kind(spec: InputSpec) -> str:
  """'s' string, 'b' bool, 'i' integer, 'f' float (complex too), '?' other."""
  dtype = spec.dtype
  if dtype == tf.string:
    return 's'
  if dtype == tf.bool:
    return 'b'
  if dtype.is_quantized:
    return '?'
  if dtype.is_integer:
    return 'i'
  if dtype.is_floating or dtype.is_complex:
    return 'f'
  return '?'


def _bad(spec: InputSpec, what: str) -> SiteModelError:
  return SiteModelError(BAD_FEATURE, f'feature {spec.name!r} {what}')


def _preview(value: Any) -> str:
  text = repr(value)
  return text if len(text) <= 40 else text[:37] + '...'


def _structure(spec: InputSpec, value: Any) -> Tuple[Tuple[int, ...], List[Any]]:
  """``value``'s nested-list shape and its leaves in row-major order."""
  shape: List[int] = []
  level = [value]
  while level and isinstance(level[0], _LISTS):
    if not all(isinstance(v, _LISTS) for v in level):
      raise _bad(spec, 'is not a regular array (lists mixed with values)')
    width = len(level[0])
    if any(len(v) != width for v in level):
      raise _bad(spec, 'is not a regular array (lists of different lengths)')
    shape.append(width)
    level = list(itertools.chain.from_iterable(level))
  if any(isinstance(v, _LISTS) for v in level):
    raise _bad(spec, 'is not a regular array (lists mixed with values)')
  return tuple(shape), level


def _wrong_type(spec: InputSpec, leaf: Any) -> SiteModelError:
  return _bad(spec, f'must be {spec.dtype.name}, got {type(leaf).__name__} {_preview(leaf)}')


def _float_leaf(spec: InputSpec, leaf: Any) -> Any:
  if isinstance(leaf, (bool, np.bool_)) or not isinstance(
      leaf, (int, float, decimal.Decimal, np.integer, np.floating)):
    raise _wrong_type(spec, leaf)
  if isinstance(leaf, (decimal.Decimal, np.floating)):
    try:
      return float(leaf)
    except (ValueError, OverflowError) as e:   # signaling NaN
      raise _bad(spec, f'is not a finite number: {_preview(leaf)}') from e
  return int(leaf) if isinstance(leaf, np.integer) else leaf


def _int_leaf(spec: InputSpec, leaf: Any) -> int:
  if isinstance(leaf, (bool, np.bool_)):
    raise _wrong_type(spec, leaf)
  if isinstance(leaf, (int, np.integer)):
    return int(leaf)
  if isinstance(leaf, (float, np.floating, decimal.Decimal)):
    whole = (leaf.is_finite() and leaf == leaf.to_integral_value()
             if isinstance(leaf, decimal.Decimal) else float(leaf).is_integer())
    if not whole:
      raise _bad(spec, f'must be whole numbers ({spec.dtype.name}), got {_preview(leaf)}')
    return int(leaf)
  raise _wrong_type(spec, leaf)


def _floats(spec: InputSpec, leaves: List[Any]) -> np.ndarray:
  if not _PLAIN_NUMBERS.issuperset(map(type, leaves)):
    leaves = [_float_leaf(spec, leaf) for leaf in leaves]
  try:
    wide = np.array(leaves, dtype=np.float64)
  except OverflowError as e:   # an int beyond float64
    raise _bad(spec, f'is out of range for {spec.dtype.name}') from e
  if not np.isfinite(wide).all():
    raise _bad(spec, f'must be finite numbers, got {_first_non_finite(wide)}')
  with np.errstate(over='ignore'):   # overflow is checked right after
    array = wide.astype(spec.dtype.as_numpy_dtype)
  if not np.isfinite(array).all():
    raise _bad(spec, f'is out of range for {spec.dtype.name}: '
                     f'{wide.ravel()[~np.isfinite(array).ravel()][0]!r}')
  return array


def _first_non_finite(array: np.ndarray) -> str:
  return repr(float(array.ravel()[~np.isfinite(array.ravel())][0]))


def _integer_bounds(spec: InputSpec) -> Tuple[int, int]:
  info = np.iinfo(spec.dtype.as_numpy_dtype)
  return int(info.min), int(info.max)


def _ints(spec: InputSpec, leaves: List[Any]) -> np.ndarray:
  if not {int}.issuperset(map(type, leaves)):
    leaves = [_int_leaf(spec, leaf) for leaf in leaves]
  low, high = _integer_bounds(spec)
  if leaves and (min(leaves) < low or max(leaves) > high):
    outside = next(v for v in leaves if v < low or v > high)
    raise _bad(spec, f'is out of range for {spec.dtype.name}: {_preview(outside)}')
  return np.array(leaves, dtype=spec.dtype.as_numpy_dtype)


def _bools(spec: InputSpec, leaves: List[Any]) -> np.ndarray:
  for leaf in leaves:
    if not isinstance(leaf, (bool, np.bool_)):
      raise _wrong_type(spec, leaf)
  return np.array(leaves, dtype=bool)


def _string_leaf(spec: InputSpec, leaf: Any) -> bytes:
  if isinstance(leaf, str):
    try:
      return leaf.encode('utf-8')
    except UnicodeEncodeError as e:
      raise _bad(spec, f'is not valid Unicode text: {_preview(leaf)}') from e
  if isinstance(leaf, bytes):
    return leaf
  if isinstance(leaf, dict) and set(leaf) == {'b64'}:
    if not isinstance(leaf['b64'], str):
      raise _bad(spec, f'b64 must be a string, got {type(leaf["b64"]).__name__}')
    try:
      return base64.b64decode(leaf['b64'], validate=True)
    except (binascii.Error, ValueError) as e:
      raise _bad(spec, f'has invalid base64: {e}') from e
  raise _bad(spec, f'expected a string, got {type(leaf).__name__} {_preview(leaf)}')


def _strings(spec: InputSpec, leaves: List[Any]) -> np.ndarray:
  array = np.empty(len(leaves), dtype=object)
  array[:] = [_string_leaf(spec, leaf) for leaf in leaves]
  return array


_CONVERT = {'f': _floats, 'i': _ints, 'b': _bools, 's': _strings}


def _check_shape(spec: InputSpec, shape: Tuple[int, ...]) -> Tuple[int, ...]:
  if shape == () and spec.row_shape == (1,):
    return (1,)
  if len(shape) != len(spec.row_shape) or any(
      want is not None and want != got for want, got in zip(spec.row_shape, shape)):
    raise _bad(spec, f'has shape {list(shape)}; the model expects {spec.describe()}')
  return shape


def convert(spec: InputSpec, value: Any) -> np.ndarray:
  """One non-null value for ``spec`` as an array of its row shape (module rule).

  Raises:
    SiteModelError: ``bad_feature``.
  """
  kind = _kind(spec)
  if kind == '?':
    raise _bad(spec, f'has dtype {spec.dtype.name}, which instances cannot hold')
  if isinstance(value, dict) and not (kind == 's' and set(value) == {'b64'}):
    raise _wrong_type(spec, value)
  shape, leaves = _structure(spec, value)
  array = _CONVERT[kind](spec, leaves)
  return array.reshape(_check_shape(spec, shape))


def to_array(spec: InputSpec, row: Mapping[str, Any]) -> np.ndarray:
  """One row's value for ``spec``, as an array of the row shape.

  Raises:
    SiteModelError: ``missing_feature`` (absent or null) or ``bad_feature``.
  """
  value = row.get(spec.name)
  if value is None:
    what = 'is null' if spec.name in row else 'is missing'
    raise SiteModelError(MISSING_FEATURE, f'signature input {spec.name!r} {what}')
  return convert(spec, value)


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


_PLAIN_LEAVES = {'f': _PLAIN_NUMBERS, 'i': frozenset({int}), 'b': frozenset({bool}),
                 's': frozenset({str})}


def _plain_leaves(spec: InputSpec, kind: str, column: List[Any]) -> Optional[List[Any]]:
  """The leaves of a column, row-major, when every value is plain: a value of
  the plain leaf type of ``kind``, or (fixed width k) a list of k of them."""
  width, allowed = _plain_width(spec), _PLAIN_LEAVES.get(kind)
  if width is None or allowed is None or kind == 's' and width != 0:
    return None
  types = set(map(type, column))
  if width == 0 or width == 1 and list not in types:   # a plain value fills a width-one input
    leaves = column
  elif types == {list} and set(map(len, column)) == {width}:
    leaves = list(itertools.chain.from_iterable(column))
    types = set(map(type, leaves))
  else:
    return None
  return leaves if allowed.issuperset(types) else None


def _stack(spec: InputSpec, kind: str, leaves: List[Any], rows: int
           ) -> Tuple[np.ndarray, np.ndarray]:
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
    low, high = _integer_bounds(spec)
    if spec.dtype == tf.int64:   # np.array checked the bounds
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
  return array.reshape((rows,) + spec.row_shape), passed


def _is_plain_value(spec: InputSpec, kind: str):
  """A per-value :func:`_plain_leaves` (for columns that are not all plain)."""
  width, allowed = _plain_width(spec), _PLAIN_LEAVES.get(kind)
  if width is None or allowed is None or kind == 's' and width != 0:
    return lambda value: False
  if width == 0:
    return lambda value: type(value) in allowed
  if width == 1:
    return lambda value: type(value) in allowed or (
        type(value) is list and len(value) == 1 and type(value[0]) in allowed)
  return lambda value: type(value) is list and len(value) == width and allowed.issuperset(
      map(type, value))


class _Column:
  """One input's values for the rows of a chunk, and the rows it fails (by index)."""

  def __init__(self, stacked: Optional[np.ndarray], positions: Dict[int, int],
               singles: Dict[int, np.ndarray], errors: Dict[int, SiteModelError]):
    self.stacked, self.positions, self.singles, self.errors = (
        stacked, positions, singles, errors)

  @classmethod
  def of(cls, spec: InputSpec, rows: Sequence[Mapping[str, Any]],
              stacked: Optional[np.ndarray] = None, passed: Optional[np.ndarray] = None
              ) -> '_Column':
    """Plain values stacked in one go (``stacked``/``passed``: already done for
    every row), the others converted one by one with :func:`to_array`."""
    kind = _kind(spec)
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
      except SiteModelError as e:
        errors[index] = e
    return cls(stacked, positions, singles, errors)

  def shape(self, index: int) -> Tuple[int, ...]:
    if index in self.positions:
      return self.stacked.shape[1:]
    return self.singles[index].shape

  def take(self, indices: List[int]) -> np.ndarray:
    if not self.singles:
      return self.stacked[[self.positions[i] for i in indices]]
    return np.stack([self.stacked[self.positions[i]] if i in self.positions
                     else self.singles[i] for i in indices])


def batch_rows(specs: Mapping[str, InputSpec], rows: Sequence[Mapping[str, Any]]
               ) -> Tuple[List[FeatureBatch], List[Tuple[int, SiteModelError]]]:
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
    kind = _kind(spec)
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
  for column in reversed(slow.values()):   # the first failing input in signature order wins
    failed.update(column.errors)
  failures = sorted(failed.items())
  good = [i for i in range(len(rows)) if i not in failed]
  groups: Dict[tuple, List[int]] = {}
  if all(None not in specs[name].row_shape for name in slow):
    groups[()] = good   # fixed shapes: every good row has them
  else:
    for index in good:
      groups.setdefault(tuple(c.shape(index) for c in slow.values()), []).append(index)
  batches = []
  for indices in groups.values():
    if indices:
      tensors = {name: slow[name].take(indices) if name in slow else fast[name][indices]
                 for name in specs}
      batches.append(FeatureBatch(indices, tensors))
  return batches, failures
