"""Packing rows per site before the shuffle: nothing lost, nothing mixed, bounded buffers."""
import datetime
import decimal
import json
import math

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to

from transforms.dead_letters import FAILED
from transforms.site.rows import PackBySiteFn
from transforms.site.rows import PackJsonLinesBySiteFn
from transforms.site.rows import pack
from transforms.site.rows import unpack
from transforms.site.rows import unpack_texts
from transforms.site.grouping import parse_chunk
from transforms.site.instances import site_id_of
from transforms.text_lines import LineBlock


def run_bundle(dofn, elements):
  """One bundle through ``dofn`` called directly: (blocks, dead letters)."""
  dofn.setup()
  dofn.start_bundle()
  blocks, letters = [], []
  outputs = [out for element in elements for out in dofn.process(element)]
  outputs += [windowed.value for windowed in dofn.finish_bundle()]
  for out in outputs:
    if isinstance(out, beam.pvalue.TaggedOutput):
      assert out.tag == FAILED
      letters.append(out.value)
    else:
      blocks.append(out)
  return blocks, letters


def rows_by_site(blocks):
  found = {}
  for site_id, block in blocks:
    found.setdefault(site_id, []).extend(
        (source, json.loads(text)) for source, text in unpack(block))
  return found


def test_pack_and_unpack_keep_each_rows_source_in_order():
  runs = (('a.jsonl', 2), ('b.jsonl', 1), ('a.jsonl', 1))
  texts = ['{"x":1}', '{"x":2}', '{"x":"é\\n"}', '{}']
  block = pack(runs, texts)
  assert list(unpack(block)) == [('a.jsonl', texts[0]), ('a.jsonl', texts[1]),
                                 ('b.jsonl', texts[2]), ('a.jsonl', texts[3])]
  assert len(block[1]) < len(''.join(texts)) + 20


def test_every_line_ends_in_a_block_or_a_dead_letter():
  lines = [('a.jsonl', json.dumps({'site_id': f's{i % 3}', 'i': i})) for i in range(50)]
  lines += [('b.jsonl', ''), ('b.jsonl', '{"i": 99}'), ('b.jsonl', '{bad'),
            ('b.jsonl', '{"site_id": "s1", "i": 100}'), ('b.jsonl', '[1]'),
            ('b.jsonl', '{"site_id": "a/b"}')]
  blocks, letters = run_bundle(PackJsonLinesBySiteFn('site_id'), lines)
  found = rows_by_site(blocks)
  assert sorted(found) == ['s0', 's1', 's2']
  assert sorted(row['i'] for rows in found.values() for _, row in rows) == list(range(50)) + [100]
  assert ('b.jsonl', {'site_id': 's1', 'i': 100}) in found['s1']
  assert all(row['site_id'] == site for site, rows in found.items() for _, row in rows)
  assert sorted(letter['reason'] for letter in letters) == [
      'bad_json', 'bad_site', 'empty_line', 'missing_site', 'not_an_object'
  ]
  assert all(letter['source'] == 'b.jsonl' for letter in letters)


def test_lines_are_packed_as_read():
  line = '{"site_id": "s",   "x": 1.50}'
  blocks, _ = run_bundle(PackJsonLinesBySiteFn('site_id'), [('f', line)])
  assert [list(unpack(block)) for _, block in blocks] == [[('f', line)]]


@pytest.mark.parametrize('max_block_rows,max_buffered_bytes', [(3, 1 << 20), (1000, 200), (1, 1)])
def test_bounded_buffers_emit_more_blocks_and_lose_nothing(max_block_rows, max_buffered_bytes):
  lines = [('f', json.dumps({'site_id': f's{i % 4}', 'i': i})) for i in range(40)]
  dofn = PackJsonLinesBySiteFn('site_id',
                               max_block_rows=max_block_rows,
                               max_buffered_bytes=max_buffered_bytes)
  blocks, _ = run_bundle(dofn, lines)
  assert all(len(list(unpack(block))) <= max_block_rows for _, block in blocks)
  assert len(blocks) > 4
  found = rows_by_site(blocks)
  assert sorted(row['i'] for rows in found.values() for _, row in rows) == list(range(40))


