"""TFRecord files of tf.train.Example: features by name, broken records as dead letters."""
import base64
import gzip
import io
import json

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from common import paths
from models.site.layout import locate
from models.site.site_model import load_site_model
from transforms.dead_letters import FAILED
from transforms.site.tfrecord_rows import ReadTfRecordRows
from transforms.site.tfrecord_rows import example_row
from transforms.site.tfrecord_rows import masked_crc32c
from transforms.site.tfrecord_rows import tfrecord_records


def feature(values):
  if all(isinstance(v, bytes) for v in values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
  if all(isinstance(v, int) for v in values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
  return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def example(**features) -> bytes:
  return tf.train.Example(features=tf.train.Features(feature={
      k: feature(v)
      for k, v in features.items()
  })).SerializeToString()


def write_records(path, records, options=None):
  """Writes with TF's own writer, as users' export jobs do."""
  with tf.io.TFRecordWriter(str(path), options) as writer:
    for record in records:
      writer.write(record)
  return path


def read(data: bytes, source='f.tfrecord'):
  rows, letters = [], []
  for out in tfrecord_records(source, io.BytesIO(data)):
    if isinstance(out, beam.pvalue.TaggedOutput):
      assert out.tag == FAILED
      letters.append(out.value)
    else:
      rows.append(out[1])
  return rows, letters


def test_features_become_scalars_lists_text_and_b64(tmp_path):
  path = write_records(tmp_path / 'a.tfrecord', [
      example(site_id=[b'007'],
              n=[3],
              x=[0.5, 2.25, -1.0],
              word=['héllo'.encode()],
              raw=[b'\xff\x00'],
              tags=[b'a', b'b'],
              big=[2**63 - 1])
  ])
  rows, letters = read(path.read_bytes())
  assert letters == []
  assert rows == [{
      'big': 2**63 - 1,
      'n': 3,
      'raw': {
          'b64': '/wA='
      },
      'site_id': '007',
      'tags': ['a', 'b'],
      'word': 'héllo',
      'x': [0.5, 2.25, -1.0]
  }]
  assert list(rows[0]) == sorted(rows[0])


def test_floats_are_the_stored_float32_values_exactly():
  (row, ), _ = read(_framed(example(x=[0.1, 1e-45, 3.4028235e38])))
  assert row['x'] == [
      float(np.float32(0.1)),
      float(np.float32(1e-45)),
      float(np.float32(3.4028235e38))
  ]
  assert np.array(row['x'], np.float32).tolist() == np.array([0.1, 1e-45, 3.4028235e38],
                                                             np.float32).tolist()


def test_an_empty_feature_is_null():
  empty = tf.train.Example(features=tf.train.Features(
      feature={
          'a': tf.train.Feature(float_list=tf.train.FloatList(value=[])),
          'b': tf.train.Feature()
      })).SerializeToString()
  assert read(_framed(empty))[0] == [{'a': None, 'b': None}]


def _framed(*records) -> bytes:
  out = io.BytesIO()
  for record in records:
    length = len(record).to_bytes(8, 'little')
    out.write(length + masked_crc32c(length).to_bytes(4, 'little') + record +
              masked_crc32c(record).to_bytes(4, 'little'))
  return out.getvalue()


def test_our_framing_matches_tfs_writer(tmp_path):
  records = [example(n=[i]) for i in range(3)] + [b'']
  assert write_records(tmp_path / 'f', records).read_bytes() == _framed(*records)


def letters_of(data):
  rows, letters = read(data)
  return rows, [(l['stage'], l['reason'], l['record']) for l in letters]


def test_records_that_are_not_examples_are_dead_letters_and_reading_goes_on():
  good = example(site_id=[b's'], n=[1])
  sequence = tf.train.SequenceExample(feature_lists=tf.train.FeatureLists(
      feature_list={'f': tf.train.FeatureList(feature=[feature([1])])})).SerializeToString()
  nan = example(site_id=[b's'], x=[1.0, float('nan')])
  rows, letters = letters_of(_framed(good, b'\xff\xff\xff', sequence, nan, good))
  assert rows == [{'n': 1, 'site_id': 's'}] * 2
  b64 = lambda data: base64.b64encode(data).decode()
  assert letters == [('parse', 'bad_tfrecord', b64(b'\xff\xff\xff')),
                     ('parse', 'bad_tfrecord', b64(sequence)), ('parse', 'bad_value', b64(nan))]


def test_a_data_checksum_failure_loses_that_record_only():
  records = [example(n=[i]) for i in range(3)]
  data = bytearray(_framed(*records))
  second = 12 + len(records[0]) + 4 + 12
  data[second + 2] ^= 0x01
  rows, letters = letters_of(bytes(data))
  assert rows == [{'n': 0}, {'n': 2}]
  (stage, reason, record), = letters
  assert reason == 'bad_tfrecord' and base64.b64decode(record) != records[1]
  assert len(base64.b64decode(record)) == len(records[1])


@pytest.mark.parametrize('cut', [5, 12, 20])
def test_a_truncated_file_keeps_the_records_before_the_cut(cut):
  data = _framed(example(n=[1]), example(n=[2]))
  whole = len(_framed(example(n=[1])))
  rows, letters = letters_of(data[:whole + cut])
  assert rows == [{'n': 1}]
  assert letters == [('parse', 'bad_tfrecord', base64.b64encode(data[whole:whole + cut]).decode())]


def test_a_file_that_is_not_tfrecord_is_one_dead_letter(tmp_path):
  text = b'{"site_id": "s", "x": 1}\n' * 1000
  rows, letters = read(text)
  assert rows == []
  (letter, ) = letters
  assert letter['reason'] == 'bad_tfrecord' and f'{len(text)} bytes' in letter['message']
  assert base64.b64decode(letter['record']) == text


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_and_letters_are_strict_json(data):
  rows, letters = read(data)
  for letter in letters:
    assert letter['reason'] in ('bad_tfrecord', 'bad_value')
    json.dumps(letter, allow_nan=False)
  for row in rows:
    json.dumps(row, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=6), st.data())
def test_every_record_is_one_row_or_one_dead_letter(payloads, data):
  records = [example(blob=[p]) if data.draw(st.booleans()) else p for p in payloads]
  rows, letters = read(_framed(*records))
  assert len(rows) + len(letters) == len(records)


def _run(patterns, rows, letters, **kwargs):
  with TestPipeline(runner='FnApiRunner') as p:
    result = p | ReadTfRecordRows(patterns, **kwargs)
    assert_that(result.rows | beam.MapTuple(lambda source, row: (source, row['n'])),
                equal_to(rows),
                label='rows')
    assert_that(result[FAILED] | beam.Map(lambda l: (l['source'], l['reason'])),
                equal_to(letters),
                label='letters')


def test_the_reader_reads_plain_and_gzip_files_and_gcs(tmp_path, gcs_bucket):
  plain = str(write_records(tmp_path / 'a.tfrecord', [example(n=[1]), example(n=[2])]))
  zipped = str(
      write_records(tmp_path / 'b.tfrecord.gz', [example(n=[3])],
                    tf.io.TFRecordOptions(compression_type='GZIP')))
  (tmp_path / 'c.tfrecord').write_bytes(_framed(example(n=[4]), b'\xff'))
  _run(str(tmp_path / '*'), [(plain, 1), (plain, 2), (zipped, 3),
                             (str(tmp_path / 'c.tfrecord'), 4)],
       [(str(tmp_path / 'c.tfrecord'), 'bad_tfrecord')])
  remote = f'{gcs_bucket}/in/part-0'  # gzip without the extension: Vertex's tf-record-gzip
  paths.write_bytes(remote, gzip.compress(_framed(example(n=[5]))))
  _run([remote], [(remote, 5)], [], compression='gzip')


class _ParsesExamples(tf.Module):
  """serving_default(examples: string[None]) -> parses tf.Example itself, as TFX exports do."""

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
  def serve(self, examples):
    parsed = tf.io.parse_example(examples, {
        'x': tf.io.FixedLenFeature([2], tf.float32),
        'n': tf.io.FixedLenFeature([], tf.int64)
    })
    return {'y': tf.reduce_sum(parsed['x'], axis=1) * tf.cast(parsed['n'], tf.float32)}


def test_a_signature_parsing_serialized_examples_gets_each_record_as_b64(tmp_path):
  module = _ParsesExamples()
  tf.saved_model.save(module,
                      str(tmp_path / 'm' / 'tfx' / '1'),
                      signatures={'serving_default': module.serve})
  model = load_site_model(locate(str(tmp_path / 'm'), 'tfx'), 'serving_default')
  records = [example(site_id=[b'tfx'], x=[0.1, 2.5], n=[i]) for i in range(1, 4)]
  outputs = list(tfrecord_records('f', io.BytesIO(_framed(*records)), serialized_field='examples'))
  rows = [json.loads(json.dumps(row)) for _, row in outputs]
  assert [row['site_id'] for row in rows] == ['tfx'] * 3
  assert [base64.b64decode(row['examples']['b64']) for row in rows] == records
  results = model.predict(rows)
  want = module.serve(tf.constant(records))['y'].numpy()
  np.testing.assert_array_equal([r.outputs['y'] for r in results], want)
