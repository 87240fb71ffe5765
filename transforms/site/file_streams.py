"""Whole input files read as streams: match patterns, spread the files, open each one.

For formats that cannot be split at arbitrary offsets (CSV with quoted
newlines, TFRecord framing), each file is read start to end by one DoFn
call. Beam's ``fileio`` matches and opens (local, gs://, any Beam
filesystem; compressed files such as ``.gz`` are decompressed by extension).
"""
import io
import lzma
import zlib
from typing import Optional, Sequence, Union

import apache_beam as beam
from apache_beam.io import fileio

from common.failures import PARSE
from transforms.dead_letters import dead_letter
from transforms.dead_letters import failed

_READ_BUFFER_BYTES = 1 << 20

DECOMPRESSION_ERRORS = (zlib.error, EOFError, lzma.LZMAError)
"""What reading a file that is not in its compression's format raises (bad
input, turned into a ``bad_file`` dead letter). Beam reads a truncated gzip
file to its cut without an error."""


class MatchAndOpen(beam.PTransform):
  """``PBegin -> ReadableFile`` for every file matching ``patterns``.

  A pattern without a wildcard that matches nothing fails the job (Beam's
  ``EmptyMatchTreatment.ALLOW_IF_WILDCARD``); jobs check their inputs at
  launch. Files are reshuffled after matching, so many files spread over
  workers instead of being read one after another.
  """

  def __init__(self, patterns: Union[str, Sequence[str]], *, compression: Optional[str] = None):
    """
    Args:
      patterns: one file pattern or a list (local, gs://).
      compression: a Beam ``CompressionTypes`` value; default: by extension.
    """
    super().__init__()
    self._patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    if not self._patterns:
      raise ValueError('no file patterns given')
    self._compression = compression

  def expand(self, pbegin):
    return (pbegin
            | 'Patterns' >> beam.Create(self._patterns)
            | 'Match' >> fileio.MatchAll()
            | 'Spread' >> beam.Reshuffle()
            | 'Open' >> fileio.ReadMatches(compression=self._compression))


class _RawStream(io.RawIOBase):
  """io's raw-stream interface over anything with ``read(n)`` (Beam's compressed files lack it)."""

  def __init__(self, stream):
    super().__init__()
    self._stream = stream

  def readable(self) -> bool:
    return True

  def readinto(self, buffer) -> int:
    data = self._stream.read(len(buffer))
    buffer[:len(data)] = data
    return len(data)


def open_binary(readable_file: fileio.ReadableFile) -> io.BufferedReader:
  """The file's bytes (decompressed by extension) as a buffered binary stream.

  Close the returned stream to close the file.
  """
  stream = readable_file.open(mime_type='application/octet-stream')
  return BufferedFile(stream)


class BufferedFile(io.BufferedReader):
  """A buffered reader that also closes the stream it wraps."""

  def __init__(self, stream):
    super().__init__(_RawStream(stream), buffer_size=_READ_BUFFER_BYTES)
    self._wrapped = stream

  def close(self) -> None:
    try:
      super().close()
    finally:
      self._wrapped.close()


def bad_file(path: str, error: Exception) -> beam.pvalue.TaggedOutput:
  """The dead letter (``bad_file``, stage ``parse``) for a file that stopped
  decompressing; the records read before it stand."""
  return failed(
      dead_letter(PARSE,
                  'bad_file',
                  f'cannot read the rest of the file: {type(error).__name__}: {error}',
                  source=path))
