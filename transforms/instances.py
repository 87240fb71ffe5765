"""Input records: parse JSON-lines instances and key them by site.

A record is ``(source, row)``: where it came from (file name or table) and
the instance as a dict. Rows travel untouched; only the site field is read.
"""
import json
import math
from typing import Any, Dict, Tuple

import apache_beam as beam

from transforms.dead_letters import dead_letter
from transforms.dead_letters import failed

Record = Tuple[str, Dict[str, Any]]

PARSE_STAGE = 'parse'
SITE_STAGE = 'key_by_site'
_FORBIDDEN_IN_SITE = set('/\\*?[]') | {'\x00'}


class ParseJsonLine(beam.DoFn):
  """``(file name, line) -> (file name, row dict)``.

  Error policy: every line either parses to a JSON object or becomes a dead
  letter (``empty_line``, ``bad_json``, ``not_an_object``); nothing raises.
  """

  def process(self, element: Tuple[str, str]):
    source, line = element
    if not line.strip():
      yield failed(dead_letter(PARSE_STAGE, 'empty_line', 'blank line',
                               source=source, record=line))
      return
    try:
      row = json.loads(line)
    except ValueError as e:
      yield failed(dead_letter(PARSE_STAGE, 'bad_json', f'invalid JSON: {e}',
                               source=source, record=line))
      return
    if not isinstance(row, dict):
      yield failed(dead_letter(
          PARSE_STAGE, 'not_an_object',
          f'each line must be one JSON object, got {type(row).__name__}',
          source=source, record=row))
      return
    yield source, row


def site_id_of(value: Any) -> str:
  """The site id as a string, or ValueError saying why it is unusable.

  Site ids name folders under the model root, so path separators, glob
  characters and ``.``/``..`` are refused.
  """
  if isinstance(value, bool) or not isinstance(value, (str, int, float)):
    raise ValueError(f'site id must be a string or a number, got {type(value).__name__}')
  if isinstance(value, float):
    if not math.isfinite(value):
      raise ValueError(f'site id must be finite, got {value}')
    value = int(value) if value.is_integer() else value
  site_id = str(value).strip()
  if site_id in ('', '.', '..') or _FORBIDDEN_IN_SITE & set(site_id):
    raise ValueError(f'site id {site_id!r} cannot name a model folder')
  return site_id


class KeyBySite(beam.DoFn):
  """``(source, row) -> (site_id, (source, row))``.

  Error policy: a row without the site field (or with null) is a
  ``missing_site`` dead letter; an unusable value a ``bad_site`` one.
  """

  def __init__(self, site_field: str):
    self._site_field = site_field

  def process(self, record: Record):
    source, row = record
    value = row.get(self._site_field)
    if value is None:
      yield failed(dead_letter(
          SITE_STAGE, 'missing_site', f'no {self._site_field!r} field',
          source=source, record=row))
      return
    try:
      site_id = site_id_of(value)
    except ValueError as e:
      yield failed(dead_letter(SITE_STAGE, 'bad_site', str(e), source=source, record=row))
      return
    yield site_id, record
