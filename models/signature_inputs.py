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


def _leaf_column(spec: InputSpec, column: List[Any]) -> Optional[List[Any]]:
  """The leaves of a column of plain nested lists of the row shape; None if not plain."""
  depth = len(spec.row_shape)
  if spec.row_shape == (1,) and not any(isinstance(v, _LISTS) for v in column):
    depth = 0
  leaves = column
  for _ in range(depth):
    if not all(type(v) is list for v in leaves):   # pylint: disable=unidiomatic-typecheck
      return None
    leaves = list(itertools.chain.from_iterable(leaves))
  return leaves


def _fast_column(spec: InputSpec, column: List[Any]) -> Optional[np.ndarray]:
  """The whole column as one array, when every value is plain and passes the rule.

  Exactly what stacking :func:`convert` of each value gives, or None (the
  column is then converted value by value).
  """
  kind = _kind(spec)
  leaves = _leaf_column(spec, column)
  if leaves is None:
    return None
  types = set(map(type, leaves))
  try:
    if kind == 'f' and _PLAIN_NUMBERS.issuperset(types):
      wide = np.array(column, dtype=np.float64)
      if not np.isfinite(wide).all():
        return None
      with np.errstate(over='ignore'):
        array = wide.astype(spec.dtype.as_numpy_dtype)
      if not np.isfinite(array).all():
        return None
    elif kind == 'i' and types <= {int}:
      array = np.array(column, dtype=np.int64)
      low, high = _integer_bounds(spec)
      if array.size and (array.min() < low or array.max() > high):
        return None
      array = array.astype(spec.dtype.as_numpy_dtype)
    elif kind == 'b' and types <= {bool}:
      array = np.array(column, dtype=bool)
    elif kind == 's' and types <= {str} and leaves is column:   # one string per row
      array = np.empty(len(column), dtype=object)
      array[:] = [text.encode('utf-8') for text in column]
    else:
      return None
  except (ValueError, OverflowError):   # ragged lists, int beyond int64, lone surrogate
    return None
  if spec.row_shape == (1,) and array.ndim == 1:
    array = array.reshape(-1, 1)
  if array.ndim != 1 + len(spec.row_shape) or any(
      want is not None and want != got for want, got in zip(spec.row_shape, array.shape[1:])):
    return None
  return array


def batch_rows(specs: Mapping[str, InputSpec], rows: Sequence[Mapping[str, Any]]
               ) -> Tuple[List[FeatureBatch], List[Tuple[int, SiteModelError]]]:
  """Converts rows to model inputs, isolating the rows that cannot be fed.

  Each row's outcome is that of :func:`to_array` on it alone (the first
  failing input, in signature order, names its error); the values of a row
  are the same in any chunk.

  Returns:
    (batches, failures): batches of rows with equal value shapes, in row
    order, and ``(row index, error)`` for every row that cannot be converted.
  """
  if not rows:
    return [], []
  fast: Dict[str, np.ndarray] = {}
  slow: List[InputSpec] = []
  for name, spec in specs.items():
    array = _fast_column(spec, [row.get(name) for row in rows])
    if array is None:
      slow.append(spec)
    else:
      fast[name] = array
  if not slow:
    return [FeatureBatch(list(range(len(rows))), fast)], []

  failures = []
  by_shape: Dict[tuple, Tuple[List[int], Dict[str, List[np.ndarray]]]] = {}
  for index, row in enumerate(rows):
    try:
      values = [to_array(spec, row) for spec in slow]
    except SiteModelError as e:
      failures.append((index, e))
      continue
    shape_key = tuple(v.shape for v in values)
    indices, columns = by_shape.setdefault(shape_key, ([], {s.name: [] for s in slow}))
    indices.append(index)
    for spec, value in zip(slow, values):
      columns[spec.name].append(value)
  batches = []
  for indices, columns in by_shape.values():
    tensors = {}
    for name in specs:
      tensors[name] = np.stack(columns[name]) if name in columns else fast[name][indices]
    batches.append(FeatureBatch(indices, tensors))
  return batches, failures
