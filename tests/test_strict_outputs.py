"""Every output line the jobs write is strict RFC 8259 JSON, NaN in the input or not."""
import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

import mixed_input_models
from beam_jobs import site_predictions
from tests_support import read_jsonl
from tests_support import strict_json
from transforms.site import bigquery_output
from transforms.detection import objects as detection
from transforms.dead_letters import WriteDeadLetters
from transforms.dead_letters import dead_letter
from transforms.site.prediction_output import AIPLATFORM
from transforms.site.prediction_output import WritePredictions
from transforms.site.predictions import Prediction
from transforms.site.rows import PackBySiteFn
from test_site_rows import rows_by_site
from test_site_rows import run_bundle

NAN, INF = float('nan'), float('inf')
ROW = {'site_id': 's', 'x': [1.0], 'note': NAN, 'hi': INF, 'lo': -INF, 'deep': [{'v': NAN}]}
ECHOED = {
    'site_id': 's',
    'x': [1.0],
    'note': 'NaN',
    'hi': 'Infinity',
    'lo': '-Infinity',
    'deep': [{
        'v': 'NaN'
    }]
}


def test_writers_write_non_finite_record_values_as_strings(tmp_path):
  letter = dead_letter('predict', 'bad_feature', 'm', site_id='s', source='f', record=ROW)
  batch = [Prediction('s', 'f', ROW, {'y': [0.5]}, '1')]
  with TestPipeline() as p:
    _ = p | 'Letters' >> beam.Create([letter]) | WriteDeadLetters(str(tmp_path / 'out'))
    batches = p | 'Batches' >> beam.Create([batch])
    _ = batches | 'Jsonl' >> WritePredictions(str(tmp_path / 'out'), key_field='note')
    _ = batches | 'Ai' >> WritePredictions(str(tmp_path / 'ai'), output_format=AIPLATFORM)
    _ = (p | 'Detections' >> beam.Create([{
        'image': 'a.jpg',
        'detections': []
    }])
         | detection.WriteDetections(str(tmp_path / 'out')))
  [written_letter] = read_jsonl(tmp_path / 'out' / 'errors')
  assert written_letter['record'] == ECHOED
  [line] = read_jsonl(tmp_path / 'out' / 'predictions')
  assert line == {
      'site_id': 's',
      'key': 'NaN',
      'model_version': '1',
      'instance': ECHOED,
      'prediction': {
          'y': [0.5]
      }
  }
  assert read_jsonl(tmp_path / 'ai') == [{'y': [0.5]}]
  assert read_jsonl(tmp_path / 'out' / 'detections') == [{'image': 'a.jpg', 'detections': []}]


def test_bigquery_rows_hold_strict_json_text():
  [row] = bigquery_output.prediction_rows([Prediction('s', 'f', ROW, {'y': 1.0}, None)], 'hi', 'r')
  assert strict_json(row['instance']) == ECHOED and row['key'] == 'Infinity'
  letter = bigquery_output.dead_letter_row(dead_letter('parse', 'bad_value', 'm', record=ROW), 'r')
  assert strict_json(letter['record']) == ECHOED
  rejected = bigquery_output.rejected_row('d.t', ('d.t', {'site_id': 's'}, [{'v': NAN}]))
  strict_json(rejected['message'])


def test_a_bigquery_row_with_nan_is_packed_not_refused():
  """FLOAT64 columns hold NaN: the row travels to its model (its inputs decide)."""
  blocks, letters = run_bundle(PackBySiteFn('site_id'), [('bigquery:d.t', dict(ROW))])
  assert not letters
  [(source, row)] = rows_by_site(blocks)['s']
  assert source == 'bigquery:d.t' and json.dumps(row) == json.dumps(ROW)


@pytest.mark.e2e
def test_a_job_over_nan_inputs_and_non_finite_outputs_writes_only_strict_json(tmp_path):
  models = tmp_path / 'models'
  model_dir = mixed_input_models.save_mixed(str(models / 'm'))
  base = '"site_id": "m", "b": 2, "s": "x", "v": [1, 2]'
  lines = {
      'ok': '{%s, "rid": "ok", "a": 1.5, "note": NaN, "extra": [Infinity, -Infinity]}' % base,
      'nan': '{%s, "rid": "nan", "a": NaN}' % base,
      'inf': '{%s, "rid": "inf", "a": Infinity}' % base,
      'ninf': '{%s, "rid": "ninf", "a": -Infinity}' % base,
      'huge': '{%s, "rid": "huge", "a": 1e39}' % base,
      'overflow': '{%s, "rid": "overflow", "a": 1e400}' % base,
      'bool': '{%s, "rid": "bool", "a": true}' % base,
      'pole': '{%s, "rid": "pole", "a": %r}' % (base, mixed_input_models.POLE),
      'nanout': '{%s, "rid": "nanout", "a": %r}' % (base, -mixed_input_models.POLE),
      'vnan': '{"site_id": "m", "rid": "vnan", "a": 1, "b": 2, "s": "x", "v": [1, NaN]}',
      'bigint': '{"site_id": "m", "rid": "bigint", "a": 1, "b": %d, "s": "x", "v": [1, 2]}' % 2**70,
      'numstr': '{"site_id": "m", "rid": "numstr", "a": 1, "b": 2, "s": 5, "v": [1, 2]}',
  }
  (tmp_path / 'in.jsonl').write_text('\n'.join(lines.values()) + '\n')
  out = tmp_path / 'out'
  site_predictions.run([
      f'--input={tmp_path}/in.jsonl', f'--model_root={models}', f'--output={out}',
      '--key_field=rid', '--max_failed_fraction=1'
  ])
  [line] = read_jsonl(out / 'predictions')
  assert line['key'] == 'ok' and line['instance']['note'] == 'NaN'
  assert line['instance']['extra'] == ['Infinity', '-Infinity']
  assert line['prediction']['ax'] == 5.5 and model_dir
  reasons = {l['record']['rid']: l['reason'] for l in read_jsonl(out / 'errors')}
  assert reasons == {
      'nan': 'bad_feature',
      'inf': 'bad_feature',
      'ninf': 'bad_feature',
      'huge': 'bad_feature',
      'overflow': 'bad_feature',
      'bool': 'bad_feature',
      'pole': 'non_finite_output',
      'nanout': 'non_finite_output',
      'vnan': 'bad_feature',
      'bigint': 'bad_feature',
      'numstr': 'bad_feature'
  }
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['reconciled'] is True and summary['failed']['non_finite_output'] == 2
