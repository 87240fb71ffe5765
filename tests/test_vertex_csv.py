"""CSV instance files: every record once, as a row of text or a dead letter with its raw text."""
import csv
import gzip
import io
import json
import math

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from common import paths
from transforms.dead_letters import FAILED
from transforms.site.csv_rows import ReadCsvRows
from transforms.site.csv_rows import csv_records


def read(data: bytes, source='f.csv'):
  """(rows, dead letters) of one file's bytes."""
  rows, letters = [], []
  for out in csv_records(source, io.BytesIO(data)):
    if isinstance(out, beam.pvalue.TaggedOutput):
      assert out.tag == FAILED
      letters.append(out.value)
    else:
      assert out[0] == source
      rows.append(out[1])
  return rows, letters


def write_csv(header, rows, *, lineterminator='\r\n', bom=False) -> bytes:
  buffer = io.StringIO(newline='')
  writer = csv.writer(buffer, lineterminator=lineterminator)
  writer.writerow(header)
  writer.writerows(rows)
  return (('\ufeff' if bom else '') + buffer.getvalue()).encode('utf-8')


def test_quoted_commas_quotes_newlines_bom_and_crlf_come_back_as_text():
  data = ('\ufeffsite_id,"note, with comma",n\r\n'
          '007,"line one\r\nline ""two""",12\r\n'
          's-2,,1.50\n'
          'é,"ünï ✓",-3\r\n').encode()
  rows, letters = read(data)
  assert letters == []
  assert rows == [
      {
          'site_id': '007',
          'note, with comma': 'line one\r\nline "two"',
          'n': '12'
      },
      {
          'site_id': 's-2',
          'note, with comma': '',
          'n': '1.50'
      },
      {
          'site_id': 'é',
          'note, with comma': 'ünï ✓',
          'n': '-3'
      },
  ]
  assert list(rows[0]) == ['site_id', 'note, with comma', 'n']


@pytest.mark.parametrize('line,reason,shown', [
    (b's2,2', 'bad_csv', 's2,2'),
    (b's3,3,4,5', 'bad_csv', 's3,3,4,5'),
    (b's4,"3"x,1', 'bad_csv', 's4,"3"x,1'),
    (b's5,\xff\xfe,1', 'bad_encoding', 's5,\\xff\\xfe,1'),
    (b'', 'empty_line', ''),
])
def test_a_malformed_record_is_a_dead_letter_with_its_raw_text(line, reason, shown):
  data = b'site_id,x,y\r\ns1,1,2\r\n' + line + b'\r\ns9,9,9\r\n'
  rows, letters = read(data, source='gs://b/in.csv')
  assert [r['site_id'] for r in rows] == ['s1', 's9']
  (letter, ) = letters
  assert (letter['stage'], letter['reason'], letter['record']) == ('parse', reason, shown)
  assert letter['source'] == 'gs://b/in.csv' and 'line 3' in letter['message']
  json.dumps(letter, allow_nan=False)


def test_a_quote_left_open_takes_the_rest_of_the_file_as_one_dead_letter():
  rows, letters = read(b'site_id,x\ns1,1\ns2,"open\ns3,3\ns4,4\n')
  assert [r['site_id'] for r in rows] == ['s1']
  assert [(l['reason'], l['record']) for l in letters] == [('bad_csv', 's2,"open\ns3,3\ns4,4')]


def test_a_header_naming_a_field_twice_fails_each_row_of_that_file_only():
  rows, letters = read(b'site_id,x,x\ns1,1,2\ns2,3,4\n')
  assert rows == []
  assert [(l['reason'], l['record']) for l in letters] == [('bad_csv_header', 's1,1,2'),
                                                           ('bad_csv_header', 's2,3,4')]
  assert "'x'" in letters[0]['message']


def test_header_only_and_empty_files_give_nothing():
  assert read(b'site_id,x\r\n') == ([], [])
  assert read(b'') == ([], [])


def test_a_file_without_a_final_line_ending_keeps_its_last_row():
  assert read(b'site_id,x\ns1,1')[0] == [{'site_id': 's1', 'x': '1'}]


_CELL = st.text(alphabet=st.characters(blacklist_categories=('Cs', ), blacklist_characters='\x00'),
                max_size=12) | st.sampled_from(
                    ['', ',', '"', '""', '\n', '\r\n', '\r', ' a, "b" ', '✓\u2028'])


@settings(max_examples=150, deadline=None)
@given(width=st.integers(1, 5),
       data=st.data(),
       lineterminator=st.sampled_from(['\r\n', '\n']),
       bom=st.booleans())
