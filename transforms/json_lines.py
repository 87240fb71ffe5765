"""JSON-lines encoding that accepts what TF, NumPy and BigQuery hand us.

Every line written is strict RFC 8259 JSON: parsers that refuse ``NaN`` and
``Infinity`` (BigQuery loads, jq, Java, Go, JavaScript) read all of them.
What happens to a non-finite float is the caller's choice, per encoder:

* :data:`RAISE` (default): ``ValueError``. For values that are finite by
  construction (model outputs are checked before they get here).
* :data:`AS_STRING`: written as the strings ``"NaN"``, ``"Infinity"`` and
  ``"-Infinity"`` (the convention of protobuf's JSON mapping). For records
  echoed as they came (instances, dead-letter records), whose unfed fields
  may hold such values: Python's ``json`` reads ``NaN`` in input lines, and
  BigQuery FLOAT64 columns hold NaN and infinities. Such a value then reads
  back like the string of the same text.
* :data:`PYTHON`: bare ``NaN``/``Infinity`` (not JSON). Only for text the
  job reads back itself with Python's ``json`` (rows packed for the shuffle).

:func:`loads_strict` is the matching reader: it refuses what a strict
parser refuses.
"""
import base64
import datetime
import decimal
import json
import math
from typing import Any, Callable, Optional, Union

import numpy as np

RAISE = 'raise'
AS_STRING = 'string'
PYTHON = 'python'
NON_FINITE_POLICIES = (RAISE, AS_STRING, PYTHON)


def _default(value: Any) -> Any:
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, np.generic):
    item = value.item()
    # A float128 stays a NumPy scalar (no Python number holds it): its nearest double.
    return float(item) if isinstance(item, np.floating) else item
  if isinstance(value, bytes):
    try:
      return value.decode('utf-8')
    except UnicodeDecodeError:
      # AI Platform's convention for binary values.
      return {'b64': base64.b64encode(value).decode('ascii')}
  if isinstance(value, decimal.Decimal):
    return float(value)
  if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
    return value.isoformat()
  raise TypeError(f'{type(value).__name__} is not JSON serializable')


# Number shapes: every digit as 0, E as e and - as + (bytes.translate runs at memory
# speed). A number whose double may be infinite (or zero from an underflow) then shows as
# an exponent of three or more digits after a digit ('0e000', '0e+000'), or as 309 digits
# in a row. Such text in a string ("v1e100") also shows (then: not verbatim); ids such as
# "site-001" or "site-00001-e100" do not.
_NUMBER_SHAPES = bytes.maketrans(b'123456789E-', b'000000000e+')
_FAR_NUMBERS = (b'0e000', b'0e+000', b'0' * 309)


def number_shapes(text: Union[str, bytes]) -> Optional[bytes]:
  """ASCII ``text`` (str or bytes) as bytes with every digit as ``0``, ``E`` as ``e``
  and ``-`` as ``+`` (what :func:`writes_verbatim` looks for); None for text that is
  not ASCII."""
  if not text.isascii():
    return None
  data = text.encode('ascii') if isinstance(text, str) else text
  return data.translate(_NUMBER_SHAPES)


def writes_verbatim(text: Union[str, bytes], shapes: Optional[bytes] = None) -> bool:
  """Whether JSON text that Python's ``json`` parsed may be written back as it is, where
  an encoder of this module would write the parsed value.

  True when the text holds nothing this module writes otherwise: only ASCII
  (no U+2028 or U+0085 to split a line on), no ``NaN`` or ``Infinity``
  (anywhere, strings included), no carriage return (JSON whitespace that
  some line readers split on), and no number that might not be a finite
  double (:data:`_FAR_NUMBERS`). The text then reads back as the same value,
  except that a repeated object key stays repeated (readers keep the last,
  as the parse did). ``text``: a str, or its UTF-8 bytes; ``shapes``:
  :func:`number_shapes` of the text, where the caller made it already.
  """
  if not text.isascii():
    return False
  data = text.encode('ascii') if isinstance(text, str) else text
  # One-byte searches run at memory speed; the longer ones only where the letter is there.
  if b'\r' in data or b'N' in data and b'NaN' in data or b'I' in data and b'Infinity' in data:
    return False
  shapes = number_shapes(data) if shapes is None else shapes
  return not any(far in shapes for far in _FAR_NUMBERS)


def non_finite_text(value: float) -> str:
  """``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` for a non-finite float."""
  if math.isnan(value):
    return 'NaN'
  return 'Infinity' if value > 0 else '-Infinity'


def _finite_copy(value: Any) -> Any:
  """``value`` with every non-finite float (NumPy's included) as its string."""
  if isinstance(value, dict):
    return {k: _finite_copy(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite_copy(v) for v in value]
  if isinstance(value, (np.ndarray, np.generic)):
    return _finite_copy(value.tolist() if isinstance(value, np.ndarray) else value.item())
  if isinstance(value, decimal.Decimal) and not value.is_finite():
    return 'NaN' if value.is_nan() else non_finite_text(float(value))
  if isinstance(value, float) and not math.isfinite(value):
    return non_finite_text(value)
  return value


def encoder(*, non_finite: str = RAISE) -> Callable[[Any], str]:
  """A reusable :func:`dumps` (one encoder for many values: cheaper per value).

  Args:
    non_finite: :data:`RAISE`, :data:`AS_STRING` or :data:`PYTHON` (module doc).

  Raises:
    ValueError: unknown ``non_finite``; the encoder raises ValueError for a
      non-finite float under :data:`RAISE`, TypeError for a value JSON
      cannot hold.
  """
  if non_finite not in NON_FINITE_POLICIES:
    raise ValueError(f'non_finite must be one of {NON_FINITE_POLICIES}, got {non_finite!r}')
  encode = json.JSONEncoder(default=_default, separators=(',', ':'),
                            allow_nan=non_finite == PYTHON).encode
  if non_finite != AS_STRING:
    return encode

  def encode_as_string(value: Any) -> str:
    try:
      return encode(value)
    except ValueError:
      # Rare: only a value holding a non-finite float pays for the copy.
      return encode(_finite_copy(value))

  return encode_as_string


def dumps(value: Any, *, non_finite: str = RAISE) -> str:
  """One compact JSON line, ASCII only.

  Non-ASCII text is written as ``\\uXXXX`` escapes: a line never holds a
  character some readers split lines on (U+2028, U+0085), and text that is
  not valid Unicode (a lone surrogate from a ``"\\ud800"`` escape in the
  input) is written back as it came instead of failing the encode.
  Non-finite floats: see :func:`encoder`.
  """
  return encoder(non_finite=non_finite)(value)


def _refuse_constant(name: str) -> Any:
  raise ValueError(f'{name} is not JSON (RFC 8259)')


def _finite_float(text: str) -> float:
  value = float(text)
  if not math.isfinite(value):
    raise ValueError(f'number {text} is beyond the range of a double')
  return value


def loads_strict(text: str) -> Any:
  """Parses ``text`` as a strict RFC 8259 parser would.

  Raises:
    ValueError: invalid JSON, ``NaN``/``Infinity``/``-Infinity``, or a
      number that overflows a double (``1e400``).
  """
  return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
