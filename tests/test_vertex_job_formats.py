"""The per-site job on CSV, TFRecord and file-list inputs, end to end on the local runner.

Same instances as JSON-lines, CSV and TFRecord give the same outcome per row
(predictions equal, and equal to the SavedModels run directly); malformed
records of each format are dead letters holding the raw record; listed files
are read wherever they are.
"""
import base64
import gzip
import struct
import tempfile
import pathlib

import pytest
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import savedmodel_builders
import vertex_job_data as data

pytestmark = pytest.mark.e2e

MODEL_SITES = ('lin-a', 'lin-b', '42', 'multi', 'echo')


@pytest.fixture(scope='module')
def models(tmp_path_factory):
  root = tmp_path_factory.mktemp('models')
  return str(root), savedmodel_builders.build_model_root(str(root))


_FLOATS = st.floats(-1e4, 1e4, width=32)
_TEXT = st.text(st.characters(blacklist_categories=('Cs', 'Cc')) | st.sampled_from('\n\r",; '),
                min_size=1,
                max_size=8).filter(lambda s: s.strip(' \t'))


def _x(width):
  """A feature list of ``width`` floats; or a wrong length (bad_feature), or none (missing)."""
  return st.one_of(
      st.tuples(st.lists(_FLOATS, min_size=width, max_size=width), st.just(None)),
      st.tuples(
          st.lists(_FLOATS, min_size=1, max_size=4).filter(lambda v: len(v) != width),
          st.just('bad_feature')), st.tuples(st.none(), st.just('missing_feature')))


@st.composite
def _row(draw):
  """``(row, expected dead-letter reason or None)``."""
  kind = draw(st.sampled_from(['lin-a', 'lin-b', '42', 'multi', 'echo', 'nope']))
  if kind == 'multi':
    row = {'site_id': 'multi', 'a': draw(_FLOATS), 'b': draw(st.integers(-2**40, 2**40))}
    reason = None
  elif kind == 'echo':
    x, reason = draw(_x(2))
    row = {'site_id': 'echo', 'key': draw(_TEXT), 'x': x}
  else:
    x, reason = draw(_x(3))
    row = {'site_id': 42 if kind == '42' else kind, 'x': x}
    reason = 'no_model' if kind == 'nope' else reason
  if draw(st.booleans()):
    row['note'] = draw(_TEXT)
  return row, reason


_FIXED = [
    ({
        'site_id': 'lin-a',
        'x': [0.1, 2.0, -3.5],
        'note': 'say "hi", twice\r\nok'
    }, None),
    ({
        'site_id': 'lin-b',
        'x': [1.0, 2.0, 3.0]
    }, None),
    ({
        'site_id': 42,
        'x': [9.0, 8.0, 7.0]
    }, None),
    ({
        'site_id': 'multi',
        'a': -2.0,
        'b': 4
    }, None),
    ({
        'site_id': 'echo',
        'key': ' ünï, "x"\n',
        'x': [3.0, -1.0]
    }, None),
    ({
        'site_id': 'lin-a',
        'x': [1.0, 2.0]
    }, 'bad_feature'),
    ({
        'site_id': 'lin-a',
        'x': None,
        'note': 'no x'
    }, 'missing_feature'),
    ({
        'site_id': 'nope',
        'x': [1.0, 2.0, 3.0]
    }, 'no_model'),
]


def _numbered(drawn):
  rows = []
  for i, (row, reason) in enumerate(drawn):
    row = {'rid': f'r{i}', **{k: v for k, v in row.items() if v is not None}}
    rows.append((row, reason))
  return rows


@settings(max_examples=2, deadline=None, derandomize=True)
@given(st.lists(_row(), min_size=1, max_size=30))
@example(_FIXED)
def test_the_same_rows_in_every_format_have_the_same_outcome_per_row(models, drawn):
  model_root, model_dirs = models
  rows = _numbered(drawn)
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    by_format = {}
    for fmt in data.FORMATS:
      path = data.write_rows(tmp / 'in' / fmt, fmt, [row for row, _ in rows])
      found = data.run_job(path, model_root, tmp / f'out-{fmt}')
      summary = found['summary']
      assert (summary['records_read'], summary['reconciled']) == (len(rows), True), fmt
      by_format[fmt] = data.outcomes(found)
  assert by_format['csv'] == by_format['jsonl']
  assert by_format['tfrecord'] == by_format['jsonl']
  for row, reason in rows:
    outcome, prediction = by_format['jsonl'][row['rid']]
    if reason is not None:
      assert outcome == reason, row
      continue
    assert outcome == 'predicted', row
    data.assert_outputs_equal(prediction, data.direct(model_dirs[str(row['site_id'])], row))


