"""ReadLinesWithFileName against Beam's own text reader: same lines, same splits,
plus refused over-long lines that are streamed past, never held whole."""
import bz2
import gzip
import json
import tracemalloc

import apache_beam as beam
import pytest
from apache_beam.coders import BytesCoder
from apache_beam.io import range_trackers
from apache_beam.io import source_test_utils
from apache_beam.io import textio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from common import paths
from transforms import text_lines
from transforms.dead_letters import FAILED
from transforms.site.rows import PackJsonLinesBySiteFn
from transforms.text_lines import HEAD_BYTES
from transforms.text_lines import LineSource
from transforms.text_lines import ReadLinesWithFileName
from transforms.text_lines import RefusedLine

BOM = b'\xef\xbb\xbf'
NO_NEWLINE = bytes(b for b in range(256) if b != 10)  # lone \r included
# What users' files hold: text, both line ends, lone \r, blank lines, BOMs, JSON, non-UTF-8.
PIECES = st.sampled_from(
    [b'\n', b'\r\n', b'\r', b'\n\n', BOM, b'{"a": 1}', b'x', b'\xe9', b'caf\xc3\xa9', b' '])
CONTENTS = st.lists(st.one_of(PIECES, st.binary(max_size=12)), max_size=40).map(b''.join)
PROPERTY = settings(max_examples=150,
                    deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def beam_source(path):
  """Today's read: ReadFromTextWithFilename(path, coder=BytesCoder())'s source."""
  return textio._TextSourceWithFilename(  # pylint: disable=protected-access
      path, 0, CompressionTypes.AUTO, True, BytesCoder())


def read_whole(source):
  return source_test_utils.read_from_source(source)


def read_split(source, desired_bundle_size):
  bundles = list(source.split(desired_bundle_size))
  return [
      record for b in bundles
      for record in source_test_utils.read_from_source(b.source, b.start_position, b.stop_position)
  ]


def capped(records, limit):
  """Beam's records with each line over ``limit`` as the RefusedLine it should become."""
  return [(name, line if len(line) <= limit else RefusedLine(
      length=len(line), limit=limit, head=line[:HEAD_BYTES])) for name, line in records]


@PROPERTY
@given(data=CONTENTS, bundle=st.integers(1, 50), chunk=st.integers(1, 9))
def test_every_split_reads_every_line_once_as_beam_does(tmp_path, data, bundle, chunk):
  path = str(tmp_path / 'in.jsonl')
  with open(path, 'wb') as f:
    f.write(data)
  expected = read_whole(beam_source(path))
  assert read_split(beam_source(path), bundle) == expected  # the reference splits too
  new = LineSource(path, chunk_bytes=chunk)
  assert read_split(new, bundle) == expected
  assert read_whole(new) == expected


@PROPERTY
@given(data=CONTENTS, limit=st.integers(1, 12), bundle=st.integers(1, 50), chunk=st.integers(1, 9))
def test_lines_over_the_limit_become_refused_lines_in_place(tmp_path, data, limit, bundle, chunk):
  path = str(tmp_path / 'in.jsonl')
  with open(path, 'wb') as f:
    f.write(data)
  expected = capped(read_whole(beam_source(path)), limit)
  new = LineSource(path, max_line_bytes=limit, chunk_bytes=chunk)
  assert read_split(new, bundle) == expected


@pytest.mark.parametrize(
    'data', [b'a\r\nbb\rb\n\ncc', b'\r\n\r\n\r', BOM + b'{"a": 1}\r\n{"b": 2}\r\n', b'abc\n' * 5])
def test_dynamic_splits_at_every_position_agree(tmp_path, data):
  path = str(tmp_path / 'in.jsonl')
  with open(path, 'wb') as f:
    f.write(data)
  [bundle] = LineSource(path, chunk_bytes=3).split(1 << 30)
  # Split after every number of records read, at many fractions: primary and
  # residual together read what the whole source reads.
  source_test_utils.assert_split_at_fraction_exhaustive(bundle.source,
                                                        perform_multi_threaded_test=False)
  assert read_whole(bundle.source) == read_whole(beam_source(path))


def flat_lines(records):
  """``(name, LineBlock)`` records -> ``(name, line)`` records; checks each block's shape."""
  out = []
  for name, block in records:
    assert isinstance(block, text_lines.LineBlock) and block
    out.extend((name, line) for line in block)
  return out


@PROPERTY
@given(data=CONTENTS,
       limit=st.integers(1, 12),
       bundle=st.integers(1, 50),
       chunk=st.integers(1, 9),
       block_lines=st.integers(1, 5))
def test_blocks_hold_the_lines_one_by_one_reading_gives_in_order(tmp_path, data, limit, bundle,
                                                                 chunk, block_lines):
  path = str(tmp_path / 'in.jsonl')
  with open(path, 'wb') as f:
    f.write(data)
  expected = capped(read_whole(beam_source(path)), limit)
  blocks = LineSource(path, max_line_bytes=limit, chunk_bytes=chunk, block_lines=block_lines)
  records = read_split(blocks, bundle)
  assert flat_lines(records) == expected
  assert all(len(block) <= block_lines for _, block in records)
  assert sum(map(text_lines.records_in, records)) == len(expected)
  assert all(text_lines.records_in(record) == 1 for record in expected)
  assert text_lines.records_in({'reason': 'bad_csv', 'record': 'a,b'}) == 1  # a dead letter


@pytest.mark.parametrize('block_lines', [1, 2, 3])
@pytest.mark.parametrize(
    'data', [b'a\r\nbb\rb\n\ncc', b'\r\n\r\n\r', BOM + b'{"a": 1}\r\n{"b": 2}\r\n', b'abc\n' * 7])
def test_a_split_between_blocks_loses_and_repeats_no_line(tmp_path, data, block_lines):
  path = str(tmp_path / 'in.jsonl')
  with open(path, 'wb') as f:
    f.write(data)
  expected = read_whole(beam_source(path))
  [bundle] = LineSource(path, chunk_bytes=3, block_lines=block_lines).split(1 << 30)
  source = bundle.source  # one file: offsets are byte positions
  whole = len(read_whole(source))
  splits = 0
  for blocks_read in range(whole + 1):
    for fraction in (0.05, 0.3, 0.5, 0.7, 0.95):
      tracker = source.get_range_tracker(None, None)
      reader = iter(source.read(tracker))
      primary = [next(reader) for _ in range(blocks_read)]
      split = tracker.try_split(int(fraction * len(data)))
      primary.extend(reader)
      residual = ([] if split is None else source_test_utils.read_from_source(
          source, split[0], None))
      assert flat_lines(primary + residual) == expected, (blocks_read, fraction, split)
      splits += split is not None
  assert splits or whole == 1  # the reads above did split (one block: nothing to split)


@pytest.mark.parametrize('suffix,compress', [('.gz', gzip.compress), ('.bz2', bz2.compress)])
@settings(max_examples=40,
          deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=CONTENTS, limit=st.integers(1, 12))
def test_compressed_files_are_read_whole_by_extension(tmp_path, suffix, compress, data, limit):
  path = str(tmp_path / ('in.jsonl' + suffix))
  with open(path, 'wb') as f:
    f.write(compress(data))
  expected = read_whole(beam_source(path))
  if data.strip(b'\r\n'):
    assert expected, 'Beam decompressed it'
  new = LineSource(path, chunk_bytes=4)
  assert len(list(new.split(1))) == 1, 'a compressed file is one split'
  assert read_split(new, 1) == expected
  assert read_split(LineSource(path, max_line_bytes=limit, chunk_bytes=4),
                    1) == capped(expected, limit)


def test_gzip_with_a_long_line(tmp_path):
  long = b'{"blob": "' + b'z' * (3 << 20) + b'"}'
  path = str(tmp_path / 'in.jsonl.gz')
  with gzip.open(path, 'wb') as f:
    f.write(b'{"a": 1}\r\n' + long + b'\r\n{"b": 2}')
  assert read_whole(LineSource(path, max_line_bytes=1 << 20)) == [
      (path, b'{"a": 1}'), (path, RefusedLine(len(long), 1 << 20, long[:HEAD_BYTES])),
      (path, b'{"b": 2}')
  ]
  assert read_whole(LineSource(path, max_line_bytes=4 << 20)) == read_whole(beam_source(path))


@pytest.mark.parametrize('ending', [b'\n', b'\r\n', b''])
def test_a_long_line_is_refused_where_it_starts_and_its_neighbours_kept(tmp_path, ending):
  limit = 64 << 10
  long = b'{"site_id": "a", "blob": "' + NO_NEWLINE * (limit // 100) + b'"}'
  path = str(tmp_path / 'in.jsonl')
  with open(path, 'wb') as f:
    f.write(b'{"n": 1}\n' * 100 + long + ending + (b'{"n": 2}\r\n' * 100 if ending else b''))
  refused = RefusedLine(length=len(long), limit=limit, head=long[:HEAD_BYTES])
  expected = capped(read_whole(beam_source(path)), limit)
  assert expected.count((path, refused)) == 1
  for bundle in (1000, 4096, limit // 3, 1 << 30):  # splits inside and around the line
    assert read_split(LineSource(path, max_line_bytes=limit), bundle) == expected
  # Exactly at the limit is fine, one byte over is not (line ends never count).
  assert read_whole(LineSource(path, max_line_bytes=len(long))) == read_whole(beam_source(path))
  assert (path, RefusedLine(len(long),
                            len(long) - 1, long[:HEAD_BYTES])) in read_whole(
                                LineSource(path, max_line_bytes=len(long) - 1))


def test_a_refused_line_is_streamed_not_held(tmp_path):
  path = str(tmp_path / 'in.jsonl')
  with open(path, 'wb') as f:
    f.write(b'{"n": 1}\n')
    for _ in range(32):
      f.write(b'y' * (1 << 20))
    f.write(b'\n{"n": 2}\n')
  tracemalloc.start()
  try:
    records = read_whole(LineSource(path, max_line_bytes=64 << 10))
    _, peak = tracemalloc.get_traced_memory()
  finally:
    tracemalloc.stop()
  assert [r[1] for r in records
          ] == [b'{"n": 1}',
                RefusedLine(32 << 20, 64 << 10, b'y' * HEAD_BYTES), b'{"n": 2}']
  assert peak < 8 * text_lines.DEFAULT_CHUNK_BYTES, f'{peak} bytes held for a 32 MiB line'


def test_refused_line_dead_letter():
  head = b'{"site_id": "caf\xe9", "blob": "'
  letter = RefusedLine(length=70_000_000, limit=1 << 20, head=head).dead_letter('gs://b/in.jsonl')
  assert set(letter) == {'stage', 'reason', 'message', 'site_id', 'source', 'record'}
  assert (letter['stage'], letter['reason'], letter['source']) == ('parse', 'line_too_long',
                                                                   'gs://b/in.jsonl')
  assert letter['record'] == '{"site_id": "caf\\xe9", "blob": "'
  assert '70000000 bytes' in letter['message'] and '1048576 bytes' in letter['message']
  assert letter['site_id'] is None
  json.dumps(letter, allow_nan=False)


def is_refused(element, refused):
  return isinstance(element[1], RefusedLine) == refused


def reason_and_source(letter):
  return letter['reason'], letter['source']


def test_pipeline_gives_beams_elements_and_the_parse_step_dead_letters_refused_lines(tmp_path):
  (tmp_path / 'a.jsonl').write_bytes(BOM + b'{"site_id": "s", "n": 1}\r\n\r\n' + b'q' * 5000)
  (tmp_path / 'b.jsonl').write_bytes(b'{"site_id": "s", "n": 2}\n' + b'w' * 3000 + b'\n')
  (tmp_path / 'c.jsonl').write_bytes(b'')
  pattern = str(tmp_path / '*.jsonl')
  refused = [(str(tmp_path / 'a.jsonl'), RefusedLine(5000, 2000, b'q' * HEAD_BYTES)),
             (str(tmp_path / 'b.jsonl'), RefusedLine(3000, 2000, b'w' * HEAD_BYTES))]
  with TestPipeline() as p:
    ours = p | 'Ours' >> ReadLinesWithFileName(pattern, max_line_bytes=2000)
    theirs = p | 'Beam' >> beam.io.ReadFromTextWithFilename(pattern, coder=BytesCoder())
    assert_that(ours | 'Ok' >> beam.Filter(is_refused, False),
                equal_to([e for e in read_whole(beam_source(pattern)) if len(e[1]) <= 2000]),
                label='Lines')
    assert_that(ours | 'Refused' >> beam.Filter(is_refused, True),
                equal_to(refused),
                label='RefusedLines')
    assert_that(theirs | 'Count' >> beam.combiners.Count.Globally(),
                equal_to([5]),
                label='BeamCount')
    parsed = ours | beam.ParDo(PackJsonLinesBySiteFn('site_id')).with_outputs(FAILED, main='rows')
    assert_that(parsed[FAILED] | beam.Map(reason_and_source),
                equal_to([('empty_line', str(tmp_path / 'a.jsonl'))] + [('line_too_long', name)
                                                                        for name, _ in refused]),
                label='DeadLetters')


def test_limits_below_one_are_refused(tmp_path):
  (tmp_path / 'a.jsonl').write_bytes(b'x\n')
  with pytest.raises(ValueError, match='max_line_bytes'):
    ReadLinesWithFileName(str(tmp_path / 'a.jsonl'), max_line_bytes=0)
  with pytest.raises(IOError, match='No files found'):
    ReadLinesWithFileName(str(tmp_path / 'none-*.jsonl'))


@pytest.mark.gcs
def test_gs_paths_split_and_refuse_like_local_files(tmp_path, gcs_bucket):
  data = (b'{"n": 1}\r\n' * 500 + b'{"blob": "' + b'g' * (2 << 20) + b'"}\r\n' + BOM +
          b'{"n": 2}\n' * 500 + b'{"n": 3}')
  local = str(tmp_path / 'in.jsonl')
  with open(local, 'wb') as f:
    f.write(data)
  remote = f'{gcs_bucket}/input/in.jsonl'
  paths.write_bytes(remote, data)
  expected = [(remote, line) for _, line in capped(read_whole(beam_source(local)), 1 << 20)]
  assert any(isinstance(line, RefusedLine) for _, line in expected)
  for bundle in (3000, 1 << 20, 1 << 30):
    assert read_split(LineSource(remote, max_line_bytes=1 << 20), bundle) == expected


class _SplitBeforeClaim(range_trackers.OffsetRangeTracker):
  """A tracker another thread splits at ``split_at`` right before the ``nth`` claim:
  after the reader has scanned a block, before it claims the block's last line."""

  def __init__(self, start, stop, *, nth, split_at):
    super().__init__(start, stop)
    self._claims, self._nth, self._split_at = 0, nth, split_at
    self.split = None

  def try_claim(self, record_start):
    self._claims += 1
    if self._claims == self._nth:
      self.split = self.try_split(self._split_at)
    return super().try_claim(record_start)


@settings(max_examples=40,
          deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=CONTENTS.filter(bool),
       limit=st.integers(1, 12),
       chunk=st.integers(1, 30),
       block_lines=st.integers(1, 4))
def test_a_split_landing_inside_a_scanned_block_loses_and_repeats_no_line(
    tmp_path, data, limit, chunk, block_lines):
  path = str(tmp_path / 'in.jsonl')
  with open(path, 'wb') as f:
    f.write(data)
  expected = capped(read_whole(beam_source(path)), limit)
  source = LineSource(path, max_line_bytes=limit, chunk_bytes=chunk, block_lines=block_lines)
  [bundle] = source.split(1 << 30)
  splits = 0
  for nth in range(2, 6):  # before the first claim the tracker refuses splits (unstarted)
    for split_at in range(1, len(data)):
      tracker = _SplitBeforeClaim(0, len(data), nth=nth, split_at=split_at)
      primary = list(bundle.source.read(tracker))
      residual = ([] if tracker.split is None else source_test_utils.read_from_source(
          bundle.source, tracker.split[0], None))
      # A split the tracker accepts once the reader is done must not cut what it gave.
      stop = tracker.stop_position()
      late = next(filter(None, map(tracker.try_split, range(1, len(data)))), None)
      residual = ([] if late is None else source_test_utils.read_from_source(
          bundle.source, late[0], stop)) + residual
      assert flat_lines(primary + residual) == expected, (nth, split_at, late)
      assert all(len(block) <= block_lines for _, block in primary + residual)
      splits += tracker.split is not None
  assert splits or len(expected) <= block_lines  # one block: nothing left to split


def test_block_reads_split_lines_of_a_chunk_at_once_as_line_reads_give_them(tmp_path):
  lines = [b'{"i": %d}' % i for i in range(5000)] + [b'x\r', b'', b'y' * 40]
  data = b'\n'.join(lines) + b'\r\n'
  path = str(tmp_path / 'in.jsonl')
  with open(path, 'wb') as f:
    f.write(data)
  expected = capped(read_whole(beam_source(path)), 30)
  blocks = read_whole(LineSource(path, max_line_bytes=30, block_lines=1000))
  assert flat_lines(blocks) == expected
  assert [len(block) for _, block in blocks] == [1000] * 5 + [3]
