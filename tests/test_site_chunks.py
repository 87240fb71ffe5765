"""Cutting a site's packed blocks into chunks: every row once, in order, with its source."""
import json

import apache_beam as beam
from hypothesis import given
from hypothesis import strategies as st

from transforms.site.grouping import CutSiteFn
from transforms.site.grouping import parse_chunk
from transforms.site.rows import pack

ROW = st.fixed_dictionaries(
    {'v': st.one_of(st.integers(), st.text(max_size=4), st.floats(allow_nan=False), st.none())})
BLOCK = st.lists(st.tuples(st.sampled_from(['a.jsonl', 'b.jsonl']), ROW), min_size=1, max_size=7)


def _block(rows):
  runs = []
  for source, _ in rows:
    if runs and runs[-1][0] == source:
      runs[-1][1] += 1
    else:
      runs.append([source, 1])
  return pack(tuple((s, n) for s, n in runs), [json.dumps(row) for _, row in rows])


@given(st.lists(BLOCK, max_size=6), st.integers(1, 8))
def test_chunks_hold_every_row_once_in_order_and_at_most_rows_per_chunk(blocks, size):
  cut = [
      out for out in CutSiteFn(size).process(('s', [_block(b) for b in blocks]))
      if not isinstance(out, beam.pvalue.TaggedOutput)
  ]
  chunks = [parse_chunk(c) for c in cut]
  assert all(c.site_id == 's' and 1 <= len(c.rows) <= size for c in chunks)
  assert all(len(c.rows) == len(c.sources) for c in chunks)
  got = [(source, row) for c in chunks for source, row in zip(c.sources, c.rows)]
  assert got == [item for block in blocks for item in block]
  assert [c.num_bytes
          for c in chunks] == [sum(len(json.dumps(row)) for row in c.rows) for c in chunks]


@given(st.lists(BLOCK, min_size=1, max_size=4), st.integers(1, 8))
def test_a_sites_last_block_that_fits_a_chunk_passes_as_it_is(blocks, size):
  packed = [_block(b) for b in blocks]
  cut = [
      out for out in CutSiteFn(size).process(('s', packed))
      if not isinstance(out, beam.pvalue.TaggedOutput)
  ]
  if len(blocks) == 1 and len(blocks[0]) <= size:
    assert cut == [('s', packed[0])]  # the very block: not unpacked and packed again
  assert len(cut) == -(-sum(map(len, blocks)) // size) or len(blocks) > 1