def test_odd_but_valid_lines_round_trip_and_a_raw_newline_stays_whitespace():
  lines = [
      '{"site_id": "s", "t": "a\u2028b\u0085c"}', '{"site_id": "s",\r"t": 1}',
      '{"site_id": "s",\n"t": 2}', '{"site_id": "s", "t": NaN}'
  ]
  blocks, letters = run_bundle(PackJsonLinesBySiteFn('site_id'), [('f', line) for line in lines])
  assert not letters
  unpacked = [text for _, block in blocks for _, text in unpack(block)]
  assert unpacked[:2] == lines[:2] and unpacked[2] == lines[2].replace('\n', ' ')
  assert [json.loads(text)['t'] for text in unpacked][:3] == ['a\u2028b\u0085c', 1, 2]


def test_unpack_refuses_a_block_whose_runs_do_not_count_its_rows():
  with pytest.raises(ValueError):
    list(unpack(pack((('f', 3), ), ['{}', '{}'])))


def test_the_buffer_emits_everything_as_soon_as_it_holds_the_byte_limit():
  line = json.dumps({'site_id': 's', 'pad': 'x' * 20})
  dofn = PackJsonLinesBySiteFn('site_id', max_buffered_bytes=len(line) * 4)
  dofn.setup()
  dofn.start_bundle()
  emitted_after = [len(list(dofn.process(('f', line)))) for _ in range(9)]
  assert emitted_after == [0, 0, 0, 1, 0, 0, 0, 1, 0]
  assert len(list(dofn.finish_bundle())) == 1


def test_bigquery_rows_are_packed_as_the_json_the_outputs_use():
  row = {
      'site_id': 7,
      'amount': decimal.Decimal('1.25'),
      'day': datetime.date(2026, 11, 20),
      'at': datetime.datetime(2026, 11, 20, 3, 4, 5, tzinfo=datetime.timezone.utc),
      'time': datetime.time(3, 4),
      'raw': b'\xff\x00',
      'text': b'ok',
      'nan': float('nan'),
      'tags': ['a'],
      'nested': {
          'v': None
      }
  }
  blocks, letters = run_bundle(PackBySiteFn('site_id'), [('bigquery:d.t', row),
                                                         ('bigquery:d.t', {})])
  (site, [(source, packed)]), = rows_by_site(blocks).items()
  assert (site, source) == ('7', 'bigquery:d.t')
  assert math.isnan(packed.pop('nan'))
  assert packed == {
      'site_id': 7,
      'amount': 1.25,
      'day': '2026-11-20',
      'at': '2026-11-20T03:04:05+00:00',
      'time': '03:04:00',
      'raw': {
          'b64': '/wA='
      },
      'text': 'ok',
      'tags': ['a'],
      'nested': {
          'v': None
      }
  }
  assert [letter['reason'] for letter in letters] == ['missing_site']


def test_a_row_json_cannot_hold_is_a_dead_letter_not_a_crash():
  row = {'site_id': 's', 'odd': object()}
  blocks, letters = run_bundle(PackBySiteFn('site_id'), [('bigquery:d.t', row)])
  assert blocks == []
  assert [(l['stage'], l['reason'], l['record'])
          for l in letters] == [('parse', 'bad_value', repr(row))]


def test_blocks_group_by_site_under_a_pipeline():
  lines = [(f'part-{i % 2}.jsonl', json.dumps({
      'site_id': f's{i % 5}',
      'i': i
  })) for i in range(200)]
  with TestPipeline(runner='FnApiRunner') as p:
    packed = (p | beam.Create(lines)
              | beam.ParDo(PackJsonLinesBySiteFn('site_id', max_block_rows=7)).with_outputs(
                  FAILED, main='rows'))
    grouped = (packed.rows
               | beam.GroupByKey()
               | beam.MapTuple(lambda site, blocks: (
                   site, sorted(json.loads(text)['i'] for b in blocks for _, text in unpack(b)))))
    assert_that(grouped, equal_to([(f's{s}', list(range(s, 200, 5))) for s in range(5)]))
    assert_that(packed[FAILED], equal_to([]), label='no_failures')


def test_with_a_model_root_ids_too_long_for_it_are_refused_while_packing():
  line = ('f', json.dumps({'site_id': 's' * 150, 'x': 1}))
  root = 'gs://bucket/' + 'p' * 900
  blocks, letters = run_bundle(PackJsonLinesBySiteFn('site_id', model_root=root), [line])
  assert not blocks and [(l['stage'], l['reason'])
                         for l in letters] == [('key_by_site', 'bad_site')]
  assert 'GCS object name' in letters[0]['message']
  blocks, letters = run_bundle(PackJsonLinesBySiteFn('site_id'), [line])
  assert not letters and list(rows_by_site(blocks)) == ['s' * 150]


