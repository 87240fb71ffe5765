"""Input file lists (Vertex AI's ``file-list`` format) and input formats by extension.

A file list is a text file naming one input file per line (gs:// or local;
UTF-8, a BOM and CRLF are fine; blank lines are skipped; surrounding spaces
trimmed). A relative entry is relative to the list's own folder. An entry
may be a glob; it must match at least one file. All listed files are of one
format (jsonl, csv or tfrecord), declared or told by their extensions.

:func:`expand_file_list` runs at launch, so a missing listed file stops the
job before it starts; the files it returns go to the readers of their
format: :class:`ReadJsonLinesFiles`, :class:`transforms.site.csv_rows.ReadCsvRows`,
:class:`transforms.site.tfrecord_rows.ReadTfRecordRows`.

Error policy: every function here raises :class:`FileListError` (a
ValueError whose message names the list file, the line and the entry) for a
mistake the user must fix; I/O errors reading the list propagate.
"""
import concurrent.futures
import functools
import os
import posixpath
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.filebasedsource import ReadAllFiles
from apache_beam.io.filesystem import CompressionTypes

from common import paths
from transforms.text_lines import DEFAULT_MAX_LINE_BYTES
from transforms.text_lines import LineSource

JSONL = 'jsonl'
CSV = 'csv'
TFRECORD = 'tfrecord'
FILE_LIST = 'file_list'
FORMATS = (JSONL, CSV, TFRECORD)
INPUT_FORMATS = FORMATS + (FILE_LIST, )

_EXTENSIONS = {
    '.jsonl': JSONL,
    '.json': JSONL,
    '.ndjson': JSONL,
    '.csv': CSV,
    '.tfrecord': TFRECORD,
    '.tfrecords': TFRECORD,
    '.tfr': TFRECORD,
    '.tfrec': TFRECORD,
}
_COMPRESSED = ('.gz', '.gzip', '.bz2', '.zst', '.zstd', '.xz', '.lzma', '.deflate')
_GLOB = set('*?[')
_MATCH_THREADS = 16
_DESIRED_BUNDLE_BYTES = 64 << 20  # as Beam's ReadAllFromText


class FileListError(ValueError):
  """A file list or input format the user must fix; the message says where."""


def format_of(path: str) -> Optional[str]:
  """The input format a file's extension names (compression suffix ignored), or None."""
  name = path.rsplit('/', 1)[-1].lower()
  for suffix in _COMPRESSED:
    if name.endswith(suffix):
      name = name[:-len(suffix)]
      break
  dot = name.rfind('.')
  return _EXTENSIONS.get(name[dot:]) if dot > 0 else None


def input_format(pattern: str, declared: Optional[str] = None) -> str:
  """The format of ``--input``: ``declared`` if given, else by its extension, else jsonl.

  Raises:
    FileListError: ``declared`` is not one of :data:`INPUT_FORMATS`.
  """
  if declared is not None:
    if declared not in INPUT_FORMATS:
      raise FileListError(f'input format {declared!r} is not one of {", ".join(INPUT_FORMATS)}')
    return declared
  return format_of(pattern) or JSONL


def read_file_list(list_path: str) -> List[Tuple[int, str]]:
  """The list's entries as ``(line number, path)``, relative entries resolved.

  Raises:
    FileListError: the list is not UTF-8 text, or names no file.
  """
  try:
    text = paths.read_text(list_path)
  except paths.NotUtf8Text as e:
    raise FileListError(f'file list {list_path}: line {e.line}: not UTF-8 text') from e
  entries = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)
             if line.strip()]
  if not entries:
    raise FileListError(f'file list {list_path} names no files')
  folder = _folder(list_path)
  return [(number, entry if _is_absolute(entry) else _resolved(folder, entry))
          for number, entry in entries]


def _folder(path: str) -> str:
  return posixpath.dirname(path) if not paths.is_local(path) else os.path.dirname(path)


def _resolved(folder: str, entry: str) -> str:
  """``entry`` relative to ``folder``, ``..`` resolved (object stores keep it literally)."""
  if paths.is_local(folder):
    return os.path.normpath(os.path.join(folder, entry))
  scheme, rest = folder.split('://', 1)
  bucket, _, prefix = rest.partition('/')
  relative = posixpath.normpath(posixpath.join('/', prefix, entry)).lstrip('/')
  return f'{scheme}://{bucket}/{relative}'


def _is_absolute(entry: str) -> bool:
  return not paths.is_local(entry) or os.path.isabs(entry)


