"""The DoFns around RunInference in PredictPerSite, called directly."""
import json

import apache_beam as beam
import pytest
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
from apache_beam.transforms import window

from models.site.row_results import PredictedRows
from models.site.row_results import RowResult
from models.site.handler import ChunkOutcome
from models.site.handler import SiteChunk
from transforms.site.predictions import Prediction
from transforms.site.predictions import PredictionBatch
from transforms.site.predictions import batches_of
from transforms.site.inference import PredictPerSite
from transforms.site.inference import SplitOutcomesFn
from transforms.site.grouping import ChunkBySite
from transforms.site.grouping import CutSiteFn
from transforms.site.grouping import GroupRowsBySite
from transforms.site.grouping import parse_chunk
from transforms.site.rows import pack


def outputs_by_tag(outputs):
  found = {}
  for out in outputs:
    tagged = isinstance(out, beam.pvalue.TaggedOutput)
    tag, value = (out.tag, out.value) if tagged else ('main', out)
    found.setdefault(tag, []).append(value)
  return found


def test_blocks_are_cut_into_chunks_keeping_each_rows_source():
  texts = [json.dumps({'i': i}) for i in range(5)]
  blocks = [pack((('a.jsonl', 2), ('b.jsonl', 1)), texts[:3]), pack((('c.jsonl', 2), ), texts[3:])]
  found = outputs_by_tag(CutSiteFn(rows_per_chunk=2).process(('s', blocks)))
  assert found['stats'] == [(('sites_seen', ), 1)]
  found['main'] = [parse_chunk(cut) for cut in found['main']]
  assert [(c.site_id, c.rows, c.sources) for c in found['main']] == [('s', [{
      'i': 0
  }, {
      'i': 1
  }], ['a.jsonl', 'a.jsonl']), ('s', [{
      'i': 2
  }, {
      'i': 3
  }], ['b.jsonl', 'c.jsonl']), ('s', [{
      'i': 4
  }], ['c.jsonl'])]
  assert [c.num_bytes for c in found['main']
          ] == [len(texts[0]) + len(texts[1]),
                len(texts[2]) + len(texts[3]),
                len(texts[4])]


def _split(chunk, rows, **outcome):
  result = PredictionResult(chunk, ChunkOutcome('3', rows, **outcome))
  return outputs_by_tag(SplitOutcomesFn().process(result))


def test_a_chunks_predictions_travel_as_one_list_and_its_failures_one_by_one():
  chunk = SiteChunk('s', [{'x': 1}, {'x': 'bad'}, {'x': 2}], ['f1', 'f2', 'f3'])
  found = _split(chunk, [
      RowResult(0, {'y': [1.0]}),
      RowResult(1, None, 'bad_feature', 'text'),
      RowResult(2, {'y': [2.0]})
  ],
                 model_loaded=True,
                 model_load_ms=4.2)
  assert found['main'] == [[
      Prediction('s', 'f1', {'x': 1}, {'y': [1.0]}, '3'),
      Prediction('s', 'f3', {'x': 2}, {'y': [2.0]}, '3')
  ]]
  assert [(l['reason'], l['source'], l['record'], l['site_id'])
          for l in found['failed']] == [('bad_feature', 'f2', {
              'x': 'bad'
          }, 's')]
  assert sorted(found['stats']) == [(('model_load_ms_total', ), 4.2), (('models_loaded', ), 1)]


def test_a_chunk_whose_rows_all_failed_gives_no_empty_prediction_list():
  chunk = SiteChunk('gone', [{'x': 1}, {'x': 2}], ['f', 'f'])
  failures = [RowResult(0, None, 'no_model', 'none'), RowResult(1, None, 'no_model', 'none')]
  found = _split(chunk, failures)
  assert 'main' not in found
  assert [l['reason'] for l in found['failed']] == ['no_model', 'no_model']


def test_grouping_refuses_windowed_input_at_construction():
  pipeline = TestPipeline()
  windowed = (pipeline
              | beam.Create([('s', pack((('f', 1), ), ['{}']))])
              | beam.WindowInto(window.FixedWindows(60)))
  with pytest.raises(ValueError, match='global window'):
    _ = windowed | ChunkBySite()
  with pytest.raises(ValueError, match='global window'):
    _ = windowed | 'Records' >> beam.Map(lambda kv: kv) | GroupRowsBySite('site_id')


