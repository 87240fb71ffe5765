"""Reading text files line by line in linear time, with a cap on line length.

:class:`ReadLinesWithFileName` gives the elements Beam's
``ReadFromTextWithFilename(pattern, coder=BytesCoder())`` gives, for every
line: ``(file name, line bytes)``. Lines end at ``\\n``; a ``\\r`` right
before it is stripped too, a lone ``\\r`` is data; a last line without a
newline is a line, an empty file has none; a byte-order mark stays in the
bytes; ``.gz`` / ``.bz2`` / ... files are decompressed by extension
(``CompressionTypes.AUTO``). Uncompressed files split into byte ranges like
Beam's text source: a line belongs to the range where it starts.

Two things differ:

* Time is linear in the line length. Beam's reader grows its buffer 8 KiB at
  a time, so one 50 MB line takes minutes; here a line is collected from
  large chunks and joined once.
* A line longer than ``max_line_bytes`` (without its line end) is never held
  whole: the reader keeps its first :data:`HEAD_BYTES`, streams on to the
  next newline counting bytes, and yields ``(file name, RefusedLine)`` in the
  line's place. One element (or block item) per line either way, so
  counting them (:func:`records_in`) counts the input records; the parse step turns a
  :class:`RefusedLine` into the dead letter of :meth:`RefusedLine.dead_letter`
  (reason ``line_too_long``). Memory per reader is bounded by about twice
  ``max_line_bytes`` (a line at the limit, joined) plus one chunk: a line is
  known to be too long only once that many bytes are read.

With ``block_lines`` (the per-site job reads so), consecutive lines of one
file travel as one element ``(file name, LineBlock)``: at most that many
lines, all from one read chunk of ``chunk_bytes`` (1 MiB; a line running
past a chunk travels alone). The runner's work per element (about as much
as parsing a short JSON line) is then paid per block, and so are the range
tracker's claims: the complete lines of a chunk are split in one call, and
a block is claimed by its last line's start, after which the tracker
refuses any split before it (see ``LineSource._claimed_blocks`` for a split
that lands while a block is read). Splits (dynamic work rebalancing
included) never lose or repeat a line; ``len(block)`` counts its records.
Reading costs about 0.16 us a line so, against 1.0 us claiming line by line.

Error policy: nothing here raises for file contents; a file that cannot be
opened or read raises as with Beam's reader (the runner retries the bundle).
"""
import dataclasses
from typing import Any, BinaryIO, Dict, Iterator, List, Optional, Tuple, Union

import apache_beam as beam
from apache_beam import typehints
from apache_beam.io import filebasedsource
from apache_beam.io import iobase
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.transforms.display import DisplayDataItem

from common.failures import PARSE
from transforms.dead_letters import dead_letter

DEFAULT_MAX_LINE_BYTES = 64 << 20
"""Longest line read (64 MiB, line end not counted); longer ones are dead letters."""

HEAD_BYTES = 1024
"""How much of a refused line its dead letter keeps."""

LINE_TOO_LONG = 'line_too_long'

DEFAULT_CHUNK_BYTES = 1 << 20
_CR = 13


@dataclasses.dataclass(frozen=True)
class RefusedLine:
  """Stands for a line longer than the limit: its length and first bytes only."""
  length: int  # bytes, line end not counted
  limit: int
  head: bytes  # the first HEAD_BYTES

  def dead_letter(self, source: str) -> Dict[str, Any]:
    """The ``line_too_long`` dead letter (stage ``parse``) of this line in ``source``."""
    return dead_letter(
        PARSE,
        LINE_TOO_LONG,
        f'line of {self.length} bytes is longer than the limit of {self.limit} bytes '
        f'(max_line_bytes); the record is its first {len(self.head)} bytes',
        source=source,
        record=self.head.decode('utf-8', 'backslashreplace'))


Line = Union[bytes, RefusedLine]


