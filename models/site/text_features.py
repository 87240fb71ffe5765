"""Text values (CSV cells) typed by the signature: the dtype decides, the text never does.

CSV has no types: every cell is text. Rows read from CSV
(:mod:`transforms.site.csv_rows`) keep their cells as strings, and once a
site's model is known :func:`typed_row` converts the cells its signature
takes, by the input's dtype: ``"007"`` stays ``"007"`` for a string input and
is 7 only for an integer one. Fields that are not signature inputs stay text
(they are only echoed). Cell encoding, per signature input:

* **empty cell**: missing (``missing_feature``) whatever the dtype. CSV cannot
  tell an empty string from a missing value, and pandas writes NaN and None
  as empty cells; an empty string feature needs JSON-lines.
* **integers**: decimal text ``12``, ``-3``, ``+4``, also a whole decimal
  ``12.0`` or ``1e3`` (pandas writes integer columns that have gaps as
  floats); the value must fit the dtype (``int32``, ``uint8``, ...).
* **floats**: decimal text ``12.5``, ``-1e-3``, ``.5``; ``nan``, ``inf``,
  ``infinity`` (any case, signed) and values beyond the dtype's range are
  ``bad_feature``, never NaN or infinity.
* **bool**: ``true`` / ``false`` in any case (pandas writes ``True``).
* **string**: the text, unchanged (also for a ``[None, 1]`` string input).
* **inputs of one or more dims** (``[None, k]``): a JSON array in the cell,
  ``[1.5, 2, 3]`` (the CSV writer quotes it for its commas), nested for more
  dims; its items must be JSON values of the dtype's kind (numbers for
  numeric inputs, no NaN; strings for string inputs; true/false for bool).
  A numeric or bool ``[None, 1]`` input also takes a plain cell ``2.5``.
* **a list of cells** (an array instance, see
  :mod:`models.site.instance_config`): each cell typed as above, one dim less.

ASCII spaces and tabs around numbers and booleans are ignored; other
spellings (``1_000``, non-ASCII digits, hex) are ``bad_feature``. Values that
are not text (already typed) are left as they are.

Error policy: :func:`typed_row` raises :class:`RecordFailure` with reason
``missing_feature`` or ``bad_feature`` for the first input it cannot convert;
the caller fails that row alone, as :mod:`models.site.signature_inputs` does.
"""
import decimal
import json
import math
import re
from typing import Any, Dict, Mapping, NamedTuple

import tensorflow as tf

from common.failures import BAD_FEATURE
from common.failures import MISSING_FEATURE
from common.failures import PREDICT
from common.failures import RecordFailure
from models.site.signature_inputs import InputSpec

_INTEGER = re.compile(r'[+-]?[0-9]+\Z')
_DECIMAL = re.compile(r'[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z')
_NOT_FINITE = ('nan', 'inf', 'infinity')
_SPACES = ' \t'
# A whole decimal with a larger exponent cannot fit any integer dtype; refusing
# it early keeps int(Decimal('1e999999999')) from building a huge number.
_MAX_INTEGER_EXPONENT = 40
_MANTISSA_BITS = {'float16': 10, 'bfloat16': 7, 'float32': 23}

STRING, BOOL, INTEGER, FLOAT = 'string', 'bool', 'integer', 'float'


class _Input(NamedTuple):
  """What typing needs of one signature input, read from its spec once."""
  name: str
  dtype_name: str
  kind: str
  dims: int
  width_one: bool  # row shape (1,): a plain cell is taken too
  low: float  # integers: the dtype's range; floats: -high
  high: float  # floats: the magnitude from which a value rounds to infinity


def _overflow_at(dtype: tf.dtypes.DType) -> float:
  """The smallest magnitude a float dtype rounds to infinity (ties go to even: infinity)."""
  bits = _MANTISSA_BITS.get(dtype.name)
  if bits is None:
    return math.inf  # float64 (and others): only an infinite double overflows
  top = float(dtype.max)
  return top + 2.0**(math.frexp(top)[1] - 2 - bits)  # max plus half its ulp


def _input(spec: InputSpec) -> _Input:
  dims, width_one = len(spec.row_shape), spec.row_shape == (1, )
  if spec.dtype == tf.string:
    return _Input(spec.name, spec.dtype.name, STRING, dims, width_one, 0, 0)
  if spec.dtype == tf.bool:
    return _Input(spec.name, spec.dtype.name, BOOL, dims, width_one, 0, 0)
  if spec.dtype.is_integer:
    return _Input(spec.name, spec.dtype.name, INTEGER, dims, width_one, int(spec.dtype.min),
                  int(spec.dtype.max))
  high = _overflow_at(spec.dtype)
  return _Input(spec.name, spec.dtype.name, FLOAT, dims, width_one, -high, high)


class TextTyper:
  """:func:`typed_row` for many rows of one signature: its specs are read once.

  ``TextTyper(specs)(row)`` equals ``typed_row(specs, row)``; build one per
  chunk (TF dtype checks cost microseconds each).
  """

  def __init__(self, specs: Mapping[str, InputSpec]):
    self._inputs = [_input(spec) for spec in specs.values()]

  def __call__(self, row: Mapping[str, Any]) -> Dict[str, Any]:
    typed = dict(row)
    for spec in self._inputs:
      if spec.name in row:
        typed[spec.name] = _typed_value(spec, row[spec.name], spec.dims)
    return typed


