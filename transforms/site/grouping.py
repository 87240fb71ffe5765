"""``GroupRowsBySite``: input records -> chunks of one site's rows, spread over workers.

The one owner of the site job's wire format::

  records --pack (transforms.site.rows)--> (site_id, SiteRows) blocks
          --GroupByKey--> (site_id, [SiteRows])
          --CutSiteFn--> (site_id, SiteRows) of at most rows_per_chunk rows
          --Reshuffle--> the same, spread over workers
          --ParseChunkFn--> SiteChunk (rows parsed once more, one array per chunk)

Everything that crosses a shuffle is a block of compressed JSON texts, never
a Python object per row. Hot sites: one site's rows arrive at one worker
after the GroupByKey; the ``Reshuffle`` of its chunks (random keys) lets the
runner hand them to any worker, so a site holding a third of all rows is
predicted by every worker at once. Each worker process that gets chunks of a
site loads that site's model once (per-process pool): the hot site then costs
one model load per worker instead of one in total. ``spread=False`` keeps
each site's chunks where they were grouped (no second shuffle).

The input must be in the global window (batch input): the packing step emits
blocks at the end of each bundle there; :class:`GroupRowsBySite` and
:class:`ChunkBySite` refuse other windowing when the pipeline is built.

Error policy: bad records are dead letters of the packing step (see
:mod:`transforms.site.rows`); after packing nothing fails (blocks hold rows
that parsed as JSON objects).
"""
from typing import Iterable, Iterator, List, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from common import json_loads
from models.site.handler import SiteChunk
from transforms import json_lines
from transforms.dead_letters import FAILED
from transforms.site.rows import DEFAULT_MAX_BLOCK_ROWS
from transforms.site.rows import DEFAULT_MAX_BUFFERED_BYTES
from transforms.site.rows import PackBySiteFn
from transforms.site.rows import PackJsonLinesBySiteFn
from transforms.site.rows import SiteRows
from transforms.site.rows import pack
from transforms.site.rows import unpack_encoded
from transforms.site.rows import unpack_texts

DEFAULT_ROWS_PER_CHUNK = 1000


class GroupedRows(NamedTuple):
  chunks: beam.PCollection  # SiteChunk, at most rows_per_chunk rows of one site
  failed: beam.PCollection  # dead letters of the packing step
  stats: beam.PCollection  # (('sites_seen',), 1) per site


class _Cutter:
  """One site's rows cut into blocks of ``size`` rows, in order (see :class:`CutSiteFn`)."""

  def __init__(self, site_id: str, size: int):
    self._site_id, self._size = site_id, size
    self._runs: List[Tuple[str, int]] = []
    self._texts: List[str] = []

  def add(self, block: SiteRows, *, last: bool) -> Iterator[Tuple[str, SiteRows]]:
    """The chunks ``block`` completes; ``last``: no block of the site follows it."""
    rows = sum(count for _, count in block[0])
    if not self._texts and (rows == self._size or last and rows <= self._size):
      yield self._site_id, block  # a chunk as it is: no recompression
      return
    block_runs, block_texts = unpack_texts(block)
    position = 0
    for source, count in block_runs:
      while count:
        take = min(count, self._size - len(self._texts))
        self._texts.extend(block_texts[position:position + take])
        if self._runs and self._runs[-1][0] == source:
          self._runs[-1] = (source, self._runs[-1][1] + take)
        else:
          self._runs.append((source, take))
        position += take
        count -= take
        if len(self._texts) == self._size:
          yield self._take()
    if last and self._texts:
      yield self._take()

  def _take(self) -> Tuple[str, SiteRows]:
    chunk = self._site_id, pack(tuple(self._runs), self._texts)
    self._runs, self._texts = [], []
    return chunk


class CutSiteFn(beam.DoFn):
  """``(site_id, [SiteRows]) -> (site_id, SiteRows)`` of at most ``rows_per_chunk`` rows.

  Rows keep their order and sources. A block passes as it is (no
  recompression) when nothing is pending and it is a whole chunk, or it is
  the site's last block and fits one (a site whose rows came in one block of
  at most ``rows_per_chunk``: the usual small site). Also emits one
  ``sites_seen`` stat per site. Never fails.
  """

  def __init__(self, rows_per_chunk: int):
    self._rows_per_chunk = rows_per_chunk

  def process(self, element: Tuple[str, Iterable[SiteRows]]):
    site_id, blocks = element
    yield beam.pvalue.TaggedOutput('stats', (('sites_seen', ), 1))
    cutter = _Cutter(site_id, self._rows_per_chunk)
    held = None  # each block is cut once the next one shows it is not the site's last
    for block in blocks:
      if held is not None:
        yield from cutter.add(held, last=False)
      held = block
    if held is not None:
      yield from cutter.add(held, last=True)