def test_each_dead_letter_names_the_stage_its_row_failed_in():
  chunk = SiteChunk('s' * 200, [{'x': 1}, {'x': 2}], ['f', 'f'])
  found = _split(chunk, [
      RowResult(0, None, 'bad_site', 'too long for the root', 'key_by_site'),
      RowResult(1, None, 'non_finite_output', "model output is not finite")
  ])
  assert [(l['stage'], l['reason']) for l in found['failed']] == [('key_by_site', 'bad_site'),
                                                                  ('predict', 'non_finite_output')]


def test_predict_per_site_dead_letters_ids_too_long_for_a_gcs_root():
  """No I/O happens for such an id: the root's bucket does not even exist."""
  root = 'gs://no-such-bucket/' + 'p' * 900
  with TestPipeline() as pipeline:
    chunks, _ = (pipeline
                 | beam.Create([('s' * 150, pack((('f', 1), ), ['{"x": 1}']))])
                 | ChunkBySite())
    result = chunks | PredictPerSite(model_root=root)
    letters = result.failed | beam.Map(lambda l: (l['stage'], l['reason'], l['site_id']))
    assert_that(letters, equal_to([('key_by_site', 'bad_site', 's' * 150)]))


def test_prediction_batches_cross_stages_as_one_pickle_not_one_per_row():
  """The default coder pickles a NamedTuple per element; a batch must travel whole."""
  predictions = [Prediction('s', 'f', {'i': i}, {'y': [i / 3]}, '1') for i in range(50)]
  batch = PredictionBatch.of(predictions)
  coder = beam.coders.FastPrimitivesCoder()
  encoded = coder.encode(batch)
  decoded = coder.decode(encoded)
  assert isinstance(decoded, PredictionBatch)
  assert list(decoded) == predictions and decoded == batch
  assert len(encoded) < len(coder.encode(predictions)) / 2


def test_a_batch_reads_as_its_predictions_and_refuses_ragged_columns():
  predictions = [
      Prediction('s', 'a.jsonl', {'i': 1}, {'y': 1.0}, '2', '{"i":1}', '{"y":1.0}'),
      Prediction('s', 'b.jsonl', {'i': 2}, {'y': 2.0}, '2', None, None)
  ]
  batch = PredictionBatch.of(predictions)
  assert len(batch) == 2 and list(batch) == predictions and batch == predictions
  assert batch[1] == predictions[1] and batch[-1] == predictions[1] and batch[:1] == predictions[:1]
  assert list(batches_of(predictions + [predictions[0]._replace(site_id='t')])) == [
      batch, [predictions[0]._replace(site_id='t')]
  ]
  with pytest.raises(ValueError):
    PredictionBatch('s', None, ['f'], [{}, {}], [{}, {}])
  with pytest.raises(ValueError):
    PredictionBatch.of(predictions + [predictions[0]._replace(model_version='3')])


def test_predicted_rows_read_as_their_row_results():
  rows = PredictedRows([0, 1, 2], [{'y': 1}, {'y': 2}, {'y': 3}], ['{"y":1}', '{"y":2}', '{"y":3}'])
  assert list(rows) == [
      RowResult(0, {'y': 1}, outputs_text='{"y":1}'),
      RowResult(1, {'y': 2}, outputs_text='{"y":2}'),
      RowResult(2, {'y': 3}, outputs_text='{"y":3}')
  ]
  assert rows[1] == RowResult(1, {'y': 2}, outputs_text='{"y":2}') and rows[-1].index == 2
  assert rows[1:] == list(rows)[1:] and len(rows) == 3
  assert list(PredictedRows([4], [{'y': 0}])) == [RowResult(4, {'y': 0})]
  with pytest.raises(ValueError):
    PredictedRows([0, 1], [{'y': 1}])


def test_a_chunk_split_from_columns_equals_the_one_split_from_row_results():
  chunk = SiteChunk('s', [{'x': 1}, {'x': 2}], ['a.jsonl', 'b.jsonl'], 20, ['{"x":1}', '{"x":2}'])
  columns = PredictedRows([0, 1], [{'y': 1.5}, {'y': 2.5}], ['{"y":1.5}', '{"y":2.5}'])
  split = [
      list(SplitOutcomesFn().process(PredictionResult(chunk, ChunkOutcome('3', rows))))
      for rows in (columns, list(columns))
  ]
  assert split[0] == split[1]
  [batch] = split[0]
  assert isinstance(batch, PredictionBatch) and batch.outputs_texts == ['{"y":1.5}', '{"y":2.5}']
  assert list(batch) == [
      Prediction('s', 'a.jsonl', {'x': 1}, {'y': 1.5}, '3', '{"x":1}', '{"y":1.5}'),
      Prediction('s', 'b.jsonl', {'x': 2}, {'y': 2.5}, '3', '{"x":2}', '{"y":2.5}')
  ]
