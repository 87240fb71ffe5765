"""``json.loads``, with orjson doing the parsing wherever the two give the same value.

Every input row of the per-site job is parsed twice: when it is keyed by
site, and when its chunk is decoded after the shuffle. Python's decoder takes
about 1.8-2.5 us for a six-field row on its own and 1.4 us per row of a
1,000-row array; orjson 0.6 and 0.5 us.

Where both read a text, they read it to the same value (same types, same
floats bit for bit, duplicate keys: the last wins, in the first one's place),
except for these, which orjson refuses and :func:`loads` then hands to
``json.loads``:

- ``NaN``, ``Infinity``, ``-Infinity`` (Python's json reads them; pandas
  writes ``NaN``);
- numbers beyond a double (``1e400``: json gives ``inf``);
- escapes of lone surrogates (``"\\ud800"``);
- nesting beyond 1,024 levels.

And one it reads differently without refusing: an integer beyond 64 bits
(``18446744073709551616``) becomes a float, where json keeps the exact
``int``. Such a float is at least 2**63 in magnitude, so a result holding
any float that large is parsed again with ``json.loads`` (a genuine
``1e19`` pays for that too). That check walks the result (about 0.6 us for
a six-field row); a caller that has shown the text holds no run of 19 digits
(:func:`integers_fit`, one ``bytes.translate`` of a whole block of lines)
skips it: every integer literal of such a text fits 64 bits.
``tests/test_json_loads.py`` compares the two on generated texts.

Nesting: ``json.loads`` raises ``RecursionError`` where the text nests deeper
than the interpreter's stack allows (about 1,000 levels, fewer when called
from deep in a stack); orjson reads up to 1,024 levels whatever the caller's
depth, so between the two :func:`loads` returns the value json would give
with stack enough. The job's readers refuse nesting beyond 100 levels anyway
(:data:`transforms.site.instances.MAX_NESTING`).

Error policy: raises what ``json.loads`` raises for the text
(``json.JSONDecodeError``, ``RecursionError``).
"""
import json
from typing import Any, Dict, Optional, Union

import orjson

_HUGE = float(2**63)  # smallest magnitude of a float orjson makes of an integer
# Digits as '0': an integer of 2**63 or more (19 digits at least) shows as 19 zeros in a row.
_DIGITS_AS_ZERO = bytes.maketrans(b'123456789', b'000000000')
LONG_DIGIT_RUN = b'0' * 19


def integers_fit(data: bytes) -> bool:
  """Whether ``data`` (JSON text as UTF-8) holds no run of 19 digits, so that every integer
  in it fits 64 bits (see :func:`loads`); digits in strings count too."""
  return LONG_DIGIT_RUN not in data.translate(_DIGITS_AS_ZERO)


def loads(text: Union[str, bytes], *, integers_fit: bool = False) -> Any:  # pylint: disable=redefined-outer-name
  """What ``json.loads(text)`` returns, or the error it raises; ``text`` may be UTF-8
  bytes (then read as ``json.loads(text.decode('utf-8'))`` reads them).

  ``integers_fit``: the caller has shown that the text holds no run of 19
  digits (:func:`integers_fit`); the result is then not checked for
  integers orjson made floats of.
  """
  try:
    value = orjson.loads(text)
  except orjson.JSONDecodeError:
    return json.loads(_text(text))
  if not integers_fit and _has_huge_float(value):
    return json.loads(_text(text))
  return value


def _text(text: Union[str, bytes]) -> str:
  return text.decode('utf-8') if isinstance(text, bytes) else text


def object_of_utf8(data: bytes, *, integers_fit: bool = False) -> Optional[Dict[str, Any]]:  # pylint: disable=redefined-outer-name
  """The object ``loads(data.decode('utf-8'))`` returns, where orjson alone reads it so;
  None for anything else (another value, text orjson refuses: not UTF-8, a
  BOM, NaN...), which the caller then decodes and parses the general way.

  No decoded copy of ``data`` is made: the fast path of a reader that keeps
  each line as the bytes it read. ``integers_fit``: as for :func:`loads`.
  """
  try:
    value = orjson.loads(data)
  except orjson.JSONDecodeError:
    return None
  # pylint: disable=unidiomatic-typecheck
  if type(value) is not dict or not integers_fit and _has_huge_float(value):
    return None
  return value


def _has_huge_float(value: Any) -> bool:
  """Whether a parsed JSON value holds a float of magnitude >= 2**63 (no recursion)."""
  # pylint: disable=unidiomatic-typecheck
  if type(value) is float:
    return not -_HUGE < value < _HUGE
  if type(value) is not dict and type(value) is not list:
    return False
  todo = [value]
  while todo:
    container = todo.pop()
    for item in (container.values() if type(container) is dict else container):
      kind = type(item)
      if kind is float:
        if not -_HUGE < item < _HUGE:
          return True
      elif kind is dict or kind is list:
        todo.append(item)
  return False
