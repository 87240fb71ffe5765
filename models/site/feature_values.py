"""The rule that turns one feature value into the array a signature input takes.

One rule decides each value, whatever the other rows of its chunk hold;
:func:`models.site.signature_inputs.batch_rows` converts plain values a column at
a time only where that gives every row what this rule gives it. Per input kind:

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
from common.failures import BAD_FEATURE
from common.failures import MISSING_FEATURE
from common.failures import PREDICT
from common.failures import RecordFailure
import base64
import binascii
import decimal
import itertools
from typing import TYPE_CHECKING, Any, List, Mapping, Tuple

import numpy as np
import tensorflow as tf

if TYPE_CHECKING:
  from models.site.signature_inputs import InputSpec

PLAIN_NUMBERS = frozenset({int, float})
_LISTS = (list, tuple)


def kind_of(spec: 'InputSpec') -> str:
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


def _bad(spec: 'InputSpec', what: str) -> RecordFailure:
  return RecordFailure(PREDICT, BAD_FEATURE, f'feature {spec.name!r} {what}')


def _preview(value: Any) -> str:
  text = repr(value)
  return text if len(text) <= 40 else text[:37] + '...'


def _structure(spec: 'InputSpec', value: Any) -> Tuple[Tuple[int, ...], List[Any]]:
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


def _wrong_type(spec: 'InputSpec', leaf: Any) -> RecordFailure:
  return _bad(spec, f'must be {spec.dtype.name}, got {type(leaf).__name__} {_preview(leaf)}')


def _float_leaf(spec: 'InputSpec', leaf: Any) -> Any:
  if isinstance(
      leaf,
      (bool, np.bool_)) or not isinstance(leaf,
                                          (int, float, decimal.Decimal, np.integer, np.floating)):
    raise _wrong_type(spec, leaf)
  if isinstance(leaf, (decimal.Decimal, np.floating)):
    try:
      return float(leaf)
    except (ValueError, OverflowError) as e:  # signaling NaN
      raise _bad(spec, f'is not a finite number: {_preview(leaf)}') from e
  return int(leaf) if isinstance(leaf, np.integer) else leaf


def _int_leaf(spec: 'InputSpec', leaf: Any) -> int:
  if isinstance(leaf, (bool, np.bool_)):
    raise _wrong_type(spec, leaf)
  if isinstance(leaf, (int, np.integer)):
    return int(leaf)
  if isinstance(leaf, (float, np.floating, decimal.Decimal)):
    whole = (leaf.is_finite() and leaf == leaf.to_integral_value() if isinstance(
        leaf, decimal.Decimal) else float(leaf).is_integer())
    if not whole:
      raise _bad(spec, f'must be whole numbers ({spec.dtype.name}), got {_preview(leaf)}')
    return int(leaf)
  raise _wrong_type(spec, leaf)


def _floats(spec: 'InputSpec', leaves: List[Any]) -> np.ndarray:
  if not PLAIN_NUMBERS.issuperset(map(type, leaves)):
    leaves = [_float_leaf(spec, leaf) for leaf in leaves]
  try:
    wide = np.array(leaves, dtype=np.float64)
  except OverflowError as e:  # an int beyond float64
    raise _bad(spec, f'is out of range for {spec.dtype.name}') from e
  if not np.isfinite(wide).all():
    raise _bad(spec, f'must be finite numbers, got {_first_non_finite(wide)}')
  with np.errstate(over='ignore'):  # overflow is checked right after
    array = wide.astype(spec.dtype.as_numpy_dtype)
  if not np.isfinite(array).all():
    raise _bad(
        spec, f'is out of range for {spec.dtype.name}: '
        f'{wide.ravel()[~np.isfinite(array).ravel()][0]!r}')
  return array


def _first_non_finite(array: np.ndarray) -> str:
  return repr(float(array.ravel()[~np.isfinite(array.ravel())][0]))


def integer_bounds(spec: 'InputSpec') -> Tuple[int, int]:
  info = np.iinfo(spec.dtype.as_numpy_dtype)
  return int(info.min), int(info.max)


def _ints(spec: 'InputSpec', leaves: List[Any]) -> np.ndarray:
  if not {int}.issuperset(map(type, leaves)):
    leaves = [_int_leaf(spec, leaf) for leaf in leaves]
  low, high = integer_bounds(spec)
  if leaves and (min(leaves) < low or max(leaves) > high):
    outside = next(v for v in leaves if v < low or v > high)
    raise _bad(spec, f'is out of range for {spec.dtype.name}: {_preview(outside)}')
  return np.array(leaves, dtype=spec.dtype.as_numpy_dtype)


def _bools(spec: 'InputSpec', leaves: List[Any]) -> np.ndarray:
  for leaf in leaves:
    if not isinstance(leaf, (bool, np.bool_)):
      raise _wrong_type(spec, leaf)
  return np.array(leaves, dtype=bool)


def _string_leaf(spec: 'InputSpec', leaf: Any) -> bytes:
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


def _strings(spec: 'InputSpec', leaves: List[Any]) -> np.ndarray:
  array = np.empty(len(leaves), dtype=object)
  array[:] = [_string_leaf(spec, leaf) for leaf in leaves]
  return array


_CONVERT = {'f': _floats, 'i': _ints, 'b': _bools, 's': _strings}


def _check_shape(spec: 'InputSpec', shape: Tuple[int, ...]) -> Tuple[int, ...]:
  if shape == () and spec.row_shape == (1, ):
    return (1, )
  if len(shape) != len(spec.row_shape) or any(want is not None and want != got
                                              for want, got in zip(spec.row_shape, shape)):
    raise _bad(spec, f'has shape {list(shape)}; the model expects {spec.describe()}')
  return shape


def convert(spec: 'InputSpec', value: Any) -> np.ndarray:
  """One non-null value for ``spec`` as an array of its row shape (module rule).

  Raises:
    RecordFailure: ``bad_feature``.
  """
  kind = kind_of(spec)
  if kind == '?':
    raise _bad(spec, f'has dtype {spec.dtype.name}, which instances cannot hold')
  if isinstance(value, dict) and not (kind == 's' and set(value) == {'b64'}):
    raise _wrong_type(spec, value)
  shape, leaves = _structure(spec, value)
  array = _CONVERT[kind](spec, leaves)
  return array.reshape(_check_shape(spec, shape))


def to_array(spec: 'InputSpec', row: Mapping[str, Any]) -> np.ndarray:
  """One row's value for ``spec``, as an array of the row shape.

  Raises:
    RecordFailure: ``missing_feature`` (absent or null) or ``bad_feature``.
  """
  value = row.get(spec.name)
  if value is None:
    what = 'is null' if spec.name in row else 'is missing'
    raise RecordFailure(PREDICT, MISSING_FEATURE, f'signature input {spec.name!r} {what}')
  return convert(spec, value)
