"""Where a site's SavedModel lives under the model root.

TF Serving layout ``{root}/{site}/{version}/saved_model.pb`` (the highest
integer version wins unless one is pinned), or ``{root}/{site}/saved_model.pb``.

A site id names its folder verbatim (no stripping, no case or Unicode
folding: ``"twin "`` and ``"twin"`` are two sites with two folders). Ids
that cannot name a folder or object are refused before any I/O
(:func:`site_id_problem`).
"""
import os
import posixpath
import unicodedata
from typing import NamedTuple, Optional

from common.failures import BAD_SITE
from common.failures import KEY_BY_SITE
from common.failures import MODEL_LOAD_FAILED
from common.failures import NO_MODEL
from common.failures import PREDICT
from common.failures import RecordFailure
from common import paths
from models.site.errors import permanent_storage_errors_fail_the_site

SAVED_MODEL_FILE = 'saved_model.pb'
MAX_NAME_BYTES = 255  # one path component (NAME_MAX); GCS has no such limit, local disks do
MAX_GCS_OBJECT_BYTES = 1024  # a GCS object name, UTF-8
MAX_LOCAL_PATH_BYTES = 4095  # PATH_MAX less the terminating NUL
_FORBIDDEN = frozenset('/\\*?[]')


class ModelLocation(NamedTuple):
  site_id: str
  path: str  # folder holding saved_model.pb
  version: Optional[str]  # None for the unversioned layout


def site_id_problem(site_id: str, model_root: Optional[str] = None) -> Optional[str]:
  """Why ``site_id`` cannot name a model folder, or None when it can.

  Refused: the empty id, ``.`` and ``..``; ids holding ``/``, ``\\``, glob
  characters ``*?[]``, NUL or any other control character (Unicode
  category Cc); text that is not valid Unicode (a lone surrogate); ids of
  more than 255 bytes in UTF-8. With ``model_root``: ids for which
  ``{model_root}/{site}/saved_model.pb`` would be longer than a GCS object
  name (1024 bytes, gs:// roots) or a local path (4095 bytes).
  """
  if site_id in ('', '.', '..'):
    return f'site id {site_id!r} cannot name a model folder'
  if _FORBIDDEN.intersection(site_id):
    return f'site id {_short(site_id)} holds a path or glob character (/ \\ * ? [ ])'
  if any(unicodedata.category(c) == 'Cc' for c in site_id):
    return f'site id {_short(site_id)} holds a control character'
  try:
    size = len(site_id.encode('utf-8'))
  except UnicodeEncodeError:
    return f'site id {_short(site_id)} is not valid Unicode text'
  if size > MAX_NAME_BYTES:
    return (f'site id of {size} bytes (UTF-8) cannot name a model folder '
            f'(at most {MAX_NAME_BYTES}): {_short(site_id)}')
  if model_root is not None:
    too_long = _path_too_long(model_root, site_id)
    if too_long:
      return too_long
  return None


def _join(base: str, *parts: str) -> str:
  """:func:`common.paths.join`, without Beam's filesystem lookup for a local ``base``.

  Beam joins local paths with ``os.path.join``; asking it costs more than
  the rest of a lookup, which runs once per site.
  """
  if paths.is_local(base):
    return os.path.join(base.rstrip('/\\') or base, *parts)
  return paths.join(base, *parts)


def _path_too_long(model_root: str, site_id: str) -> Optional[str]:
  model_file = _join(model_root, site_id, SAVED_MODEL_FILE)
  if model_root.startswith('gs://'):
    object_name = model_file[len('gs://'):].partition('/')[2]
    size = len(object_name.encode('utf-8', 'surrogateescape'))
    limit, what = MAX_GCS_OBJECT_BYTES, 'GCS object name'
  elif paths.is_local(model_root):
    size, limit, what = len(os.fsencode(model_file)), MAX_LOCAL_PATH_BYTES, 'local path'
  else:
    return None
  if size > limit:
    return (f'site id {_short(site_id)} makes {what} {_short(model_file)} of {size} bytes '
            f'(at most {limit})')
  return None


def _short(text: str, limit: int = 60) -> str:
  shown = repr(text)
  return shown if len(shown) <= limit else f'{shown[:limit - 3]}...'


def locate(model_root: str, site_id: str, pinned_version: Optional[str] = None) -> ModelLocation:
  """Finds the folder to load for ``site_id``.

  Raises:
    RecordFailure: ``bad_site`` (checked before any I/O) when the id cannot
      name a folder under ``model_root``; ``no_model`` when the site has no
      folder (or not the pinned version); ``model_load_failed`` when its
      folder holds no SavedModel, or a storage error retrying cannot fix
      (name too long, permission denied, HTTP 4xx) stops the lookup.
    Exception: any other storage error propagates, so the runner retries.
  """
  problem = site_id_problem(site_id, model_root)
  if problem is not None:
    raise RecordFailure(KEY_BY_SITE, BAD_SITE, problem)
  with permanent_storage_errors_fail_the_site(
      f'cannot look up the model of site {_short(site_id)} under {model_root}'):
    return _locate(model_root, site_id, pinned_version)


def _locate(model_root: str, site_id: str, pinned_version: Optional[str]) -> ModelLocation:
  site_dir = _join(model_root, site_id)
  if pinned_version is not None:
    version_dir = _join(site_dir, pinned_version)
    if paths.exists(_join(version_dir, SAVED_MODEL_FILE)):
      return ModelLocation(site_id, version_dir, pinned_version)
    raise RecordFailure(PREDICT, NO_MODEL,
                        f'no {SAVED_MODEL_FILE} for version {pinned_version} under {site_dir}')

  versions = {int(v): v for v in _version_folders(site_dir)}
  if versions:
    version = versions[max(versions)]
    return ModelLocation(site_id, _join(site_dir, version), version)
  if paths.exists(_join(site_dir, SAVED_MODEL_FILE)):
    return ModelLocation(site_id, site_dir, None)
  if paths.exists(site_dir):
    raise RecordFailure(
        PREDICT, MODEL_LOAD_FAILED,
        f'{site_dir} holds no {SAVED_MODEL_FILE} (neither directly nor in an '
        'integer version folder)')
  raise RecordFailure(PREDICT, NO_MODEL, f'no model folder {site_dir}')


def _version_folders(site_dir: str):
  """Integer-named subfolders of ``site_dir`` that hold a saved_model.pb.

  Raises:
    OSError: the folder exists but cannot be listed (permission, name too long).
  """
  if paths.is_local(site_dir):
    # One listdir instead of Beam's recursive match: this runs once per site.
    try:
      names = os.listdir(site_dir)
    except (FileNotFoundError, NotADirectoryError):
      return []
    return [
        n for n in names
        if _is_version(n) and os.path.isfile(os.path.join(site_dir, n, SAVED_MODEL_FILE))
    ]
  found = paths.match(paths.join(site_dir, '*', SAVED_MODEL_FILE))
  names = (posixpath.basename(posixpath.dirname(m.path)) for m in found)
  return [n for n in names if _is_version(n)]


def _is_version(name: str) -> bool:
  # str.isdigit() is also true for '²' and other digits int() refuses.
  return name.isascii() and name.isdigit()
