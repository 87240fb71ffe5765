"""The same instances as JSON-lines, CSV (csv, pandas) and TFRecord: same rows, same predictions.

Each format goes the job's way up to the model: read, packed per site
(``PackJsonLinesBySiteFn`` / ``PackBySiteFn``), unpacked and parsed as
``ChunkSite`` does, then fed (``row_feed.predict_rows``: CSV rows typed by
the signature) to a SavedModel exported with ``tf.saved_model.save``; the
predictions are compared with calling the loaded signature directly.
"""
import csv
import io
import json

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to

from models.site.layout import locate
from models.site.row_feed import predict_rows
from models.site.site_model import load_site_model
from models.site.text_features import typed_row
from transforms.dead_letters import FAILED
from transforms.site.csv_rows import csv_records
from transforms.site.inference import PredictPerSite
from transforms.site.grouping import GroupRowsBySite
from transforms.site.rows import PackBySiteFn
from transforms.site.rows import PackJsonLinesBySiteFn
from transforms.site.rows import unpack
from transforms.site.tfrecord_rows import ReadTfRecordRows
from transforms.site.tfrecord_rows import tfrecord_records

FIELDS = ('site_id', 'temp', 'count', 'label', 'pair')


class _Mixed(tf.Module):
  """float32, int64, string and float32[2] inputs -> a score and a label hash."""

  def __init__(self):
    super().__init__()
    self.w = tf.Variable([0.25, -2.0])

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.float32, name='temp'),
      tf.TensorSpec([None], tf.int64, name='count'),
      tf.TensorSpec([None], tf.string, name='label'),
      tf.TensorSpec([None, 2], tf.float32, name='pair')
  ])
  def serve(self, temp, count, label, pair):
    length = tf.cast(tf.strings.length(label, unit='UTF8_CHAR'), tf.float32)
    return {
        'score': 1.5 * temp + tf.cast(count % 1000, tf.float32) + length +
        tf.linalg.matvec(pair, self.w),
        'bucket': tf.strings.to_hash_bucket_fast(label, 1 << 20),
        'count_echo': count
    }


@pytest.fixture(scope='module')
def site_model(tmp_path_factory):
  root = tmp_path_factory.mktemp('models')
  module = _Mixed()
  tf.saved_model.save(module,
                      str(root / 'plant-7' / '1'),
                      signatures={'serving_default': module.serve})
  return load_site_model(locate(str(root), 'plant-7'), 'serving_default')


def instances():
  rng = np.random.default_rng(7)
  labels = [
      '007', 'a,b', 'say "hi"', 'two\nlines', 'crlf\r\nend', 'ünïcødé ✓', ' padded ', '[1, 2]',
      'nan', 'x' * 50
  ]
  rows = []
  for i, label in enumerate(labels):
    # float32 values (TFRecord stores float32), written as the doubles holding them.
    temp, a, b = (float(v) for v in rng.normal(scale=100, size=3).astype(np.float32))
    rows.append({
        'site_id': 'plant-7',
        'temp': temp,
        'count': int(rng.integers(-2**62, 2**62)),
        'label': label,
        'pair': [a, b]
    })
  # Extremes that survive every format exactly; the model squares `pair`, so the
  # large one stays below float32's sqrt(max) and its outputs are finite.
  rows[0]['temp'], rows[1]['pair'] = 0.5, [float(np.float32(1e-45)), float(np.float32(1.7e19))]
  return rows


def unpacked(dofn, elements):
  """Rows as the job's ChunkSite sees them: packed, unpacked, parsed."""
  dofn.setup()
  dofn.start_bundle()
  outputs = [out for element in elements for out in dofn.process(element)]
  outputs += [windowed.value for windowed in dofn.finish_bundle()]
  letters = [out.value for out in outputs if isinstance(out, beam.pvalue.TaggedOutput)]
  assert letters == []
  return [json.loads(text) for _, block in outputs for _, text in unpack(block)]


def records(outputs):
  outputs = list(outputs)
  assert not [out for out in outputs if isinstance(out, beam.pvalue.TaggedOutput)]
  return outputs


def as_jsonl(rows) -> bytes:
  return b''.join(json.dumps(row).encode() + b'\n' for row in rows)


def as_csv(rows) -> bytes:
  out = io.StringIO(newline='')
  writer = csv.writer(out, lineterminator='\r\n')
  writer.writerow(FIELDS)
  for row in rows:
    writer.writerow([
        json.dumps(row[f]) if f == 'pair' else repr(row[f]) if f == 'temp' else row[f]
        for f in FIELDS
    ])
  return ('\ufeff' + out.getvalue()).encode()


def as_pandas_csv(rows) -> bytes:
  frame = pd.DataFrame(rows)
  frame['pair'] = frame['pair'].map(json.dumps)
  # pandas writes floats as their repr: the doubles come back exactly.
  return frame.to_csv(index=False).encode()