def parse_chunk(element: Tuple[str, SiteRows]) -> SiteChunk:
  """``(site_id, SiteRows) -> SiteChunk``: the rows decoded as one JSON array.

  ``num_bytes``: the rows' JSON text size (UTF-8). The texts parsed as JSON
  objects when they were packed, so this does not fail. The array is parsed
  from the block's bytes (no decoded copy); the chunk keeps the texts, decoded,
  only when all of them may be echoed as they are (one check of the block:
  :func:`transforms.json_lines.writes_verbatim`).
  """
  site_id, block = element
  runs, data = unpack_encoded(block)
  # Digits are 0 in the shapes: no 19 zeros in a row, no integer beyond 64 bits (json_loads).
  shapes = json_lines.number_shapes(data)
  rows = json_loads.loads(b'[' + data.replace(b'\n', b',') + b']',
                          integers_fit=shapes is not None
                          and json_loads.LONG_DIGIT_RUN not in shapes)
  sources = [source for source, count in runs for _ in range(count)]
  texts = data.decode('ascii').split('\n') if json_lines.writes_verbatim(data, shapes) else None
  return SiteChunk(site_id, rows, sources, len(data) - len(rows) + 1, texts)


def _require_global_window(pcoll, what: str) -> None:
  if not isinstance(pcoll.windowing.windowfn, GlobalWindows):
    raise ValueError(f'{what} takes batch input in the global window, got '
                     f'{type(pcoll.windowing.windowfn).__name__}')


class ChunkBySite(beam.PTransform):
  """``(site_id, SiteRows)`` blocks -> ``(chunks, stats)`` (see :class:`GroupedRows`).

  Groups the blocks by site, cuts each site's rows into chunks of at most
  ``rows_per_chunk`` rows, spreads the chunks over workers (``spread``; see
  the module doc) and parses them into :class:`SiteChunk`.

  Raises:
    ValueError: at construction, for input not in the global window.
  """

  def __init__(self, *, rows_per_chunk: int = DEFAULT_ROWS_PER_CHUNK, spread: bool = True):
    super().__init__()
    if rows_per_chunk < 1:
      raise ValueError(f'rows_per_chunk must be >= 1, got {rows_per_chunk}')
    self._rows_per_chunk = rows_per_chunk
    self._spread = spread

  def expand(self, blocks):
    _require_global_window(blocks, 'ChunkBySite')
    cut = (blocks
           | 'GroupBySite' >> beam.GroupByKey()
           | 'CutSite' >> beam.ParDo(CutSiteFn(self._rows_per_chunk)).with_outputs('stats',
                                                                                   main='chunks'))
    chunks = cut.chunks
    if self._spread:
      chunks = chunks | 'SpreadChunks' >> beam.Reshuffle()
    return chunks | 'ParseChunk' >> beam.Map(parse_chunk), cut.stats


class GroupRowsBySite(beam.PTransform):
  """Records -> :class:`GroupedRows`: pack per site, group, cut into chunks, spread.

  Input: ``(file name, line)`` elements of a JSON-lines read
  (``json_lines=True``: lines as bytes, str or
  :class:`transforms.text_lines.RefusedLine`), or ``(source, row dict)``
  records (CSV, TFRecord, BigQuery). Dead letters: those of
  :class:`transforms.site.rows.PackJsonLinesBySiteFn` or
  :class:`transforms.site.rows.PackBySiteFn`.

  Args:
    site_field: the field holding each row's site id.
    model_root: ids too long for a model path under it are ``bad_site``.
    json_lines: the input is lines to parse (else row dicts).
    rows_per_chunk: most rows of one chunk (one model call).
    spread: redistribute chunks over workers after grouping (hot sites).
    max_block_rows, max_buffered_bytes: packing bounds.

  Raises:
    ValueError: at construction, for input not in the global window.
  """

  def __init__(self,
               site_field: str,
               *,
               model_root: Optional[str] = None,
               json_lines: bool = False,
               rows_per_chunk: int = DEFAULT_ROWS_PER_CHUNK,
               spread: bool = True,
               max_block_rows: int = DEFAULT_MAX_BLOCK_ROWS,
               max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES):
    super().__init__()
    pack_fn = PackJsonLinesBySiteFn if json_lines else PackBySiteFn
    self._pack = pack_fn(site_field,
                         model_root=model_root,
                         max_block_rows=max_block_rows,
                         max_buffered_bytes=max_buffered_bytes)
    self._chunk = ChunkBySite(rows_per_chunk=rows_per_chunk, spread=spread)

  def expand(self, records):
    _require_global_window(records, 'GroupRowsBySite')
    packed = records | 'PackBySite' >> beam.ParDo(self._pack).with_outputs(FAILED, main='rows')
    chunks, stats = packed.rows | 'ChunkBySite' >> self._chunk
    return GroupedRows(chunks, packed[FAILED], stats)
