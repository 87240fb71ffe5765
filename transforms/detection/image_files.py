"""Finding the input images: folder, prefix or glob, local or gs://, recursive.

The site of an image is the first folder below the input root
(``<root>/<site>/.../x.jpg``); images directly under the root belong to site
``default``. Only ``.jpg``, ``.jpeg`` and ``.png`` (any letter case) are
images; other files are counted and otherwise ignored.
"""
import dataclasses
import os
import posixpath
import re
from typing import NamedTuple, Tuple

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import FileMetadata

from common import paths

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
DEFAULT_SITE = 'default'
IGNORED = 'ignored'
_GLOB_CHARS = re.compile(r'[*?\[]')


@dataclasses.dataclass(frozen=True)
class ImageFile:
  """One input image as listed (nothing read yet)."""
  uri: str
  relative_path: str  # below the input root, with '/'
  site_id: str
  size_bytes: int

  def as_record(self) -> dict:
    """What dead letters carry as ``record`` for this image."""
    return {'image': self.uri, 'relative_path': self.relative_path, 'size_bytes': self.size_bytes}


def is_image(path: str) -> bool:
  return path.lower().endswith(IMAGE_EXTENSIONS)


def site_of(relative_path: str) -> str:
  parts = relative_path.split('/')
  return parts[0] if len(parts) > 1 and parts[0] else DEFAULT_SITE


def resolve_input(spec: str) -> Tuple[str, str]:
  """``(glob pattern, root)`` for a folder, prefix or glob (local or remote).

  - glob (``*``, ``?``, ``[``): used as given; root is the folder before the
    first wildcard.
  - folder (local directory, or a remote prefix with objects below
    ``spec/``): everything below it.
  - a single file: that file; its folder is the root.
  - otherwise a prefix: everything whose name starts with it; root is the
    folder it is in.
  """
  if paths.is_local(spec):
    spec = os.path.abspath(spec) + ('/' if spec.endswith(('/', os.sep)) else '')
  glob = _GLOB_CHARS.search(spec)
  if glob:
    return spec, _folder_of(spec[:glob.start()])
  folder = spec.rstrip('/')
  if paths.is_local(spec):
    if os.path.isdir(folder):
      return paths.join(folder, '**'), folder
  elif spec.endswith('/') or paths.match(folder + '/**', limit=1):
    return folder + '/**', folder
  if paths.is_local(spec) and os.path.isfile(folder):
    return folder, _folder_of(folder)
  return spec + '**', _folder_of(spec)


def annotated_path(output_dir: str, relative_path: str) -> str:
  """``<output>/annotated/<relative path>-det.<ext>`` (``zebra1.jpg -> zebra1-det.jpg``)."""
  stem, ext = posixpath.splitext(relative_path)
  return paths.join(output_dir, 'annotated', *f'{stem}-det{ext}'.split('/'))


def _folder_of(path: str) -> str:
  cut = path.rfind('/')
  return path[:cut] if cut > path.find('://') + 2 else path


class ListedFiles(NamedTuple):
  images: beam.PCollection  # ImageFile
  ignored: beam.PCollection  # str: paths of non-image files


class _ClassifyFn(beam.DoFn):
  """FileMetadata -> ImageFile (main) or path on ``ignored``. Never fails."""

  def __init__(self, root: str):
    self._root = root

  def process(self, meta: FileMetadata):
    if meta.path.endswith('/'):  # folder placeholder objects on GCS
      return
    if not is_image(meta.path):
      yield beam.pvalue.TaggedOutput(IGNORED, meta.path)
      return
    relative = paths.relative_to(meta.path, self._root)
    yield ImageFile(meta.path, relative, site_of(relative), meta.size_in_bytes)


class ListImages(beam.PTransform):
  """PBegin -> :class:`ListedFiles` for ``pattern`` below ``root``.

  Reshuffles the listing so that decoding and inference spread over workers
  (without it the whole job fuses behind the single match element).
  """

  def __init__(self, pattern: str, root: str):
    super().__init__()
    self._pattern = pattern
    self._root = root

  def expand(self, pbegin):
    listed = (
        pbegin
        | 'Match' >> fileio.MatchFiles(self._pattern,
                                       empty_match_treatment=fileio.EmptyMatchTreatment.ALLOW)
        | 'Spread' >> beam.Reshuffle()
        | 'Classify' >> beam.ParDo(_ClassifyFn(self._root)).with_outputs(IGNORED, main='images'))
    return ListedFiles(listed.images, listed[IGNORED])