def typed_row(specs: Mapping[str, InputSpec], row: Mapping[str, Any]) -> Dict[str, Any]:
  """``row`` with the text of each signature input converted to its dtype.

  Args:
    specs: the signature's inputs by name
      (:func:`models.site.signature_inputs.signature_inputs`).
    row: one instance whose values are CSV text (or lists of it).

  Returns:
    A new dict: converted inputs, every other field unchanged. Inputs absent
    from the row stay absent (the signature conversion reports them).

  Raises:
    RecordFailure: ``missing_feature`` for an empty cell, ``bad_feature``
      for text that is not a value of the input's dtype.
  """
  return TextTyper(specs)(row)


def _typed_value(spec: _Input, value: Any, dims: int) -> Any:
  """One input's value, a cell (text) or a list of cells, with ``dims`` dims left."""
  if isinstance(value, list):
    return [_typed_value(spec, item, max(dims - 1, 0)) for item in value]
  if not isinstance(value, str):
    return value
  if not value.strip(_SPACES):
    raise RecordFailure(PREDICT, MISSING_FEATURE, f'feature {spec.name!r} is an empty cell')
  if spec.kind == STRING and (dims == 0 or spec.width_one):
    return value
  if dims == 0 or (spec.width_one and not value.lstrip(_SPACES).startswith('[')):
    return _scalar(spec, value)
  return _json_array(spec, value)


def _scalar(spec: _Input, text: str) -> Any:
  stripped = text.strip(_SPACES)
  if spec.kind == BOOL:
    lowered = stripped.lower()
    if lowered in ('true', 'false'):
      return lowered == 'true'
    raise _bad(spec, text, 'is not true or false')
  if spec.kind == INTEGER and _INTEGER.match(stripped):
    return _checked_int(spec, int(stripped), text)
  if not _DECIMAL.match(stripped):
    if stripped.lower().lstrip('+-') in _NOT_FINITE:
      raise _bad(spec, text, 'is not finite: NaN and infinity are not feature values')
    if spec.kind == INTEGER:
      raise _bad(spec, text, f'is not an integer ({spec.dtype_name})')
    raise _bad(spec, text, 'is not a decimal number')
  if spec.kind == INTEGER:
    number = decimal.Decimal(stripped)
    if number.adjusted() > _MAX_INTEGER_EXPONENT:
      raise _bad(spec, text, f'is out of range for {spec.dtype_name}')
    if number != number.to_integral_value():
      raise _bad(spec, text, f'is not a whole number ({spec.dtype_name})')
    return _checked_int(spec, int(number), text)
  return _checked_float(spec, float(stripped), text)


def _checked_int(spec: _Input, value: int, shown: Any) -> int:
  if not spec.low <= value <= spec.high:
    raise _bad(spec, shown, f'is out of range for {spec.dtype_name}')
  return value


def _checked_float(spec: _Input, value: float, shown: Any) -> float:
  """``value`` unless it is, or rounds to, infinity in the input's dtype."""
  if not -spec.high < value < spec.high or not math.isfinite(value):
    raise _bad(spec, shown, f'is out of range for {spec.dtype_name}')
  return value


def _refuse_constant(name: str):
  raise ValueError(f'{name} is not a feature value')


def _json_array(spec: _Input, text: str) -> list:
  try:
    value = json.loads(text, parse_constant=_refuse_constant)
  except (ValueError, RecursionError) as e:
    raise _bad(spec, text, f'is not a JSON array: {e}') from e
  if not isinstance(value, list):
    raise _bad(spec, text, 'must be a JSON array for this input')
  return _check_items(spec, value, text)


def _check_items(spec: _Input, items: list, text: str) -> list:
  """Checks JSON items are of the dtype's kind; ints range-checked, whole floats kept."""
  checked = []
  for item in items:
    if isinstance(item, list):
      checked.append(_check_items(spec, item, text))
    elif spec.kind == STRING:
      if not isinstance(item, str):
        raise _bad(spec, text, 'must hold JSON strings')
      checked.append(item)
    elif spec.kind == BOOL:
      if not isinstance(item, bool):
        raise _bad(spec, text, 'must hold true or false')
      checked.append(item)
    elif isinstance(item, bool) or not isinstance(item, (int, float)):
      raise _bad(spec, text, f'must hold JSON numbers ({spec.dtype_name})')
    elif spec.kind == INTEGER:
      if isinstance(item, float) and not item.is_integer():
        raise _bad(spec, text, f'must hold whole numbers ({spec.dtype_name})')
      checked.append(_checked_int(spec, int(item), text))
    else:
      checked.append(_checked_float(spec, item, text))
  return checked


def _bad(spec: _Input, text: Any, problem: str) -> RecordFailure:
  shown = repr(text) if len(repr(text)) <= 40 else repr(text)[:37] + '...'
  return RecordFailure(PREDICT, BAD_FEATURE, f'feature {spec.name!r}: {shown} {problem}')