class LineBlock(list):
  """Consecutive lines of one file (``bytes`` or :class:`RefusedLine`), in file order.

  A ``list`` subclass: one pickle per block between steps, and a type that
  says the element holds many records (see :func:`records_in`).
  """


def records_in(element: Any) -> int:
  """Input records one read element holds: the lines of a ``(source, LineBlock)``,
  else 1 (a line, a row, a read dead letter)."""
  if isinstance(element, tuple) and len(element) == 2 and isinstance(element[1], LineBlock):
    return len(element[1])
  return 1


class _LineScanner:
  """Lines of an open binary file, from its current position on.

  Scans chunks of ``chunk_bytes`` with ``bytes.find``; a line spanning chunks
  is collected as a list of pieces and joined once, and once a line is known
  to be too long its pieces are dropped and only counted.
  """

  def __init__(self, file: BinaryIO, *, max_line_bytes: int, chunk_bytes: int):
    self._file = file
    self._max = max_line_bytes
    self._chunk_bytes = chunk_bytes
    self._buf = b''
    self._pos = 0
    self._split: List[bytes] = []  # complete lines of the buffer, before _pos, not handed out
    self._split_at = 0
    self._split_odd = False

  def _fill(self) -> bool:
    """Replaces the (consumed) buffer by the next chunk; False at end of file."""
    self._buf = self._file.read(self._chunk_bytes)
    self._pos = 0
    return bool(self._buf)

  def skip_line(self) -> Optional[int]:
    """Consumes the rest of the current line and its newline.

    Returns:
      How many bytes that was, or None if the file ended without a newline.
    """
    consumed = 0
    while True:
      end = self._buf.find(b'\n', self._pos)
      if end >= 0:
        consumed += end + 1 - self._pos
        self._pos = end + 1
        return consumed
      consumed += len(self._buf) - self._pos
      if not self._fill():
        return None

  def next_lines(self, most: int) -> Tuple[List[Line], List[int], bool]:
    """Up to ``most`` next lines, at least one unless the file has ended.

    The complete lines of the buffer are split in one call and handed out
    from there; a line that runs past the buffer is read by :meth:`next_line`.

    Returns:
      ``(lines, bytes consumed by each with its line end, whether a newline
      ended the last)``; no lines at the end of the file.
    """
    if self._split_at >= len(self._split):
      if self._pos >= len(self._buf) and not self._fill():
        return [], [], True
      buf, pos = self._buf, self._pos
      end = buf.rfind(b'\n', pos)
      if end < 0:
        item = self.next_line()
        return ([], [], True) if item is None else ([item[0]], [item[1]], item[2])
      region = buf[pos:end]
      self._pos = end + 1
      self._split, self._split_at = region.split(b'\n'), 0
      # Lines to strip of a \r or to refuse: then each line is looked at, else none is.
      self._split_odd = b'\r' in region or max(map(len, self._split)) > self._max
    at = self._split_at
    raw = self._split[at:at + most]
    self._split_at = at + len(raw)
    if self._split_at >= len(self._split):
      self._split = []  # let the chunk go
    sizes = [len(line) + 1 for line in raw]
    return ([self._complete_line(line) for line in raw] if self._split_odd else raw), sizes, True

  def _complete_line(self, line: bytes) -> Line:
    """A line read whole (its newline seen) as :meth:`next_line` gives it."""
    if line[-1:] == b'\r':
      line = line[:-1]
    if len(line) > self._max:
      return RefusedLine(length=len(line), limit=self._max, head=line[:HEAD_BYTES])
    return line

  def next_line(self) -> Optional[Tuple[Line, int, bool]]:
    """The next line.

    Returns:
      ``(line, bytes consumed with the line end, whether a newline ended it)``,
      or None at the end of the file.
    """
    buf, pos = self._buf, self._pos
    end = buf.find(b'\n', pos)
    if end >= 0:
      stop = end - 1 if end > pos and buf[end - 1] == _CR else end
      if stop - pos <= self._max:
        self._pos = end + 1
        return buf[pos:stop], end + 1 - pos, True
    return self._spanning_line()

  def _spanning_line(self) -> Optional[Tuple[Line, int, bool]]:
    """A line that may span chunks or be too long (the slow path of next_line)."""
    parts: List[bytes] = []
    head: Optional[bytes] = None  # set once the line is known to be too long
    size = 0  # bytes before the newline, a final \r included
    last_byte = -1
    while True:
      buf, pos = self._buf, self._pos
      end = buf.find(b'\n', pos)
      stop = end if end >= 0 else len(buf)
      if stop > pos:
        size += stop - pos
        last_byte = buf[stop - 1]
        if head is None:
          parts.append(buf[pos:stop])
          if size > self._max + 1:  # too long even if it ends in \r\n
            head = _first_bytes(parts, HEAD_BYTES)
            parts = []
        elif len(head) < HEAD_BYTES:
          head += buf[pos:min(stop, pos + HEAD_BYTES - len(head))]
      if end >= 0:
        self._pos = end + 1
        terminated = True
        break
      if not self._fill():
        terminated = False
        break
    if not size and not terminated:
      return None
    consumed = size + terminated
    strip_cr = terminated and last_byte == _CR
    length = size - strip_cr
    if head is None and length <= self._max:
      if strip_cr:
        parts[-1] = parts[-1][:-1]
      return b''.join(parts), consumed, terminated
    if head is None:
      head = _first_bytes(parts, HEAD_BYTES)
    return RefusedLine(length=length, limit=self._max, head=head[:length]), consumed, terminated


