"""JSON-lines encoding that accepts what TF, NumPy and BigQuery hand us."""
import base64
import datetime
import decimal
import json
from typing import Any, Callable

import numpy as np


def _default(value: Any) -> Any:
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, np.generic):
    return value.item()
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


def encoder() -> Callable[[Any], str]:
  """A reusable :func:`dumps` (one encoder for many values: cheaper per value)."""
  return json.JSONEncoder(default=_default, separators=(',', ':')).encode


def dumps(value: Any) -> str:
  """One compact JSON line, ASCII only.

  Non-ASCII text is written as ``\\uXXXX`` escapes: a line never holds a
  character some readers split lines on (U+2028, U+0085), and text that is
  not valid Unicode (a lone surrogate from a ``"\\ud800"`` escape in the
  input) is written back as it came instead of failing the encode.
  NaN/Infinity are kept as JSON extensions Python reads back.
  """
  return encoder()(value)
