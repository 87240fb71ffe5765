"""Input records: parse JSON-lines instances and find each row's site.

A record is ``(source, row)``: where it came from (file name or table) and
the instance as a dict. Only the site field is read; a JSON-lines row travels
as the line it was read from, a BigQuery row as its JSON.
Both checks raise :class:`RecordFailure`, which the DoFns of
:mod:`transforms.site.rows` turn into dead letters.

Lines may hold ``NaN``, ``Infinity`` and ``-Infinity`` (Python's ``json``
reads them, pandas writes them): such a row is kept. A non-finite value in a
model input is then a ``bad_feature`` dead letter; anywhere else in the row
it is echoed in the outputs as the string ``"NaN"``, ``"Infinity"`` or
``"-Infinity"`` (:mod:`transforms.json_lines`).
"""
import math
from typing import Any, Dict, Optional, Tuple, Union

from common import json_loads
from common.failures import KEY_BY_SITE
from common.failures import PARSE
from common.failures import RecordFailure
from models.site.layout import site_id_problem

Record = Tuple[str, Dict[str, Any]]

# Site ids a DoFn remembers (see site_of's ``known``): more distinct ids start it afresh.
MAX_KNOWN_SITE_IDS = 100_000
# Deeper rows are refused: later steps (pickling, JSON encoding) recurse per level.
MAX_NESTING = 100
_SHORTEST_TOO_DEEP = 2 * (MAX_NESTING + 1)  # characters of a text nested MAX_NESTING + 1 deep


def decode_line(line: Union[bytes, str]) -> str:
  """A line as read (bytes) as text; JSON text is UTF-8 (a leading BOM is dropped).

  Raises:
    RecordFailure: ``bad_encoding``; the record keeps the bytes, backslash-escaped.
  """
  if isinstance(line, bytes):
    try:
      line = line.decode('utf-8')
    except UnicodeDecodeError as e:
      raise RecordFailure(PARSE, 'bad_encoding', f'not UTF-8: {e}',
                          line.decode('utf-8', 'backslashreplace')) from e
  return line[1:] if line.startswith('\ufeff') else line


def parse_line(line: str, *, integers_fit: bool = False) -> Dict[str, Any]:
  """One JSON-lines instance as a dict: what ``json.loads(line)`` gives, checked.

  Parsed by :func:`common.json_loads.loads` (orjson where it agrees with
  ``json``; ``json`` says why a line fails); ``integers_fit``: see there.

  Raises:
    RecordFailure: ``empty_line``, ``bad_json`` or ``not_an_object``.
  """
  try:
    row = json_loads.loads(line, integers_fit=integers_fit)
  except ValueError as e:
    if not line.strip():
      raise RecordFailure(PARSE, 'empty_line', 'blank line', line) from e
    raise RecordFailure(PARSE, 'bad_json', f'invalid JSON: {e}', line) from e
  except RecursionError as e:
    raise RecordFailure(PARSE, 'bad_json', 'invalid JSON: nested too deeply', line) from e
  if not isinstance(row, dict):
    raise RecordFailure(PARSE, 'not_an_object',
                        f'each line must be one JSON object, got {type(row).__name__}', row)
  return _nesting_checked(row, line)


def parse_utf8_line(line: bytes, *, integers_fit: bool = False) -> Optional[Dict[str, Any]]:
  """``parse_line(decode_line(line))`` of a UTF-8 line that holds one JSON object orjson
  reads on its own (:func:`common.json_loads.object_of_utf8`), with no decoded
  copy made; None for every other line, which those two then decide (a BOM,
  NaN, not UTF-8, not an object, or enough brackets to nest beyond the limit).
  """
  row = json_loads.object_of_utf8(line, integers_fit=integers_fit)
  if len(line) >= _SHORTEST_TOO_DEEP and line.count(b'{') + line.count(b'[') > MAX_NESTING:
    return None
  return row