def _first_bytes(parts: List[bytes], n: int) -> bytes:
  """The first ``n`` bytes of the pieces joined, without joining them all."""
  taken, size = [], 0
  for part in parts:
    if size >= n:
      break
    taken.append(part[:n - size])
    size += len(taken[-1])
  return b''.join(taken)


class _Progress:
  """Where a reader's next line starts (-1: not known yet), for its tracker's callback."""

  def __init__(self, tracker: iobase.RangeTracker):
    self.position = -1
    tracker.set_split_points_unclaimed_callback(self._split_points_unclaimed)

  def _split_points_unclaimed(self, stop_position: int) -> int:
    return 0 if stop_position <= self.position else iobase.RangeTracker.SPLIT_POINTS_UNKNOWN


class LineSource(filebasedsource.FileBasedSource):
  """``FileBasedSource`` of ``(file name, line bytes or RefusedLine)``.

  Splits, range tracking and compression are those of Beam's text source;
  see the module docstring for the line rules.
  """

  def __init__(self,
               file_pattern: str,
               *,
               max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
               compression_type: str = CompressionTypes.AUTO,
               min_bundle_size: int = 0,
               validate: bool = True,
               chunk_bytes: int = DEFAULT_CHUNK_BYTES,
               block_lines: int = 0):
    if max_line_bytes < 1 or chunk_bytes < 1 or block_lines < 0:
      raise ValueError(f'max_line_bytes and chunk_bytes must be >= 1 and block_lines >= 0, '
                       f'got {max_line_bytes}, {chunk_bytes} and {block_lines}')
    super().__init__(file_pattern,
                     min_bundle_size=min_bundle_size,
                     compression_type=compression_type,
                     validate=validate)
    self._max_line_bytes = max_line_bytes
    self._chunk_bytes = chunk_bytes
    self._block_lines = block_lines

  def display_data(self):
    return dict(super().display_data(),
                max_line_bytes=DisplayDataItem(self._max_line_bytes,
                                               label='Longest line read (bytes)'))

  def read_records(self, file_name: str,
                   offset_range_tracker: iobase.RangeTracker) -> Iterator[Tuple[str, Any]]:
    if self._block_lines:
      for block in self._claimed_blocks(file_name, offset_range_tracker):
        yield file_name, block
      return
    for line in self._claimed_lines(file_name, offset_range_tracker):
      yield file_name, line

  def _scanner_at_start(self, file: BinaryIO,
                        tracker: iobase.RangeTracker) -> Tuple[_LineScanner, int]:
    """A scanner at the first line of the tracker's range, and that line's position
    (-1: the range holds no line start)."""
    start = tracker.start_position()
    lines = _LineScanner(file, max_line_bytes=self._max_line_bytes, chunk_bytes=self._chunk_bytes)
    if start > 0:
      # The line under start belongs to the range before, unless the byte
      # before start ends a line.
      file.seek(start - 1)
      skipped = lines.skip_line()
      if skipped is None:
        return lines, -1
      return lines, start - 1 + skipped
    return lines, 0

  def _claimed_lines(self, file_name: str,
                     offset_range_tracker: iobase.RangeTracker) -> Iterator[Line]:
    """The lines of the tracker's range, each claimed before it is given."""
    progress = _Progress(offset_range_tracker)
    with self.open_file(file_name) as file:
      lines, progress.position = self._scanner_at_start(file, offset_range_tracker)
      if progress.position < 0:
        return
      while offset_range_tracker.try_claim(progress.position):
        item = lines.next_line()
        if item is None:
          return
        line, consumed, terminated = item
        progress.position += consumed
        yield line
        if not terminated:
          return

  def _claimed_blocks(self, file_name: str, tracker: iobase.RangeTracker) -> Iterator[LineBlock]:
    """The lines of the tracker's range in blocks of at most ``block_lines``.

    One claim per block: the start of its last line. Once that is claimed
    the tracker refuses splits at or before it, so every line of the block is
    this range's. If the claim fails (a split moved the stop into the block
    since it was read), the reader records the last line as its current
    position, which refuses every later split (each would have to be after
    it and before the stop), and gives the lines that start before the stop,
    as line-by-line claims would have.
    """
    progress = _Progress(tracker)
    with self.open_file(file_name) as file:
      lines, progress.position = self._scanner_at_start(file, tracker)
      if progress.position < 0:
        return
      claimed = False
      while True:
        found, sizes, terminated = lines.next_lines(self._block_lines)
        if not found:
          return
        last_start = progress.position + sum(sizes) - sizes[-1]
        if not tracker.try_claim(last_start):
          yield from self._owned_before_stop(tracker, found, sizes, progress.position, last_start,
                                             claimed)
          return
        claimed = True
        progress.position = last_start + sizes[-1]
        yield LineBlock(found)
        if not terminated:
          return

  @staticmethod
  def _owned_before_stop(tracker: iobase.RangeTracker, found: List[Line], sizes: List[int],
                         position: int, last_start: int, claimed: bool) -> Iterator[LineBlock]:
    """The lines of a block whose last line's claim failed that start before the stop.
    ``claimed``: an earlier claim succeeded (before any, no split can happen)."""
    if claimed:
      tracker.set_current_position(last_start)
    stop = tracker.stop_position()
    owned = LineBlock()
    for line, size in zip(found, sizes):
      if position >= stop:
        break
      owned.append(line)
      position += size
    if owned:
      yield owned

  def output_type_hint(self):
    return typehints.KV[str, typehints.Any]


class ReadLinesWithFileName(beam.PTransform):
  """File pattern -> ``(file name, line bytes)``, or ``(file name, RefusedLine)``
  for a line longer than ``max_line_bytes``; one element per line, or with
  ``block_lines`` ``(file name, LineBlock)`` of up to that many lines.

  Raises (at construction) ValueError for a limit below 1 and IOError when
  ``validate`` and nothing matches the pattern.
  """

  def __init__(self,
               file_pattern: str,
               *,
               max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
               compression_type: str = CompressionTypes.AUTO,
               validate: bool = True,
               block_lines: int = 0):
    super().__init__()
    self._source = LineSource(file_pattern,
                              max_line_bytes=max_line_bytes,
                              compression_type=compression_type,
                              validate=validate,
                              block_lines=block_lines)

  def expand(self, pbegin):
    return pbegin.pipeline | beam.io.Read(self._source).with_output_types(
        self._source.output_type_hint())
