"""Rows packed per site before the shuffle: few, small elements instead of one per row.

Grouping rows by site is the job's main shuffle (then chunks are cut and
spread over workers: :mod:`transforms.site.grouping`). Shuffling each row as its
own element costs per-element runner work and, on the local runner, memory
for every row at once (its grouping buffer holds decoded Python objects).
So each bundle collects its rows per site and emits them as blocks::

  (site_id, (runs, data))
  runs: ((source, n), ...)   consecutive rows from one file or table
  data: zlib of the rows' JSON texts joined by newlines

A JSON-lines row is packed as the bytes it was read from (not decoded, where
orjson alone reads it: :func:`transforms.site.instances.parse_utf8_line`); a
BigQuery row as its JSON (:func:`transforms.json_lines.encoder`; NaN and
infinities stay bare ``NaN``/``Infinity``, as in an input line: this text is
only read back by the job itself). Blocks are compressed (JSON rows compress 6-18x), which
also shrinks the shuffle Dataflow bills by the byte. A block holds at most
``max_block_rows`` rows, and a bundle buffers at most ``max_buffered_bytes``
of row text (UTF-8) before it emits everything it holds (checked after each
input element: a read block holds one 1 MiB chunk of lines, or one longer line). The
input must be in the global window (batch input): blocks emitted at the end
of a bundle go there.

Error policy: a row that cannot be parsed or has no usable site is a dead
letter (:class:`transforms.site.instances.RecordFailure`); nothing raises. With
``model_root``, ids too long for a model path under it are ``bad_site`` too.
"""
import zlib
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from common import json_loads
from common.failures import PARSE
from common.failures import RecordFailure
from transforms.dead_letters import failure_letter
from transforms import json_lines
from transforms.dead_letters import failed
from transforms.site.instances import Record
from transforms.site.instances import decode_line
from transforms.site.instances import parse_line
from transforms.site.instances import parse_utf8_line
from transforms.site.instances import site_of
from transforms.text_lines import LineBlock
from transforms.text_lines import RefusedLine

Runs = Tuple[Tuple[str, int], ...]
SiteRows = Tuple[Runs, bytes]

DEFAULT_MAX_BLOCK_ROWS = 1000
DEFAULT_MAX_BUFFERED_BYTES = 8 << 20
_COMPRESSION_LEVEL = 1  # JSON rows: level 1 gets most of level 6's ratio, 2x faster
_SEPARATOR = '\n'  # not in a line read from a file nor in json.dumps; replaced if given
_SEPARATOR_BYTES = _SEPARATOR.encode('ascii')


def pack(runs: Runs, texts: List[str]) -> SiteRows:
  """A block of one site's rows; ``runs`` gives each text's source, in order."""
  return _pack_encoded(runs, [text.encode('utf-8') for text in texts])


def _pack_encoded(runs: Runs, texts: List[bytes]) -> SiteRows:
  """:func:`pack` of texts as UTF-8 (none holding the separator)."""
  return runs, zlib.compress(_SEPARATOR_BYTES.join(texts), _COMPRESSION_LEVEL)


def unpack_encoded(block: SiteRows) -> Tuple[Runs, bytes]:
  """``(runs, the rows' JSON texts as UTF-8, joined by newlines)`` of a block.

  Raises:
    ValueError: the block's runs do not count its texts (not a packed block).
  """
  runs, data = block
  data = zlib.decompress(data)
  rows = data.count(_SEPARATOR_BYTES) + 1
  if rows != sum(count for _, count in runs):
    raise ValueError(f'block of {rows} rows, runs count {sum(c for _, c in runs)}')
  return runs, data


def unpack_texts(block: SiteRows) -> Tuple[Runs, List[str]]:
  """``(runs, JSON texts)`` of a block, in packing order.

  Raises:
    ValueError: the block's runs do not count its texts (not a packed block).
  """
  runs, data = unpack_encoded(block)
  return runs, data.decode('utf-8').split(_SEPARATOR)


def unpack(block: SiteRows) -> Iterator[Tuple[str, str]]:
  """``(source, JSON text)`` of each row of a block, in packing order.

  Raises:
    ValueError: the block's runs do not count its texts (not a packed block).
  """
  runs, texts = unpack_texts(block)
  position = 0
  for source, count in runs:
    for text in texts[position:position + count]:
      yield source, text
    position += count


