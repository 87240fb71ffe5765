"""File lists (Vertex's file-list input): expanded at launch, one format, read by its reader."""
import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to

from common import paths
from transforms.dead_letters import FAILED
from transforms.site.csv_rows import ReadCsvRows
from transforms.site.file_list import FileListError
from transforms.site.file_list import ReadJsonLinesFiles
from transforms.site.file_list import expand_file_list
from transforms.site.file_list import format_of
from transforms.site.file_list import input_format
from transforms.site.file_list import list_format
from transforms.site.rows import PackJsonLinesBySiteFn


@pytest.fixture
def inputs(tmp_path):
  (tmp_path / 'data').mkdir()
  for name in ('a.jsonl', 'b.jsonl', 'c.jsonl.gz', 'd.csv'):
    (tmp_path / 'data' / name).write_bytes(b'')
  return tmp_path


def test_entries_are_expanded_in_list_order_relative_to_the_list(inputs):
  (inputs / 'list.txt').write_text('\ufeff' +
                                   f'data/b.jsonl\r\n\r\n  {inputs}/data/a.jsonl  \r\ndata/c*\n',
                                   encoding='utf-8')
  assert expand_file_list(str(inputs / 'list.txt')) == [
      str(inputs / 'data' / 'b.jsonl'),
      str(inputs / 'data' / 'a.jsonl'),
      str(inputs / 'data' / 'c.jsonl.gz')
  ]


@pytest.mark.parametrize('text,words', [
    ('data/a.jsonl\ndata/missing.jsonl\n', 'line 2: '),
    ('data/a.jsonl\ndata/zz*.jsonl\n', 'matches no file'),
    ('data/a.jsonl\ndata\n', 'does not exist (or is a folder)'),
    ('data/a.jsonl\ndata/b.jsonl\ndata/a.jsonl\n', 'listed twice (also on line 1)'),
    ('data/a.jsonl\ndata/*.jsonl\n', 'listed twice'),
    ('\n  \n', 'names no files'),
])
def test_list_mistakes_name_the_list_and_the_line(inputs, text, words):
  (inputs / 'list.txt').write_text(text)
  with pytest.raises(FileListError) as e:
    expand_file_list(str(inputs / 'list.txt'))
  assert str(inputs / 'list.txt') in str(e.value) and words in str(e.value)


def test_a_list_that_is_not_utf8_names_the_line_of_the_first_bad_byte(inputs):
  (inputs / 'list.txt').write_bytes(b'\xef\xbb\xbfdata/a.jsonl\r\ndata/b\xff.jsonl\n')
  with pytest.raises(FileListError) as e:
    expand_file_list(str(inputs / 'list.txt'))
  assert str(e.value) == f'file list {inputs / "list.txt"}: line 2: not UTF-8 text'


def test_a_missing_list_file_raises_the_io_error(tmp_path):
  with pytest.raises(Exception) as e:
    expand_file_list(str(tmp_path / 'nope.txt'))
  assert not isinstance(e.value, FileListError)


def test_formats_by_extension_or_declared():
  assert [
      format_of(p) for p in ('a.jsonl', 'b.JSON', 'c.csv.gz', 'd.tfrecord', 'e.tfr.gz',
                             'gs://b/f.TFRecords', 'g.txt', 'csv', '.csv')
  ] == ['jsonl', 'jsonl', 'csv', 'tfrecord', 'tfrecord', 'tfrecord', None, None, None]
  assert list_format(['a.csv', 'b.csv.gz']) == 'csv'
  assert list_format(['part-0', 'part-1'], 'tfrecord') == 'tfrecord'
  with pytest.raises(FileListError, match='mixes input formats: csv .*jsonl'):
    list_format(['a.csv', 'b.jsonl'])
  with pytest.raises(FileListError, match='--file_list_format=jsonl|csv|tfrecord'):
    list_format(['part-0'])
  with pytest.raises(FileListError, match="'parquet' is not one of"):
    list_format(['a.csv'], 'parquet')
  assert input_format('gs://b/in/*.csv') == 'csv'
  assert input_format('gs://b/in/part-*') == 'jsonl'
  assert input_format('gs://b/list.txt', 'file_list') == 'file_list'


def test_a_gcs_list_of_gcs_files_is_read_by_the_formats_readers(gcs_bucket):
  paths.write_bytes(f'{gcs_bucket}/in/a.csv', b'site_id,x\ns1,1\n')
  paths.write_bytes(f'{gcs_bucket}/in/b.csv', b'site_id,x\ns2,2\ns3\n')
  paths.write_bytes(f'{gcs_bucket}/lists/today.txt',
                    f'{gcs_bucket}/in/b.csv\n../in/a.csv\n'.encode())
  files = expand_file_list(f'{gcs_bucket}/lists/today.txt')
  assert files == [f'{gcs_bucket}/in/b.csv', f'{gcs_bucket}/in/a.csv']
  assert list_format(files) == 'csv'
  with TestPipeline(runner='FnApiRunner') as p:
    result = p | ReadCsvRows(files)
    assert_that(result.rows | beam.MapTuple(lambda source, row: row['site_id']),
                equal_to(['s1', 's2']),
                label='rows')
    assert_that(result[FAILED] | beam.Map(lambda l: l['reason']),
                equal_to(['bad_csv']),
                label='letters')


def test_listed_json_lines_files_give_what_the_input_read_gives(inputs):
  import gzip  # pylint: disable=import-outside-toplevel
  (inputs / 'data' / 'a.jsonl').write_bytes(b'{"site_id": "s1"}\n{"site_id": "s2"}\n')
  (inputs / 'data' / 'c.jsonl.gz').write_bytes(gzip.compress(b'{"site_id": "s3"}\n\xff\n'))
  files = [str(inputs / 'data' / 'a.jsonl'), str(inputs / 'data' / 'c.jsonl.gz')]
  with TestPipeline(runner='FnApiRunner') as p:
    lines = p | ReadJsonLinesFiles(files)
    assert_that(lines | beam.Map(lambda e: (type(e[1]).__name__, e[0] == files[1])),
                equal_to([('bytes', False)] * 2 + [('bytes', True)] * 2),
                label='lines')
    packed = lines | beam.ParDo(PackJsonLinesBySiteFn('site_id')).with_outputs(FAILED, main='rows')
    assert_that(packed.rows | beam.Map(lambda block: block[0]),
                equal_to(['s1', 's2', 's3']),
                label='sites')
    assert_that(packed[FAILED] | beam.Map(lambda l: l['reason']),
                equal_to(['bad_encoding']),
                label='letters')