GOOD = [{
    'site_id': 'lin-a',
    'rid': 'g1',
    'x': [1.0, 2.0, 3.0]
}, {
    'site_id': 'lin-b',
    'rid': 'g2',
    'x': [-3.0, 7.0, 0.5]
}, {
    'site_id': 'multi',
    'rid': 'g3',
    'a': 1.5,
    'b': 3
}]


def _check_good(found, model_dirs, good=GOOD):
  by_key = {line['key']: line for line in found['predictions']}
  assert sorted(by_key) == sorted(row['rid'] for row in good)
  for row in good:
    data.assert_outputs_equal(by_key[row['rid']]['prediction'],
                              data.direct(model_dirs[row['site_id']], row))


def test_malformed_csv_records_are_dead_letters_with_their_lines(models, tmp_path):
  model_root, model_dirs = models
  text = data.csv_bytes(GOOD, fields=['site_id', 'rid', 'x', 'a', 'b'])
  text += (
      b'lin-a,short\r\n'  # too few fields
      b'lin-a,caf\xe9,"[1, 2, 3]",,\r\n'  # not UTF-8
      b'\r\n'  # blank
      b'lin-a,typed,"[1, nan, 3]",,\r\n'  # parses, not a float32 value
      b'lin-b,open,"[1, 2\r\n')  # quote never closed
  (tmp_path / 'in.csv').write_bytes(text)
  found = data.run_job(tmp_path / 'in.csv', model_root, tmp_path / 'out')
  _check_good(found, model_dirs)
  letters = {letter['reason']: letter for letter in found['errors']}
  assert sorted(letters) == ['bad_csv', 'bad_encoding', 'bad_feature', 'empty_line']
  bad_csv = sorted(l['record'] for l in found['errors'] if l['reason'] == 'bad_csv')
  assert bad_csv == ['lin-a,short', 'lin-b,open,"[1, 2']
  assert letters['bad_encoding']['record'] == 'lin-a,caf\\xe9,"[1, 2, 3]",,'
  assert letters['empty_line']['record'] == ''
  assert letters['bad_feature']['record']['rid'] == 'typed'
  assert all(l['source'] == str(tmp_path / 'in.csv') for l in found['errors'])
  summary = found['summary']
  assert summary['records_read'] == len(GOOD) + 5
  assert summary['failed'] == {'bad_csv': 2, 'bad_encoding': 1, 'empty_line': 1, 'bad_feature': 1}
  assert summary['reconciled'] is True


def _frame(data_bytes: bytes, *, corrupt: bool = False) -> bytes:
  """One TFRecord frame as TF writes it; ``corrupt``: the data changed after its checksum."""
  from transforms.site.tfrecord_rows import masked_crc32c  # pylint: disable=import-outside-toplevel
  header = struct.pack('<Q', len(data_bytes))
  crc = struct.pack('<I', masked_crc32c(data_bytes))
  if corrupt:
    data_bytes = data_bytes[:-1] + bytes([data_bytes[-1] ^ 0xff])
  return header + struct.pack('<I', masked_crc32c(header)) + data_bytes + crc


def test_malformed_tfrecords_are_dead_letters_with_the_record_in_base64(models, tmp_path):
  model_root, model_dirs = models
  not_example = b'\x0a\xff'
  nan_example = data.example_bytes({
      'site_id': 'lin-a',
      'rid': 'nan',
      'x': [1.0, float('nan'), 3.0]
  })
  corrupted = data.example_bytes({'site_id': 'lin-a', 'rid': 'crc', 'x': [1.0, 2.0, 3.0]})
  good = [data.example_bytes(row) for row in GOOD]
  tail = b'\x05\x00\x00'  # a header cut short: the file ends mid-frame
  (tmp_path / 'in').mkdir()
  (tmp_path / 'in' /
   'a.tfrecord').write_bytes(b''.join(_frame(r) for r in good[:2]) + _frame(not_example) +
                             _frame(nan_example) + _frame(corrupted, corrupt=True) + tail)
  data.write_tfrecord(tmp_path / 'in' / 'b.tfrecord.gz', good[2:], gzipped=True)
  found = data.run_job(f'{tmp_path}/in/*', model_root, tmp_path / 'out', '--input_format=tfrecord')
  _check_good(found, model_dirs)
  records = sorted((l['reason'], base64.b64decode(l['record'])) for l in found['errors'])
  flipped = corrupted[:-1] + bytes([corrupted[-1] ^ 0xff])
  assert records == sorted([('bad_tfrecord', not_example), ('bad_value', nan_example),
                            ('bad_tfrecord', flipped), ('bad_tfrecord', tail)])
  summary = found['summary']
  assert summary['records_read'] == len(GOOD) + 4
  assert summary['failed'] == {'bad_tfrecord': 3, 'bad_value': 1}
  assert summary['reconciled'] is True