_ODD_IDS = st.sampled_from(
    [2**64 + 1, -2**63 - 1, 10**25 + 7, 2**63, 12, 'a', 'site-0000000000000000000001'])
_FIELD_VALUES = st.one_of(st.integers(), st.sampled_from([2**64 + 1, 10**30, -2**70]), st.floats(),
                          st.text(max_size=4), st.none(),
                          st.lists(st.integers(-2**70, 2**70), max_size=3))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.fixed_dictionaries({'site_id': _ODD_IDS}, optional={'v': _FIELD_VALUES}),
             min_size=1,
             max_size=12))
@example([{'site_id': 2**64 + 1, 'v': 1}, {'site_id': 2**64, 'v': 2**64 + 1}])
@example([{'site_id': 'a', 'v': 2**64 + 1}, {'site_id': 'a', 'v': 0.5}])
def test_rows_keep_their_exact_site_and_values_through_packing_and_chunk_parsing(rows):
  """A line block is parsed fast where its integers fit 64 bits; ids and values beyond
  that (which orjson reads as floats) still come out exactly as json.loads reads them."""
  lines = [json.dumps(row).encode() for row in rows]
  blocks, letters = run_bundle(PackJsonLinesBySiteFn('site_id'), [('f.jsonl', LineBlock(lines))])
  assert not letters
  expected = {}
  for line in lines:
    row = json.loads(line)
    expected.setdefault(site_id_of(row['site_id']), []).append(repr(row))
  found = {}
  for site_id, block in blocks:
    chunk = parse_chunk((site_id, block))
    found.setdefault(site_id, []).extend(repr(row) for row in chunk.rows)
    assert [type(row.get('v')) for row in chunk.rows
            ] == [type(json.loads(text).get('v')) for text in unpack_texts(block)[1]]
  assert found == expected


_LINES = st.one_of(
    st.builds(
        lambda site, i, pad: json.dumps({
            'site_id': site,
            'i': i,
            'pad': pad
        }, ensure_ascii=False).encode(), st.sampled_from(['a', 'b', 'c', 7, 'é']),
        st.integers(-2**70, 2**70), st.text(max_size=5)),
    st.sampled_from([
        b'', b'{bad', b'[1]', b'\xef\xbb\xbf{"site_id": "a", "i": 0}',
        b'{"site_id": "b", "x": NaN}', b'{"site_id": "a", "x": "\xff"}', b'{"i": 1}',
        b'{"site_id": "a/b"}', '{"site_id": "c",\n"i": 3}', '{"site_id": "a", "i": "str line"}'
    ]))


def _keyed_alone(line):
  """(site, packed text) or the dead letter's reason of one line in a bundle of its own."""
  blocks, letters = run_bundle(PackJsonLinesBySiteFn('site_id'), [('f', line)])
  if letters:
    return letters[0]['reason']
  [(site_id, block)] = blocks
  return site_id, unpack_texts(block)[1][0]


@settings(max_examples=200, deadline=None)
@given(elements=st.lists(st.tuples(st.sampled_from(['f', 'g']),
                                   st.lists(_LINES, min_size=1, max_size=9)),
                         min_size=1,
                         max_size=6),
       max_block_rows=st.integers(1, 5),
       max_buffered_bytes=st.integers(1, 400))
def test_a_line_packs_as_it_would_alone_and_blocks_keep_every_line_once_in_order(
    elements, max_block_rows, max_buffered_bytes):
  dofn = PackJsonLinesBySiteFn('site_id',
                               max_block_rows=max_block_rows,
                               max_buffered_bytes=max_buffered_bytes)
  bundle = [(source, LineBlock(lines) if len(lines) > 1 else lines[0])
            for source, lines in elements]
  blocks, letters = run_bundle(dofn, bundle)
  assert all(sum(count for _, count in block[0]) <= max_block_rows for _, block in blocks)
  expected = {}
  expected_letters = []
  for source, lines in elements:
    for line in lines:
      outcome = _keyed_alone(line)
      if isinstance(outcome, str):
        expected_letters.append((source, outcome))
      else:
        expected.setdefault(outcome[0], []).append((source, outcome[1]))
  assert sorted(
      (letter['source'], letter['reason']) for letter in letters) == sorted(expected_letters)
  found = {}
  for site_id, block in blocks:
    found.setdefault(site_id, []).extend(unpack(block))
  assert found == expected
