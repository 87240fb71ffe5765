"""Per-site model version pins, read from a manifest file (local or gs://).

Two formats, told apart by the file's extension (``.json``, ``.csv``; other
names by their first character, ``{`` for JSON)::

  {"site-a": "3", "007": 12}            JSON: one object, site id -> version

  site_id,version                       CSV: a header naming both columns
  site-a,3                              (in any order), then one site per row
  007,12

Versions are integer folder names of the TF Serving layout
``{root}/{site}/{version}/saved_model.pb``, given as digit strings (a JSON
integer is also taken); they are kept as written, so ``"003"`` names the
folder ``003``. Site ids are taken verbatim (no trimming, ``"007"`` is not
``"7"``). A site listed with a version that has no SavedModel fails all its
rows with ``no_model`` (:func:`models.site.layout.locate` with the pinned
version): never a silent fall back to another version.

Error policy: :func:`load_manifest` raises ValueError naming the file and
the line for any malformed entry (bad syntax, a version that is not an
integer, an empty site id, a site listed twice), so the job can refuse the
flag before it starts; I/O errors propagate.
"""
import csv
import io
import json
from typing import Dict, Optional

from common import paths

_CSV_COLUMNS = ('site_id', 'version')


def load_manifest(path: str) -> Dict[str, str]:
  """The manifest's ``{site_id: version}``.

  Raises:
    ValueError: ``"<path>: line N: problem"`` for a malformed manifest.
  """
  text = paths.read_text(path)  # not UTF-8: NotUtf8Text, a ValueError '<path>: line N: ...'
  lowered = path.lower()
  if lowered.endswith('.json') or (not lowered.endswith('.csv') and text.lstrip().startswith('{')):
    return _from_json(path, text)
  return _from_csv(path, text)


def pinned_version(site_id: str,
                   manifest: Optional[Dict[str, str]],
                   default: Optional[str] = None) -> Optional[str]:
  """The version to load for ``site_id``: its pin, else ``default`` (None: the highest)."""
  if manifest:
    return manifest.get(site_id, default)
  return default


def _version(path: str, line: int, site_id: str, value) -> str:
  if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
    return str(value)
  if isinstance(value, str) and value.isascii() and value.isdigit():
    return value
  raise ValueError(f'{path}: line {line}: version {value!r} of site {site_id!r} is not a '
                   'non-negative integer (a version folder name)')


def _add(path: str, line: int, manifest: Dict[str, str], lines: Dict[str, int], site_id,
         version) -> None:
  if not isinstance(site_id, str) or not site_id:
    raise ValueError(f'{path}: line {line}: empty site id')
  if site_id in manifest:
    raise ValueError(f'{path}: line {line}: site {site_id!r} is listed twice '
                     f'(first on line {lines[site_id]})')
  manifest[site_id] = _version(path, line, site_id, version)
  lines[site_id] = line


def _from_json(path: str, text: str) -> Dict[str, str]:
  try:
    parsed = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f'{path}: line {e.lineno}: invalid JSON: {e.msg}') from e
  if not isinstance(parsed, dict):
    raise ValueError(f'{path}: line 1: the manifest must be one JSON object '
                     f'{{"site": "version", ...}}, got {type(parsed).__name__}')
  # Walk the (valid) object once more, pair by pair, to know each pair's line;
  # json.loads alone keeps only the last of two equal keys.
  decoder = json.JSONDecoder()
  manifest: Dict[str, str] = {}
  lines: Dict[str, int] = {}
  pos = _skip_space(text, _skip_space(text, 0) + 1)  # past '{'
  while text[pos] != '}':
    line = text.count('\n', 0, pos) + 1
    site_id, pos = decoder.raw_decode(text, pos)
    pos = _skip_space(text, _skip_space(text, pos) + 1)  # past ':'
    version, pos = decoder.raw_decode(text, pos)
    _add(path, line, manifest, lines, site_id, version)
    pos = _skip_space(text, pos)
    if text[pos] == ',':
      pos = _skip_space(text, pos + 1)
  return manifest


def _skip_space(text: str, pos: int) -> int:
  while text[pos] in ' \t\r\n':
    pos += 1
  return pos


def _from_csv(path: str, text: str) -> Dict[str, str]:
  reader = csv.reader(io.StringIO(text, newline=''), strict=True)
  manifest: Dict[str, str] = {}
  lines: Dict[str, int] = {}
  columns = None
  while True:
    start = reader.line_num + 1
    try:
      fields = next(reader)
    except StopIteration:
      break
    except csv.Error as e:
      raise ValueError(f'{path}: line {start}: invalid CSV: {e}') from e
    if not fields:
      continue  # blank line
    if columns is None:
      names = [name.strip() for name in fields]
      if sorted(names) != sorted(_CSV_COLUMNS):
        raise ValueError(f'{path}: line {start}: the header must name the columns '
                         f'{",".join(_CSV_COLUMNS)}, got {",".join(fields)!r}')
      columns = [names.index(name) for name in _CSV_COLUMNS]
      continue
    if len(fields) != len(_CSV_COLUMNS):
      raise ValueError(f'{path}: line {start}: {len(fields)} fields, expected site_id,version')
    site_id, version = (fields[i] for i in columns)
    _add(path, start, manifest, lines, site_id, version.strip())
  if columns is None and text.strip():
    raise ValueError(f'{path}: line 1: no site_id,version header')
  return manifest