class _Pending:
  """One site's buffered rows: texts (UTF-8) and their runs of sources."""
  __slots__ = ('texts', 'runs')

  def __init__(self) -> None:
    self.texts: List[bytes] = []
    self.runs: List[List[Any]] = []  # [source, count]

  def add(self, source: str, texts: List[bytes]) -> None:
    runs = self.runs
    if runs and runs[-1][0] == source:
      runs[-1][1] += len(texts)
    else:
      runs.append([source, len(texts)])
    self.texts.extend(texts)

  def cut(self, size: int) -> Tuple[Runs, List[bytes]]:
    """Removes and returns the first ``size`` rows (all, if fewer)."""
    runs: List[Tuple[str, int]] = []
    left = size
    while self.runs and left:
      source, count = self.runs[0]
      take = min(count, left)
      runs.append((source, take))
      left -= take
      if take == count:
        del self.runs[0]
      else:
        self.runs[0][1] = count - take
    texts, self.texts = self.texts[:size], self.texts[size:]
    return tuple(runs), texts


class _SiteBuffer:
  """One bundle's rows per site, until they are packed in blocks of at most ``max_rows``."""

  def __init__(self, max_rows: int) -> None:
    self._sites: Dict[str, _Pending] = {}
    self._max_rows = max_rows
    self.num_bytes = 0

  def add(self, site_id: str, source: str, texts: List[bytes]) -> Iterator[Tuple[str, SiteRows]]:
    """Adds rows of one source (JSON as UTF-8); yields the site's full blocks."""
    pending = self._sites.get(site_id)
    if pending is None:
      pending = self._sites[site_id] = _Pending()
    pending.add(source, texts)
    self.num_bytes += sum(map(len, texts))
    while len(pending.texts) >= self._max_rows:
      yield self._take(site_id, pending)

  def _take(self, site_id: str, pending: _Pending) -> Tuple[str, SiteRows]:
    runs, texts = pending.cut(self._max_rows)
    if not pending.texts:
      del self._sites[site_id]
    self.num_bytes -= sum(map(len, texts))
    return site_id, _pack_encoded(runs, texts)

  def take_all(self) -> Iterator[Tuple[str, SiteRows]]:
    for site_id, pending in list(self._sites.items()):
      while site_id in self._sites:
        yield self._take(site_id, pending)


class PackBySiteFn(beam.DoFn):
  """``(source, row dict) -> (site_id, SiteRows)``, plus dead letters on ``failed``.

  For rows that are already dicts (BigQuery); see :class:`PackJsonLinesBySiteFn`.
  Dead letters: ``missing_site``, ``bad_site`` (stage ``key_by_site``), and
  ``bad_value`` (stage ``parse``) for a row holding a value JSON cannot
  encode (the record is then the row's ``repr``).

  Args:
    site_field: the field holding each row's site id.
    model_root: the model root sites are looked up under: ids whose model
      path would be too long there are ``bad_site`` here, before any I/O.
      None checks the id alone.
    max_block_rows, max_buffered_bytes: packing bounds (module doc).
  """

  def __init__(self,
               site_field: str,
               *,
               model_root: Optional[str] = None,
               max_block_rows: int = DEFAULT_MAX_BLOCK_ROWS,
               max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES):
    if max_block_rows < 1 or max_buffered_bytes < 1:
      raise ValueError('max_block_rows and max_buffered_bytes must be >= 1')
    self._site_field = site_field
    self._model_root = model_root
    self._max_block_rows = max_block_rows
    self._max_buffered_bytes = max_buffered_bytes
    self._buffer = None
    self._encode = None
    self._known_sites = None

  def setup(self):
    self._encode = json_lines.encoder(non_finite=json_lines.PYTHON)
    # Site value -> outcome of the id checks (instances.site_of), per DoFn instance.
    self._known_sites = {}

  def start_bundle(self):
    self._buffer = _SiteBuffer(self._max_block_rows)

  def process(self, record: Record):
    source, row = record
    try:
      site_id = site_of(row, self._site_field, model_root=self._model_root, known=self._known_sites)
      text = self._encode(row).encode('ascii')  # the encoder writes ASCII only
    except RecordFailure as e:
      yield failed(failure_letter(e, source))
      return
    except (TypeError, ValueError) as e:
      # A value JSON cannot hold (json_lines covers what BigQuery returns).
      yield failed(
          failure_letter(RecordFailure(PARSE, 'bad_value', f'row cannot be JSON: {e}', repr(row)),
                         source))
      return
    yield from self._add(site_id, source, [text])

  def _add(self, site_id: str, source: str, texts: List[bytes]):
    yield from self._buffer.add(site_id, source, texts)
    if self._buffer.num_bytes >= self._max_buffered_bytes:
      yield from self._buffer.take_all()

  def finish_bundle(self):
    # Batch input only: every element is in the global window.
    for block in self._buffer.take_all():
      yield GlobalWindows.windowed_value(block)


