"""Trigger file bytes -> a JSON object, refusing anything ambiguous or hostile.

Only strict, unambiguous JSON is accepted, so what the function launches is
what its author meant:

- at most ``MAX_TRIGGER_BYTES`` (the caller reads at most one byte more);
- UTF-8 (a UTF-8 byte order mark is dropped); UTF-16/UTF-32 (with or without
  a BOM), NUL bytes and unpaired surrogate escapes (``"\\ud800"``) are refused;
- nesting at most ``MAX_DEPTH`` deep, checked before parsing (the parser
  recurses);
- no duplicate keys, no ``NaN``/``Infinity`` literals, no numbers that
  overflow to infinity or have more than ``MAX_NUMBER_CHARS`` characters;
- a JSON object at the top.

Error policy: everything raises ``Rejected`` with a short machine ``code``
(see ``CODES``), the offending ``parameter`` where there is one, and a message
short enough for one log line (values are cut with ``show``).
"""
import json
import math
import re
from typing import Any, Dict, List, Optional, Tuple

MAX_TRIGGER_BYTES = 64 * 1024
MAX_DEPTH = 16
MAX_NUMBER_CHARS = 40
_SHOW_CHARS = 120
CODES = ('too_large', 'empty', 'bad_encoding', 'too_deep', 'not_json', 'duplicate_key',
         'non_finite_number', 'huge_number', 'not_object', 'unknown_key', 'wrong_type',
         'missing_parameter', 'unknown_job', 'unknown_parameter', 'bad_value', 'bucket_not_allowed',
         'dot_segment', 'watched_prefix', 'output_overlaps_input', 'conflicting_parameters',
         'launch_refused', 'malformed_event')
_BOMS = ((b'\x00\x00\xfe\xff', 'UTF-32'), (b'\xff\xfe\x00\x00', 'UTF-32'), (b'\xfe\xff', 'UTF-16'),
         (b'\xff\xfe', 'UTF-16'))
_UTF8_BOM = b'\xef\xbb\xbf'
# A JSON string (the closing quote optional, so that a match never fails
# and rescans: linear time on any text) or a bracket.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


class Rejected(ValueError):
  """A trigger file or request that must not launch.

  Attributes:
    code: short machine reason, one of ``CODES``.
    parameter: the trigger key or job parameter at fault, or None.
  """

  def __init__(self, message: str, *, code: str, parameter: Optional[str] = None):
    super().__init__(message)
    self.code = code
    self.parameter = parameter


def show(value: Any) -> str:
  """``repr(value)``, cut to a length that keeps a log line short."""
  text = repr(value)
  return text if len(text) <= _SHOW_CHARS else text[:_SHOW_CHARS] + f'...({len(text)} chars)'


def decode(content: bytes, size: Optional[int] = None) -> str:
  """UTF-8 text of a trigger file; raises Rejected (too_large, empty, bad_encoding).

  Args:
    content: the file's first bytes (at most ``MAX_TRIGGER_BYTES`` + 1 are needed).
    size: the object's size as GCS reports it, for the message only.
  """
  if len(content) > MAX_TRIGGER_BYTES or (size or 0) > MAX_TRIGGER_BYTES:
    raise Rejected(
        f'trigger file is {max(size or 0, len(content))} bytes, more than '
        f'{MAX_TRIGGER_BYTES}',
        code='too_large')
  for bom, encoding in _BOMS:
    if content.startswith(bom):
      raise Rejected(
          f'trigger file is {encoding} (byte order mark {bom.hex()}); '
          'save it as UTF-8',
          code='bad_encoding')
  if content.startswith(_UTF8_BOM):
    content = content[len(_UTF8_BOM):]
  if not content.strip():
    raise Rejected('trigger file is empty', code='empty')
  if b'\x00' in content:
    raise Rejected(
        f'trigger file has a NUL byte at offset {content.index(0)} '
        '(UTF-16 or binary?); save it as UTF-8 text',
        code='bad_encoding')
  try:
    return content.decode('utf-8')
  except UnicodeDecodeError as e:
    raise Rejected(f'trigger file is not UTF-8 (byte {e.start}: {e.reason})',
                   code='bad_encoding') from e


def nesting_depth(text: str) -> int:
  """Deepest ``[``/``{`` nesting outside strings (linear; text need not be valid JSON)."""
  depth = deepest = 0
  for token in _TOKEN.findall(text):
    if token in ('[', '{'):
      depth += 1
      deepest = max(deepest, depth)
    elif token in (']', '}'):
      depth -= 1
  return deepest


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
  result = {}
  for key, value in pairs:
    if key in result:
      raise Rejected(
          f'key {show(key)} appears twice in one object; which one is meant is '
          'ambiguous',
          code='duplicate_key',
          parameter=key)
    result[key] = value
  return result


def _constant(name: str):
  raise Rejected(f'{name} is not JSON (RFC 8259 has no NaN or Infinity)', code='non_finite_number')


def _integer(text: str) -> int:
  if len(text) > MAX_NUMBER_CHARS:
    raise Rejected(f'number with {len(text)} digits', code='huge_number')
  return int(text)


def _float(text: str) -> float:
  if len(text) > MAX_NUMBER_CHARS:
    raise Rejected(f'number with {len(text)} characters', code='huge_number')
  value = float(text)
  if not math.isfinite(value):
    raise Rejected(f'number {text} overflows to infinity', code='non_finite_number')
  return value


def _check_strings(value: Any) -> None:
  """Refuses unpaired surrogates (not encodable as UTF-8) anywhere in the document."""
  if isinstance(value, str):
    try:
      value.encode('utf-8')
    except UnicodeEncodeError as e:
      raise Rejected(f'string {show(value)} has an unpaired surrogate escape',
                     code='bad_encoding') from e
  elif isinstance(value, dict):
    for key, item in value.items():
      _check_strings(key)
      _check_strings(item)
  elif isinstance(value, list):
    for item in value:
      _check_strings(item)


def parse(content: bytes, size: Optional[int] = None) -> Dict[str, Any]:
  """The trigger file's top-level object; raises Rejected."""
  text = decode(content, size)
  depth = nesting_depth(text)
  if depth > MAX_DEPTH:
    raise Rejected(f'trigger file nests {depth} levels deep, more than {MAX_DEPTH}',
                   code='too_deep')
  try:
    body = json.loads(text,
                      object_pairs_hook=_no_duplicates,
                      parse_constant=_constant,
                      parse_int=_integer,
                      parse_float=_float)
  except Rejected:
    raise
  except RecursionError as e:
    raise Rejected('trigger file nests too deep', code='too_deep') from e
  except ValueError as e:
    raise Rejected(f'trigger file is not JSON: {e}', code='not_json') from e
  if not isinstance(body, dict):
    raise Rejected(f'trigger file must be a JSON object, not {type(body).__name__}',
                   code='not_object')
  _check_strings(body)
  return body
