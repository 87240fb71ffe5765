"""Local-or-remote path helpers built on Beam's ``FileSystems``.

Everything here accepts local paths and any scheme Beam knows (gs:// in
production, the local GCS server in tests), so callers never branch on the
scheme themselves.
"""
import os
import shutil
import tempfile
from typing import Iterator, List, Optional

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.filesystems import FileSystems

_COPY_CHUNK_BYTES = 8 << 20


def is_local(path: str) -> bool:
  """True for plain filesystem paths (no ``scheme://``)."""
  return '://' not in path


def join(base: str, *parts: str) -> str:
  """Joins path components with the separator of ``base``'s filesystem."""
  return FileSystems.join(base.rstrip('/\\') or base, *parts)


def relative_to(path: str, root: str) -> str:
  """``path`` relative to ``root`` with forward slashes; ``root`` must contain it."""
  root = root.rstrip('/\\')
  if not path.startswith(root):
    raise ValueError(f'{path!r} is not under {root!r}')
  return path[len(root):].lstrip('/\\').replace('\\', '/')


def match(pattern: str, limit: Optional[int] = None) -> List[FileMetadata]:
  """Files matching a glob (``**`` crosses folders); empty list when none."""
  result = FileSystems.match([pattern], limits=[limit])[0]
  return list(result.metadata_list)


def exists(path: str) -> bool:
  """True if ``path`` is a file, or a folder/prefix with at least one file under it."""
  if is_local(path):
    return os.path.exists(path)
  scheme_and_bucket = path.split('://', 1)[1].rstrip('/')
  if '/' in scheme_and_bucket and FileSystems.exists(path):
    return True
  return bool(match(join(path, '**'), limit=1))


def open_raw(path: str):
  """Opens ``path`` for reading as stored (no decompression by extension)."""
  return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def read_bytes(path: str) -> bytes:
  with open_raw(path) as f:
    return f.read()


def write_bytes(path: str, data: bytes, mime_type: str = 'application/octet-stream') -> None:
  """Writes ``data`` to ``path`` in one create (atomic on GCS, parents made locally)."""
  if is_local(path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with FileSystems.create(
      path, mime_type=mime_type,
      compression_type=CompressionTypes.UNCOMPRESSED) as f:
    f.write(data)


def iter_tree(root: str) -> Iterator[FileMetadata]:
  """Every file below ``root`` (recursive)."""
  yield from match(join(root, '**'))


def localize_tree(root: str) -> 'LocalCopy':
  """A context manager giving a local folder with ``root``'s files.

  Local folders are used in place; remote ones are copied to a temporary
  folder that is removed on exit.
  """
  return LocalCopy(root)


class LocalCopy:
  """Context manager behind :func:`localize_tree`."""

  def __init__(self, root: str):
    self._root = root.rstrip('/')
    self._tmp: Optional[str] = None

  def __enter__(self) -> str:
    if is_local(self._root):
      return self._root
    self._tmp = tempfile.mkdtemp(prefix='localized-')
    for meta in iter_tree(self._root):
      target = os.path.join(self._tmp, *relative_to(meta.path, self._root).split('/'))
      os.makedirs(os.path.dirname(target), exist_ok=True)
      with open_raw(meta.path) as src, open(target, 'wb') as dst:
        shutil.copyfileobj(src, dst, _COPY_CHUNK_BYTES)
    return self._tmp

  def __exit__(self, *exc_info) -> None:
    if self._tmp:
      shutil.rmtree(self._tmp, ignore_errors=True)
