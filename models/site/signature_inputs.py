"""Turning instance rows into the tensors a SavedModel signature takes.

Features are looked up by the signature's input names and cast to its
dtypes; a ``[None, k]`` input takes a list of k numbers, and a ``[None, 1]``
input also takes a plain number. Other fields of the row are ignored here.
"""
import base64
import decimal
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from models.site.errors import BAD_FEATURE
from models.site.errors import MISSING_FEATURE
from models.site.errors import SiteModelError


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


def _plain_numbers(value: Any) -> Any:
  """Decimal (BigQuery NUMERIC) -> float, recursively through lists."""
  if isinstance(value, decimal.Decimal):
    return float(value)
  if isinstance(value, (list, tuple)):
    return [_plain_numbers(v) for v in value]
  return value


def _plain_bytes(value: Any) -> Any:
  if isinstance(value, str):
    return value.encode('utf-8')
  if isinstance(value, bytes):
    return value
  if isinstance(value, dict) and set(value) == {'b64'}:
    return base64.b64decode(value['b64'])
  if isinstance(value, (list, tuple)):
    return [_plain_bytes(v) for v in value]
  raise SiteModelError(BAD_FEATURE, f'expected a string, got {type(value).__name__}')


def _check_shape(spec: InputSpec, array: np.ndarray) -> np.ndarray:
  if array.ndim == 0 and spec.row_shape == (1,):
    array = array.reshape(1)
  if array.ndim != len(spec.row_shape) or any(
      want is not None and want != got for want, got in zip(spec.row_shape, array.shape)):
    raise SiteModelError(
        BAD_FEATURE,
        f'feature {spec.name!r} has shape {list(array.shape)}; the model expects '
        f'{spec.describe()}')
  return array


def _numeric(spec: InputSpec, value: Any) -> np.ndarray:
  """Validates numbers first (no silent str->float or None->NaN), then casts."""
  try:
    array = np.asarray(_plain_numbers(value))
  except ValueError as e:   # ragged nested lists
    raise SiteModelError(BAD_FEATURE, f'feature {spec.name!r} is not a regular array: {e}') from e
  want = spec.dtype.as_numpy_dtype
  allowed = 'b' if spec.dtype == tf.bool else 'iuf'
  if array.dtype.kind not in allowed:
    raise SiteModelError(
        BAD_FEATURE,
        f'feature {spec.name!r} must be {spec.dtype.name}, got '
        f'{type(value).__name__} {_preview(value)}')
  if spec.dtype.is_integer and array.dtype.kind == 'f':
    if not np.all(np.isfinite(array)) or np.any(np.mod(array, 1) != 0):
      raise SiteModelError(
          BAD_FEATURE, f'feature {spec.name!r} must be whole numbers ({spec.dtype.name})')
  return array.astype(want)


def _preview(value: Any) -> str:
  text = repr(value)
  return text if len(text) <= 40 else text[:37] + '...'


def to_array(spec: InputSpec, row: Mapping[str, Any]) -> np.ndarray:
  """One row's value for ``spec``, as an array of the row shape.

  Raises:
    SiteModelError: ``missing_feature`` (absent or null) or ``bad_feature``.
  """
  value = row.get(spec.name)
  if value is None:
    what = 'is null' if spec.name in row else 'is missing'
    raise SiteModelError(MISSING_FEATURE, f'signature input {spec.name!r} {what}')
  if spec.is_string:
    array = np.asarray(_plain_bytes(value), dtype=object)
  else:
    array = _numeric(spec, value)
  return _check_shape(spec, array)


class FeatureBatch(NamedTuple):
  """Rows that share one value shape per input, ready for one model call."""
  row_indices: List[int]
  tensors: Dict[str, np.ndarray]


def _fast_stack(spec: InputSpec, rows: Sequence[Mapping[str, Any]]) -> Optional[np.ndarray]:
  """Stacks a whole chunk at once when every row is clean; None otherwise."""
  if spec.is_string:
    return None
  try:
    array = np.asarray([row[spec.name] for row in rows])
  except (KeyError, ValueError, TypeError):
    return None
  if array.dtype.kind not in ('b' if spec.dtype == tf.bool else 'iuf'):
    return None
  if spec.row_shape == (1,) and array.ndim == 1:
    array = array.reshape(-1, 1)
  if array.ndim != 1 + len(spec.row_shape) or any(
      want is not None and want != got for want, got in zip(spec.row_shape, array.shape[1:])):
    return None
  if spec.dtype.is_integer and array.dtype.kind == 'f':
    return None
  return array.astype(spec.dtype.as_numpy_dtype)


def batch_rows(specs: Mapping[str, InputSpec], rows: Sequence[Mapping[str, Any]]
               ) -> Tuple[List[FeatureBatch], List[Tuple[int, SiteModelError]]]:
  """Converts rows to model inputs, isolating the rows that cannot be fed.

  Returns:
    (batches, failures): batches of rows with equal value shapes, and
    ``(row index, error)`` for every row that cannot be converted.
  """
  stacked = {name: _fast_stack(spec, rows) for name, spec in specs.items()}
  if rows and all(a is not None for a in stacked.values()):
    return [FeatureBatch(list(range(len(rows))), stacked)], []

  failures = []
  by_shape: Dict[tuple, FeatureBatch] = {}
  for index, row in enumerate(rows):
    try:
      values = {name: to_array(spec, row) for name, spec in specs.items()}
    except SiteModelError as e:
      failures.append((index, e))
      continue
    shape_key = tuple((name, v.shape) for name, v in sorted(values.items()))
    batch = by_shape.setdefault(shape_key, FeatureBatch([], {n: [] for n in specs}))
    batch.row_indices.append(index)
    for name, v in values.items():
      batch.tensors[name].append(v)
  batches = [
      FeatureBatch(b.row_indices, {n: np.stack(vs) for n, vs in b.tensors.items()})
      for b in by_shape.values()]
  return batches, failures
