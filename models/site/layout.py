"""Where a site's SavedModel lives under the model root.

TF Serving layout ``{root}/{site}/{version}/saved_model.pb`` (the highest
integer version wins unless one is pinned), or ``{root}/{site}/saved_model.pb``.
"""
import os
import posixpath
from typing import NamedTuple, Optional

from models.site.errors import MODEL_LOAD_FAILED
from models.site.errors import NO_MODEL
from models.site.errors import SiteModelError
from common import paths

SAVED_MODEL_FILE = 'saved_model.pb'


class ModelLocation(NamedTuple):
  site_id: str
  path: str                 # folder holding saved_model.pb
  version: Optional[str]    # None for the unversioned layout


def locate(model_root: str, site_id: str, pinned_version: Optional[str] = None) -> ModelLocation:
  """Finds the folder to load for ``site_id``.

  Raises:
    SiteModelError: ``no_model`` when the site has no folder (or not the
      pinned version), ``model_load_failed`` when its folder holds no SavedModel.
  """
  site_dir = paths.join(model_root, site_id)
  if pinned_version is not None:
    version_dir = paths.join(site_dir, pinned_version)
    if paths.exists(paths.join(version_dir, SAVED_MODEL_FILE)):
      return ModelLocation(site_id, version_dir, pinned_version)
    raise SiteModelError(
        NO_MODEL, f'no {SAVED_MODEL_FILE} for version {pinned_version} under {site_dir}')

  versions = {int(v): v for v in _version_folders(site_dir)}
  if versions:
    version = versions[max(versions)]
    return ModelLocation(site_id, paths.join(site_dir, version), version)
  if paths.exists(paths.join(site_dir, SAVED_MODEL_FILE)):
    return ModelLocation(site_id, site_dir, None)
  if paths.exists(site_dir):
    raise SiteModelError(
        MODEL_LOAD_FAILED,
        f'{site_dir} holds no {SAVED_MODEL_FILE} (neither directly nor in an '
        'integer version folder)')
  raise SiteModelError(NO_MODEL, f'no model folder {site_dir}')


def _version_folders(site_dir: str):
  """Integer-named subfolders of ``site_dir`` that hold a saved_model.pb."""
  if paths.is_local(site_dir):
    # One listdir instead of Beam's recursive match: this runs once per site.
    try:
      names = os.listdir(site_dir)
    except (FileNotFoundError, NotADirectoryError):
      return []
    return [n for n in names
            if n.isdigit() and os.path.isfile(os.path.join(site_dir, n, SAVED_MODEL_FILE))]
  found = paths.match(paths.join(site_dir, '*', SAVED_MODEL_FILE))
  names = (posixpath.basename(posixpath.dirname(m.path)) for m in found)
  return [n for n in names if n.isdigit()]