def as_examples(rows):
  """Each row as a serialized tf.train.Example."""
  serialized = []
  for row in rows:
    feature = {
        'site_id': tf.train.Feature(bytes_list=tf.train.BytesList(value=[row['site_id'].encode()])),
        'temp': tf.train.Feature(float_list=tf.train.FloatList(value=[row['temp']])),
        'count': tf.train.Feature(int64_list=tf.train.Int64List(value=[row['count']])),
        'label': tf.train.Feature(bytes_list=tf.train.BytesList(value=[row['label'].encode()])),
        'pair': tf.train.Feature(float_list=tf.train.FloatList(value=row['pair'])),
    }
    serialized.append(
        tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
  return serialized


def write_tfrecord(tmp_path, rows) -> bytes:
  """The rows written by TF's own writer; the file's bytes."""
  path = str(tmp_path / 'rows.tfrecord')
  with tf.io.TFRecordWriter(path) as writer:
    for record in as_examples(rows):
      writer.write(record)
  with open(path, 'rb') as f:
    return f.read()


def rows_by_format(tmp_path):
  rows = instances()
  jsonl = unpacked(PackJsonLinesBySiteFn('site_id'),
                   [('in.jsonl', line) for line in as_jsonl(rows).splitlines()])
  from_csv = unpacked(PackBySiteFn('site_id'),
                      records(csv_records('in.csv', io.BytesIO(as_csv(rows)))))
  from_pandas = unpacked(PackBySiteFn('site_id'),
                         records(csv_records('p.csv', io.BytesIO(as_pandas_csv(rows)))))
  tfrecord = unpacked(
      PackBySiteFn('site_id'),
      records(tfrecord_records('in.tfrecord', io.BytesIO(write_tfrecord(tmp_path, rows)))))
  return rows, {'jsonl': jsonl, 'csv': from_csv, 'pandas': from_pandas, 'tfrecord': tfrecord}


def test_every_format_gives_the_same_rows_once_csv_is_typed(tmp_path, site_model):
  rows, found = rows_by_format(tmp_path)
  assert found['jsonl'] == rows
  for name in ('csv', 'pandas'):
    assert all(isinstance(v, str) for row in found[name] for v in row.values())
    assert [typed_row(site_model.inputs, row) for row in found[name]] == rows, name
  assert [{k: row[k] for k in FIELDS} for row in found['tfrecord']] == rows


def direct(site_model, rows):
  """The signature called on the rows as arrays, without any of the job's code."""
  outputs = site_model.signature(temp=tf.constant([r['temp'] for r in rows], tf.float32),
                                 count=tf.constant([r['count'] for r in rows], tf.int64),
                                 label=tf.constant([r['label'].encode() for r in rows]),
                                 pair=tf.constant([r['pair'] for r in rows], tf.float32))
  return {name: value.numpy() for name, value in outputs.items()}


def test_every_format_predicts_what_the_model_does_when_called_directly(tmp_path, site_model):
  rows, found = rows_by_format(tmp_path)
  want = direct(site_model, rows)
  for name, got_rows in found.items():
    results = predict_rows(site_model, got_rows, text_values=name in ('csv', 'pandas'))
    assert [r.reason for r in results] == [None] * len(rows), name
    for key, column in want.items():
      np.testing.assert_array_equal(np.array([r.outputs[key] for r in results]),
                                    column,
                                    err_msg=f'{name} {key}')


def test_nan_cells_from_pandas_are_missing_or_bad_features_never_zero(site_model):
  frame = pd.DataFrame({
      'site_id': ['plant-7'] * 4,
      'temp': [1.5, np.nan, 2.5, 3.5],
      'count': pd.array([1, 2, None, 4], dtype='Int64'),
      'label': ['a', 'b', 'c', None],
      'pair': ['[1, 2]'] * 4
  })
  for na_rep, reason in (('', 'missing_feature'), ('NaN', 'bad_feature')):
    text = frame.to_csv(index=False, na_rep=na_rep).encode()
    rows = [row for _, row in records(csv_records('f.csv', io.BytesIO(text)))]
    results = predict_rows(site_model, rows, text_values=True)
    assert [r.reason for r in results
            ] == [None, reason, reason, 'missing_feature' if na_rep == '' else None]
    assert results[0].outputs['score'] == pytest.approx(
        direct(site_model, [{
            'temp': 1.5,
            'count': 1,
            'label': 'a',
            'pair': [1, 2]
        }])['score'][0])


def test_text_rows_fed_untyped_are_refused_not_guessed(site_model):
  row = {'site_id': 'plant-7', 'temp': '1.5', 'count': '2', 'label': 'x', 'pair': '[1, 2]'}
  (result, ) = predict_rows(site_model, [row])
  assert result.reason == 'bad_feature'
  (result, ) = predict_rows(site_model, [row], text_values=True)
  assert result.reason is None


def test_tfrecord_rows_go_through_the_jobs_prediction_unchanged(tmp_path, site_model):
  """TFRecord rows are typed already: reader -> PackBySiteFn -> PredictPerSite works as is."""
  rows = instances()
  (tmp_path / 'in.tfrecord').write_bytes(write_tfrecord(tmp_path, rows))
  model_root = site_model.location.path.rsplit('/plant-7/', 1)[0]
  want = direct(site_model, rows)
  expected = [(row['label'], float(score), int(bucket))
              for row, score, bucket in zip(rows, want['score'], want['bucket'])]
  with TestPipeline(runner='FnApiRunner') as p:
    read = p | ReadTfRecordRows(str(tmp_path / 'in.tfrecord'))
    grouped = read.rows | GroupRowsBySite('site_id')
    result = grouped.chunks | PredictPerSite(model_root=model_root)
    got = result.prediction_batches | beam.FlatMap(lambda batch: [(p.instance['label'], p.outputs[
        'score'], p.outputs['bucket']) for p in batch])
    assert_that(got, equal_to(expected), label='predictions')
    assert_that((read[FAILED], grouped.failed, result.failed) | beam.Flatten(),
                equal_to([]),
                label='no_failures')