class PackJsonLinesBySiteFn(PackBySiteFn):
  """``(file name, line) -> (site_id, SiteRows)``: parses, finds the site, packs the line.

  Lines may be bytes (read with ``BytesCoder``, so a file that is not UTF-8
  fails line by line instead of failing the read), and may come many to an
  element as a :class:`transforms.text_lines.LineBlock`. Dead letters:
  ``bad_encoding``, ``empty_line``, ``bad_json``, ``not_an_object``,
  ``line_too_long`` (a :class:`transforms.text_lines.RefusedLine`; stage
  ``parse``), ``missing_site``, ``bad_site`` (stage ``key_by_site``).
  """

  def process(self, element: Tuple[str, Union[bytes, str, RefusedLine, LineBlock]]):
    source, payload = element
    # One loop over a block's lines, no generator per line: this step runs for every
    # row of the input.
    lines = payload if isinstance(payload, LineBlock) else (payload, )
    # One scan of the block's bytes instead of a check of each parsed row (json_loads).
    data = b''.join(line for line in lines if type(line) is bytes)  # pylint: disable=unidiomatic-typecheck
    fit = json_loads.integers_fit(data)
    plain = _SEPARATOR_BYTES not in data
    keyed: Dict[str, List[bytes]] = {}  # the element's rows by site, in order
    field, root, known = self._site_field, self._model_root, self._known_sites
    for line in lines:
      # The usual line (bytes that orjson reads alone) is packed as it was read; the
      # calls are spelled out here, as this loop runs for every row of the input.
      try:
        row = (parse_utf8_line(line, integers_fit=fit) if plain and type(line) is bytes else None)  # pylint: disable=unidiomatic-typecheck
        if row is not None:
          site_id, text = site_of(row, field, model_root=root, known=known), line
        elif isinstance(line, RefusedLine):
          yield failed(line.dead_letter(source))
          continue
        else:
          site_id, text = self._keyed(line, fit)
      except RecordFailure as e:
        yield failed(failure_letter(e, source))
        continue
      texts = keyed.get(site_id)
      if texts is None:
        keyed[site_id] = [text]
      else:
        texts.append(text)
    for site_id, texts in keyed.items():
      yield from self._buffer.add(site_id, source, texts)
    if self._buffer.num_bytes >= self._max_buffered_bytes:
      yield from self._buffer.take_all()

  def _keyed(self, line: Union[bytes, str], integers_fit: bool) -> Tuple[str, bytes]:
    """``(site_id, text to pack as UTF-8)`` of a line, decoded and parsed the general way
    (the lines :func:`transforms.site.instances.parse_utf8_line` leaves); raises
    RecordFailure. ``integers_fit``: a bytes line holds no integer beyond 64 bits
    (:func:`common.json_loads.integers_fit`)."""
    is_bytes = type(line) is bytes  # pylint: disable=unidiomatic-typecheck
    text = decode_line(line)
    site_id = site_of(parse_line(text, integers_fit=integers_fit and is_bytes),
                      self._site_field,
                      model_root=self._model_root,
                      known=self._known_sites)
    if _SEPARATOR in text:
      # Not from a text file read; in valid JSON a raw newline is whitespace.
      text = text.replace(_SEPARATOR, ' ')
    try:
      return site_id, text.encode('utf-8')
    except UnicodeEncodeError as e:  # a str line holding a lone surrogate
      raise RecordFailure(PARSE, 'bad_encoding', f'not valid Unicode: {e}',
                          text.encode('utf-8', 'backslashreplace').decode('utf-8')) from e