def expand_file_list(list_path: str) -> List[str]:
  """Every file the list names, in list order (globs expanded, sorted per entry).

  Raises:
    FileListError: an entry that matches no file, a file named twice (by
      two entries, or a glob and an entry), or an unreadable list.
  """
  entries = read_file_list(list_path)
  with concurrent.futures.ThreadPoolExecutor(min(_MATCH_THREADS, len(entries))) as pool:
    matches = list(pool.map(_matching, (entry for _, entry in entries)))
  files: List[str] = []
  first_line: Dict[str, int] = {}
  for (number, entry), found in zip(entries, matches):
    if isinstance(found, Exception):
      raise FileListError(f'file list {list_path}: line {number}: cannot list {entry!r}: '
                          f'{found}') from found
    if not found:
      what = 'matches no file' if _GLOB & set(entry) else 'does not exist (or is a folder)'
      raise FileListError(f'file list {list_path}: line {number}: {entry!r} {what}')
    for path in found:
      if path in first_line:
        raise FileListError(f'file list {list_path}: line {number}: {path!r} is listed twice '
                            f'(also on line {first_line[path]})')
      first_line[path] = number
      files.append(path)
  return files


def _matching(entry: str):
  """Sorted paths of the files (not folders) ``entry`` names, or the error listing it."""
  try:
    found = paths.match(entry)
  except Exception as e:  # pylint: disable=broad-except
    return e
  return sorted(m.path for m in found if not _is_folder(m.path))


def _is_folder(path: str) -> bool:
  return path.endswith(('/', '\\')) or (paths.is_local(path) and os.path.isdir(path))


def list_format(files: Sequence[str],
                declared: Optional[str] = None,
                *,
                list_path: str = 'the file list') -> str:
  """The one format of ``files``: ``declared`` (``--file_list_format``) or their extensions.

  Raises:
    FileListError: ``declared`` is not a format, a file's extension names
      none (give ``--file_list_format``), or the files mix formats.
  """
  if declared is not None:
    if declared not in FORMATS:
      raise FileListError(f'--file_list_format {declared!r} is not one of {", ".join(FORMATS)}')
    return declared
  seen: Dict[str, str] = {}
  for path in files:
    found = format_of(path)
    if found is None:
      raise FileListError(f'{list_path}: cannot tell the format of {path!r} from its extension; '
                          f'give --file_list_format={"|".join(FORMATS)}')
    seen.setdefault(found, path)
  if len(seen) > 1:
    examples = ', '.join(f'{fmt} ({path})' for fmt, path in sorted(seen.items()))
    raise FileListError(f'{list_path} mixes input formats: {examples}; one job reads one format')
  return next(iter(seen))


def _line_source(path: str, *, max_line_bytes: int, compression: str,
                 block_lines: int) -> LineSource:
  return LineSource(path,
                    max_line_bytes=max_line_bytes,
                    compression_type=compression,
                    validate=False,
                    block_lines=block_lines)


class ReadJsonLinesFiles(beam.PTransform):
  """Listed JSON-lines files -> ``(file name, line bytes)``, as the ``--input`` read gives.

  The element :class:`transforms.site.rows.PackJsonLinesBySiteFn` takes
  (lines as bytes, so a line that is not UTF-8 is a dead letter there), read
  by :class:`transforms.text_lines.LineSource`: a line over
  ``max_line_bytes`` comes as a ``RefusedLine``; with ``block_lines``, lines
  come many to an element as a ``LineBlock``. Compressed files are
  decompressed by extension, or as ``compression`` (a Beam
  ``CompressionTypes`` value) says; uncompressed files are split into ranges.
  """

  def __init__(self,
               files: Iterable[str],
               *,
               max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
               compression: str = CompressionTypes.AUTO,
               block_lines: int = 0):
    super().__init__()
    self._files = list(files)
    if not self._files:
      raise ValueError('no files given')
    self._max_line_bytes = max_line_bytes
    self._compression = compression
    self._block_lines = block_lines

  def expand(self, pbegin):
    source = functools.partial(_line_source,
                               max_line_bytes=self._max_line_bytes,
                               compression=self._compression,
                               block_lines=self._block_lines)
    return (pbegin
            | 'Files' >> beam.Create(self._files)
            | 'ReadLines' >> ReadAllFiles(splittable=True,
                                          compression_type=self._compression,
                                          desired_bundle_size=_DESIRED_BUNDLE_BYTES,
                                          min_bundle_size=0,
                                          source_from_file=source))