def test_a_file_list_names_files_in_other_folders(models, tmp_path):
  model_root, model_dirs = models
  first = data.write_rows(tmp_path / 'exports' / 'monday', 'csv', GOOD[:2], name='part-0')
  second = data.write_rows(tmp_path / 'elsewhere',
                           'csv',
                           GOOD[2:] + [{
                               'site_id': 'lin-a',
                               'rid': 'bad',
                               'x': '[1, 2]'
                           }],
                           name='part-1')
  data.gzip_file(second, tmp_path / 'elsewhere' / 'part-1.csv.gz')
  (tmp_path / 'lists').mkdir()
  (tmp_path / 'lists' /
   'today.txt').write_text(f'../exports/monday/part-0.csv\r\n\r\n  {tmp_path}/elsewhere/*.gz\r\n')
  found = data.run_job(tmp_path / 'lists' / 'today.txt', model_root, tmp_path / 'out',
                       '--input_format=file_list')
  _check_good(found, model_dirs)
  [letter] = found['errors']
  assert (letter['reason'], letter['source']) == ('bad_feature',
                                                  str(tmp_path / 'elsewhere' / 'part-1.csv.gz'))
  assert found['summary']['records_read'] == len(GOOD) + 1
  assert found['summary']['reconciled'] is True
  assert str(first) != letter['source']


def test_listed_json_lines_files_are_read_like_input_lines(models, tmp_path):
  model_root, model_dirs = models
  (tmp_path / 'a').mkdir()
  long_line = {'site_id': 'lin-a', 'rid': 'long', 'x': [1.0, 2.0, 3.0], 'note': 'n' * 500}
  (tmp_path / 'a' / 'one.jsonl').write_bytes(
      data.jsonl_bytes(GOOD[:1] + [long_line], crlf=True, bom=True))
  (tmp_path / 'b.json').write_bytes(data.jsonl_bytes(GOOD[1:]) + b'{"site_id": \n')
  (tmp_path / 'list.txt').write_text('a/one.jsonl\nb.json\n')
  found = data.run_job(tmp_path / 'list.txt', model_root, tmp_path / 'out',
                       '--input_format=file_list', '--max_line_bytes=300')
  _check_good(found, model_dirs)
  assert sorted(l['reason'] for l in found['errors']) == ['bad_json', 'line_too_long']
  assert found['summary']['records_read'] == len(GOOD) + 2
  assert found['summary']['reconciled'] is True


def test_csv_compressed_without_an_extension_reads_with_input_compression(models, tmp_path):
  model_root, model_dirs = models
  plain = data.write_rows(tmp_path / 'plain', 'csv', GOOD)
  data.gzip_file(plain, tmp_path / 'rows.csv')
  found = data.run_job(tmp_path / 'rows.csv', model_root, tmp_path / 'out',
                       '--input_compression=gzip')
  _check_good(found, model_dirs)
  assert found['summary']['reconciled'] is True and found['errors'] == []


def test_files_named_dot_gzip_are_read_as_gzip(models, tmp_path):
  # Beam's detection by extension knows .gz only: a .gzip file would be read as
  # it is, every line a bad_encoding dead letter.
  model_root, model_dirs = models
  (tmp_path / 'in').mkdir()
  (tmp_path / 'in' / 'a.jsonl.gzip').write_bytes(gzip.compress(data.jsonl_bytes(GOOD[:2])))
  (tmp_path / 'in' / 'b.JSONL.GZIP').write_bytes(gzip.compress(data.jsonl_bytes(GOOD[2:3])))
  (tmp_path / 'in' / 'c.jsonl.gz').write_bytes(gzip.compress(data.jsonl_bytes(GOOD[3:])))
  found = data.run_job(f'{tmp_path}/in/*', model_root, tmp_path / 'out')
  _check_good(found, model_dirs)
  assert found['summary']['reconciled'] is True and found['errors'] == []
