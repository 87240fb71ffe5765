"""CSV instance files -> ``(file name, {column: text})`` records, plus dead letters.

Each file is read whole, start to end (quoted fields may hold newlines, so a
file cannot be cut at line boundaries): UTF-8 with or without a BOM, any mix
of CRLF / LF / CR line endings (RFC 4180 quoting; a line ending inside an
unquoted field ends the record), Python's ``csv`` module in strict mode. The
first record of each file is its header and names the fields; each later
record becomes one row dict, in header order, for
:class:`transforms.site.rows.PackBySiteFn`.

Values stay text: CSV rows are *text-typed*. Their types come from each
site's signature, at the model, through
:func:`models.site.text_features.typed_row` (an empty cell is a missing
value there), never from guessing here: ``"007"`` reaches a string input as
``"007"``.

Dead letters (stage ``parse``; ``record``: the record's raw text without its
final line ending, bytes that are not UTF-8 as ``\\xNN``; the message gives
the line number):

* ``bad_csv``: a field count other than the header's, malformed quoting
  (``"a"b``, a quote left open at the end of the file: the rest of the file
  is then one record), a field over 131072 characters (``csv``'s limit).
* ``bad_encoding``: a record that is not UTF-8.
* ``empty_line``: a blank line.
* ``bad_csv_header``: every record of a file whose header is unusable (a
  field name twice, bad quoting or encoding); the header itself is not a record.
* ``bad_file`` (no record): a compressed file that stops decompressing; the
  rows read before stand.
"""
import csv
import io
import re
from typing import BinaryIO, Iterator, List, Optional, Union

import apache_beam as beam

from common.failures import PARSE
from transforms.dead_letters import FAILED
from transforms.dead_letters import dead_letter
from transforms.dead_letters import failed
from transforms.site.file_streams import DECOMPRESSION_ERRORS
from transforms.site.file_streams import MatchAndOpen
from transforms.site.file_streams import bad_file
from transforms.site.file_streams import open_binary
from transforms.site.instances import Record

# surrogateescape decoding turns each byte that is not UTF-8 into one of these.
_NOT_UTF8 = re.compile('[\udc80-\udcff]')
_LINE_ENDING = re.compile(r'(?:\r\n|\n|\r)\Z')


class _Lines:
  """The file's lines for ``csv.reader``, keeping those read since the last :meth:`take`."""

  def __init__(self, text: io.TextIOBase):
    self._text = text
    self._taken: List[str] = []

  def __iter__(self):
    return self

  def __next__(self) -> str:
    line = self._text.readline()
    if not line:
      raise StopIteration
    self._taken.append(line)
    return line

  def take(self) -> str:
    """The raw text of the record just read (all its lines)."""
    text = ''.join(self._taken)
    self._taken.clear()
    return text


def _shown(raw: str) -> str:
  """A record's raw text for a dead letter: no final line ending, bad bytes escaped."""
  raw = _LINE_ENDING.sub('', raw, count=1)
  if _NOT_UTF8.search(raw):
    raw = raw.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')
  return raw


def csv_records(source: str, stream: BinaryIO) -> Iterator[Union[Record, beam.pvalue.TaggedOutput]]:
  """One CSV file's rows as ``(source, row)``, and its dead letters on :data:`FAILED`.

  Args:
    source: the file's name, kept with every row and dead letter.
    stream: the file's bytes (binary, read start to end; not closed here).
  """
  text = io.TextIOWrapper(stream, encoding='utf-8-sig', errors='surrogateescape', newline='')
  try:
    yield from _records(source, text)
  finally:
    text.detach()  # the caller owns ``stream``


def _records(source: str, text: io.TextIOBase):
  lines = _Lines(text)
  reader = csv.reader(lines, strict=True)
  header: Optional[List[str]] = None
  header_problem: Optional[str] = None
  header_line = 0
  while True:
    start = reader.line_num + 1
    try:
      fields: Optional[List[str]] = next(reader)
      problem = None
    except StopIteration:
      return
    except csv.Error as e:
      fields, problem = None, f'malformed CSV: {e}'
    raw = lines.take()
    reason = 'bad_csv'
    if problem is None and _NOT_UTF8.search(raw):
      reason, problem = 'bad_encoding', 'not UTF-8'
    if problem is None and not fields:
      reason, problem = 'empty_line', 'blank line'
    if header is None and reason != 'empty_line':
      header, header_problem = fields or [], problem or _header_problem(fields)
      header_line = start
      continue
    if problem is None and header_problem is not None:
      reason, problem = 'bad_csv_header', (
          f'the header (line {header_line}) is unusable: {header_problem}')
    if problem is None and len(fields) != len(header):
      problem = f'{len(fields)} fields; the header has {len(header)}'
    if problem is not None:
      yield failed(
          dead_letter(PARSE, reason, f'line {start}: {problem}', source=source, record=_shown(raw)))
      continue
    yield source, dict(zip(header, fields))


def _header_problem(names: List[str]) -> Optional[str]:
  repeated = sorted({name for name in names if names.count(name) > 1})
  if repeated:
    return f'field names {", ".join(map(repr, repeated))} appear more than once'
  return None


class _ReadCsvFileFn(beam.DoFn):
  """``ReadableFile -> (file name, row)``, dead letters on :data:`FAILED`."""

  def process(self, readable_file):
    path = readable_file.metadata.path
    try:
      with open_binary(readable_file) as stream:
        yield from csv_records(path, stream)
    except DECOMPRESSION_ERRORS as e:
      yield bad_file(path, e)


class ReadCsvRows(beam.PTransform):
  """``PBegin -> (file name, {column: text})`` on ``rows``, dead letters on ``failed``.

  ``patterns``: one file pattern or a list of them (``gs://``, local, ``.gz``
  decompressed, or as ``compression`` says: a Beam ``CompressionTypes``
  value); a pattern without a wildcard must match a file. Output: a
  ``DoOutputsTuple`` with the ``rows`` and :data:`FAILED` outputs; every
  record of every file is in exactly one of them (headers excepted).
  """

  def __init__(self, patterns, *, compression: Optional[str] = None):
    super().__init__()
    self._patterns = patterns
    self._compression = compression

  def expand(self, pbegin):
    return (pbegin
            | 'MatchAndOpen' >> MatchAndOpen(self._patterns, compression=self._compression)
            | 'ParseCsv' >> beam.ParDo(_ReadCsvFileFn()).with_outputs(FAILED, main='rows'))