def test_every_record_comes_back_once_as_a_row_or_a_dead_letter(width, data, lineterminator, bom):
  header = [f'c{i}' for i in range(width)]
  records = data.draw(
      st.lists(st.tuples(st.booleans(), st.lists(_CELL, min_size=1, max_size=7)), max_size=12))
  buffer = io.StringIO(newline='')
  # QUOTE_ALL: Python's minimal quoting leaves a lone CR unquoted with LF line
  # endings, a file no CSV reader can read back (RFC 4180 requires the quotes).
  writer = csv.writer(buffer, lineterminator=lineterminator, quoting=csv.QUOTE_ALL)
  writer.writerow(header)
  expected_rows, expected_bad = [], []
  for good, cells in records:
    if good:
      cells = (cells + [''] * width)[:width]
    elif len(cells) == width:
      cells = cells + ['extra']
    start = buffer.tell()
    writer.writerow(cells)
    raw = buffer.getvalue()[start:][:-len(lineterminator)]
    (expected_rows if good else expected_bad).append(dict(zip(header, cells)) if good else raw)
  text = ('\ufeff' if bom else '') + buffer.getvalue()
  rows, letters = read(text.encode('utf-8'))
  assert rows == expected_rows
  assert [l['record'] for l in letters] == expected_bad
  assert {l['reason'] for l in letters} <= {'bad_csv'}
  for letter in letters:
    json.dumps(letter, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_and_every_letter_is_strict_json(data):
  rows, letters = read(b'site_id,x\n' + data)
  for letter in letters:
    assert letter['reason'] in ('bad_csv', 'bad_encoding', 'empty_line')
    json.dumps(letter, allow_nan=False)
  for row in rows:
    assert list(row) == ['site_id', 'x'] and all(isinstance(v, str) for v in row.values())


def test_pandas_files_keep_their_text_and_nan_cells_are_empty_not_zero():
  frame = pd.DataFrame({
      'site_id': ['007', 's-2', 's-3'],
      'temp': [21.5, np.nan, 1e-7],
      'count': pd.array([3, None, 5], dtype='Int64'),
      'label': ['a,b', None, 'multi\nline'],
  })
  rows, letters = read(frame.to_csv(index=False, lineterminator='\r\n').encode())
  assert letters == []
  assert rows == [
      {
          'site_id': '007',
          'temp': '21.5',
          'count': '3',
          'label': 'a,b'
      },
      {
          'site_id': 's-2',
          'temp': '',
          'count': '',
          'label': ''
      },
      {
          'site_id': 's-3',
          'temp': '1e-07',
          'count': '5',
          'label': 'multi\nline'
      },
  ]
  # pandas' default index becomes an unnamed column, kept under the name ''.
  rows, _ = read(frame.to_csv().encode())
  assert rows[0][''] == '0' and rows[0]['site_id'] == '007'


@pytest.fixture
def csv_files(tmp_path):
  """Two plain files and one gzip file: (folder, bytes by file name)."""
  contents = {
      'a.csv': write_csv(['site_id', 'x'], [['s1', '1'], ['s2', '2']]),
      'b.csv': b'site_id,x\r\ns3,"multi\r\nline"\r\ns4\r\n',
      'c.csv.gz': gzip.compress(write_csv(['site_id', 'x'], [['s5', '5']], bom=True)),
  }
  for name, data in contents.items():
    (tmp_path / name).write_bytes(data)
  return tmp_path, contents


def test_the_reader_reads_every_file_of_a_pattern_and_gzip(csv_files):
  folder, _ = csv_files
  rows = [(str(folder / 'a.csv'), 's1'), (str(folder / 'a.csv'), 's2'),
          (str(folder / 'b.csv'), 's3'), (str(folder / 'c.csv.gz'), 's5')]
  letters = [(str(folder / 'b.csv'), 'bad_csv', 's4')]
  _run_and_check(str(folder / '*.csv*'), rows, letters)
  _run_and_check([str(folder / 'a.csv'), str(folder / 'c.csv.gz')], rows[:2] + rows[3:], [])


def _run_and_check(patterns, rows, letters, **kwargs):
  with TestPipeline(runner='FnApiRunner') as p:
    result = p | ReadCsvRows(patterns, **kwargs)
    assert_that(result.rows | beam.MapTuple(lambda source, row: (source, row['site_id'])),
                equal_to(rows),
                label='rows')
    assert_that(result[FAILED] | beam.Map(lambda l: (l['source'], l['reason'], l['record'])),
                equal_to(letters),
                label='letters')


def test_a_file_that_is_not_gzip_is_one_bad_file_letter(tmp_path):
  (tmp_path / 'bad.csv.gz').write_bytes(b'site_id,x\ns1,1\n')
  (tmp_path / 'ok.csv').write_bytes(b'site_id,x\ns1,1\n')
  _run_and_check(str(tmp_path / '*'), [(str(tmp_path / 'ok.csv'), 's1')],
                 [(str(tmp_path / 'bad.csv.gz'), 'bad_file', None)])


def test_the_reader_reads_gcs(gcs_bucket):
  paths.write_bytes(f'{gcs_bucket}/in/part-0.csv', write_csv(['site_id'], [['g1'], ['g2']]))
  paths.write_bytes(f'{gcs_bucket}/in/part-1.csv', b'site_id,extra\ng3,1\ng4\n')
  _run_and_check(f'{gcs_bucket}/in/*.csv', [(f'{gcs_bucket}/in/part-0.csv', 'g1'),
                                            (f'{gcs_bucket}/in/part-0.csv', 'g2'),
                                            (f'{gcs_bucket}/in/part-1.csv', 'g3')],
                 [(f'{gcs_bucket}/in/part-1.csv', 'bad_csv', 'g4')])


def test_read_rows_are_values_json_carries(tmp_path):
  (tmp_path / 'f.csv').write_bytes(b'site_id,v\ns,nan\ns,inf\n')
  rows, _ = read((tmp_path / 'f.csv').read_bytes())
  assert [row['v'] for row in rows] == ['nan', 'inf']  # text until typed at the model
  assert not any(isinstance(v, float) and math.isnan(v) for row in rows for v in row.values())