def _nesting_checked(row: Dict[str, Any], line: str) -> Dict[str, Any]:
  # Nesting d levels takes 2 * d brackets, so a shorter line cannot nest too deep (most
  # rows: no scan); counting brackets is cheap, and only a line with many is measured.
  if (len(line) >= _SHORTEST_TOO_DEEP and line.count('{') + line.count('[') > MAX_NESTING
      and _depth(row) > MAX_NESTING):
    raise RecordFailure(PARSE, 'bad_json',
                        f'objects and arrays nested more than {MAX_NESTING} deep', line)
  return row


def _depth(value: Any) -> int:
  """Nesting depth of a parsed JSON value, without recursion."""
  deepest, stack = 0, [(value, 1)]
  while stack:
    value, depth = stack.pop()
    if isinstance(value, dict):
      value = list(value.values())
    elif not isinstance(value, list):
      continue
    deepest = max(deepest, depth)
    stack.extend((item, depth + 1) for item in value)
  return deepest


def site_id_of(value: Any, *, model_root: Optional[str] = None) -> str:
  """The site id as a string, or ValueError saying why it is unusable.

  Strings are used verbatim (no stripping: ``"twin "`` is not ``"twin"``).
  Numbers become their decimal text, whole floats without the fraction
  (``17``, ``17.0`` -> ``"17"``; ``2.5`` -> ``"2.5"``): BigQuery FLOAT64
  columns and pandas (ints become floats next to a NaN) write ids so.
  Ids that cannot name a model folder under ``model_root`` are refused
  (:func:`models.site.layout.site_id_problem`), with no I/O.
  """
  if isinstance(value, bool) or not isinstance(value, (str, int, float)):
    raise ValueError(f'site id must be a string or a number, got {type(value).__name__}')
  if isinstance(value, float):
    if not math.isfinite(value):
      raise ValueError(f'site id must be finite, got {value}')
    value = int(value) if value.is_integer() else value
  site_id = str(value)
  problem = site_id_problem(site_id, model_root)
  if problem is not None:
    raise ValueError(problem)
  return site_id


def site_of(row: Dict[str, Any],
            site_field: str,
            *,
            model_root: Optional[str] = None,
            known: Optional[Dict[Tuple[type, Any], Tuple[Optional[str], str]]] = None) -> str:
  """The row's site id (:func:`site_id_of`).

  ``known``: a dict the caller keeps (one per DoFn instance) remembering each
  site value's outcome for this ``model_root``, so the id checks run once per
  distinct value, not once per row; it is emptied when it reaches
  ``MAX_KNOWN_SITE_IDS`` entries. Keyed by the value's type too (``True``
  is refused where ``1`` is not).

  Raises:
    RecordFailure: ``missing_site`` (no field, or null) or ``bad_site``.
  """
  value = row.get(site_field)
  if value is None:
    raise RecordFailure(KEY_BY_SITE, 'missing_site', f'no {site_field!r} field', row)
  if known is None:
    return _checked(value, model_root, row)
  key = (type(value), value)
  try:
    outcome = known.get(key)
  except TypeError:  # an unhashable value (a list, a dict): refused, never cached
    return _checked(value, model_root, row)
  if outcome is None:
    try:
      outcome = (site_id_of(value, model_root=model_root), '')
    except ValueError as e:
      outcome = (None, str(e))
    if len(known) >= MAX_KNOWN_SITE_IDS:
      known.clear()
    known[key] = outcome
  site_id, problem = outcome
  if site_id is None:
    raise RecordFailure(KEY_BY_SITE, 'bad_site', problem, row)
  return site_id


def _checked(value: Any, model_root: Optional[str], row: Dict[str, Any]) -> str:
  try:
    return site_id_of(value, model_root=model_root)
  except ValueError as e:
    raise RecordFailure(KEY_BY_SITE, 'bad_site', str(e), row) from e
