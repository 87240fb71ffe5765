"""Unit tests of the writers' pure functions: prediction lines (ours and AI Platform's),
dead letters, BigQuery rows of every layout. Every encoded value is strict JSON that
parses back to the value it came from (non-finite floats as their strings)."""
import ast
import base64
import math

import numpy as np
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from models.site.output_text import rows_text
from tests_support import strict_json
from transforms import json_lines
from transforms.dead_letters import encode_dead_letter
from transforms.site import bigquery_output as bq
from transforms.site import prediction_output as po
from transforms.site.predictions import Prediction


def expected_json(value):
  """What a strict reader gets back for ``value`` (the writers' documented conversions)."""
  if isinstance(value, float) and not math.isfinite(value):
    return 'NaN' if math.isnan(value) else ('Infinity' if value > 0 else '-Infinity')
  if isinstance(value, np.ndarray):
    return expected_json(value.tolist())
  if isinstance(value, np.generic):
    return expected_json(value.item())
  if isinstance(value, bytes):
    try:
      return value.decode('utf-8')
    except UnicodeDecodeError:
      return {'b64': base64.b64encode(value).decode('ascii')}
  if isinstance(value, dict):
    return {k: expected_json(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [expected_json(v) for v in value]
  return value


_TEXT = st.text(alphabet=st.characters(blacklist_categories=('Cs',)), max_size=12) | \
    st.sampled_from(['\u2028', '\x85', 'caf\u00e9', '\ud800', '"quoted"\n'])
_SCALARS = (st.none() | st.booleans() | st.integers(-2**63, 2**63) | _TEXT
            | st.floats(allow_nan=True, allow_infinity=True)
            | st.binary(max_size=8)
            | st.floats(width=32).map(np.float32) | st.integers(-5, 5).map(np.int64))
_VALUES = st.recursive(_SCALARS,
                       lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(_TEXT, inner, max_size=3),
                       max_leaves=10)
_INSTANCES = st.dictionaries(_TEXT, _VALUES, max_size=5)
_FINITE_OUTPUTS = st.dictionaries(
    _TEXT,
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1,
             max_size=3).map(lambda v: np.asarray(v, np.float32)) | st.binary(max_size=6),
    min_size=1,
    max_size=3)
_PREDICTIONS = st.builds(Prediction,
                         site_id=_TEXT,
                         source=_TEXT,
                         instance=_INSTANCES,
                         outputs=_FINITE_OUTPUTS,
                         model_version=st.none() | st.sampled_from(['1', '10', '007']),
                         instance_text=st.none(),
                         outputs_text=st.none())


def _prediction(instance=None, outputs=None, version='3'):
  return Prediction('site-a', 'in.jsonl', instance or {
      'site_id': 'site-a',
      'rid': 'r1'
  }, outputs or {'y': np.asarray([1.5], np.float32)}, version)


def assert_key_text(text, key):
  """A STRING key column: text as it is, a non-finite float as its text, else its JSON."""
  if key is None or isinstance(key, str):
    assert text == key
  elif isinstance(key, float) and not math.isfinite(key):
    assert text == expected_json(key)
  else:
    assert strict_json(text) == expected_json(key)


# --- JSON-lines predictions ---------------------------------------------------------------


def test_prediction_line_fields_and_key():
  p = _prediction()
  assert list(po.prediction_line(
      p, 'rid')) == ['site_id', 'key', 'model_version', 'instance', 'prediction']
  assert po.prediction_line(p, 'rid')['key'] == 'r1'
  assert 'key' not in po.prediction_line(p, None)
  assert 'key' not in po.prediction_line(p, 'absent')
  unversioned = po.prediction_line(_prediction(version=None), None)
  assert unversioned['model_version'] is None


@settings(max_examples=150, deadline=None)
@given(batch=st.lists(_PREDICTIONS, min_size=1, max_size=4), use_key=st.booleans())
def test_prediction_lines_are_strict_json_of_the_same_values(batch, use_key):
  key_field = next(iter(batch[0].instance), None) if use_key else None
  text = po.encode_predictions(batch, key_field)
  lines = text.split('\n')
  assert len(lines) == len(batch)
  for line, p in zip(lines, batch):
    assert line.isascii()
    got = strict_json(line)
    assert got['site_id'] == p.site_id and got['model_version'] == p.model_version
    assert got['instance'] == expected_json(p.instance)
    assert got['prediction'] == expected_json(p.outputs)
    if key_field and key_field in p.instance:
      assert got['key'] == expected_json(p.instance[key_field])
    else:
      assert 'key' not in got
  # The same lines, encoded alone or in a batch.
  assert lines == [po.encode_predictions([p], key_field) for p in batch]
  # The same lines where the outputs' text came with them (numeric outputs).
  with_texts = [p._replace(outputs_text=_outputs_text(p.outputs)) for p in batch]
  assert po.encode_predictions(with_texts, key_field) == text
  assert po.encode_aiplatform_results(with_texts) == po.encode_aiplatform_results(batch)


def _outputs_text(outputs):
  """The text the model step makes for one row's numeric outputs (None for others)."""
  [text] = rows_text({
      name: np.asarray(value)[np.newaxis]
      for name, value in outputs.items()
  }) or [None]
  return text


@settings(max_examples=80, deadline=None)
@given(batch=st.lists(_PREDICTIONS, min_size=1, max_size=4))
def test_aiplatform_results_are_the_outputs_alone(batch):
  lines = po.encode_aiplatform_results(batch).split('\n')
  assert [strict_json(l) for l in lines] == [expected_json(p.outputs) for p in batch]


def test_error_stats_lines_are_the_legacy_tuples():
  letter = {'reason': 'bad_json', 'message': "line 1: can't parse"}
  key = po.error_stats_key(letter)
  assert key == "bad_json: line 1: can't parse"
  assert ast.literal_eval(po.encode_error_stat((key, 3))) == (key, 3)


# --- dead letters ---------------------------------------------------------------------------

_LETTERS = st.fixed_dictionaries({
    'stage': st.sampled_from(['read', 'key_by_site', 'predict']),
    'reason': st.sampled_from([
        'bad_json', 'no_model', 'bad_feature', 'model_load_failed', 'non_finite_output',
        'line_too_long'
    ]),
    'message': _TEXT,
    'site_id': st.none() | _TEXT | st.integers(0, 99),
    'source': st.none() | _TEXT,
    'record': st.none() | _TEXT | _INSTANCES
})


@settings(max_examples=150, deadline=None)
@given(letter=_LETTERS)
def test_dead_letters_are_strict_json_of_the_same_values(letter):
  line = encode_dead_letter(letter)
  assert line.isascii() and '\n' not in line
  assert strict_json(line) == expected_json(letter)


@settings(max_examples=150, deadline=None)
@given(letter=_LETTERS, key_field=st.none() | st.just('rid'))
def test_dead_letter_rows_of_both_layouts(letter, key_field):
  row = bq.dead_letter_row(letter, 'run-1')
  assert set(row) == {f['name'] for f in bq.DEAD_LETTER_SCHEMA['fields']}
  record = letter['record']
  if record is None or isinstance(record, str):
    assert row['record'] == record
  else:
    assert strict_json(row['record']) == expected_json(record)
  vertex = bq.vertex_error_row(letter, key_field, 'run-1')
  assert set(vertex) == {f['name'] for f in bq.VERTEX_ERROR_SCHEMA['fields']}
  assert vertex['instance'] is None if record is None else (strict_json(vertex['instance'])
                                                            == expected_json(record))
  assert vertex['errors'] == {'code': bq.error_code(letter['reason']), 'message': letter['message']}
  key = record.get(key_field) if key_field and isinstance(record, dict) else None
  assert_key_text(vertex['key'], key)
  assert vertex['site_id'] is None or isinstance(vertex['site_id'], str)


def test_error_codes_of_the_vertex_layout():
  assert bq.error_code('no_model') == bq.NOT_FOUND == 5
  for reason in ('model_load_failed', 'inference_failed', 'non_finite_output'):
    assert bq.error_code(reason) == bq.INTERNAL == 13
  for reason in ('bad_json', 'bad_feature', 'missing_site', 'line_too_long', 'anything_else'):
    assert bq.error_code(reason) == bq.INVALID_ARGUMENT == 3


# --- BigQuery prediction rows ---------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(p=_PREDICTIONS, use_key=st.booleans())
def test_prediction_rows_hold_the_line_values(p, use_key):
  key_field = next(iter(p.instance), None) if use_key else None
  row = bq.prediction_row(p, key_field, 'run-1')
  assert set(row) == {f['name'] for f in bq.PREDICTION_SCHEMA['fields']}
  assert set(row) == {f['name'] for f in bq.VERTEX_PREDICTION_SCHEMA['fields']}
  line = strict_json(po.encode_predictions([p], key_field))
  assert strict_json(row['instance']) == line['instance']
  assert strict_json(row['prediction']) == line['prediction']
  assert row['model_version'] == p.model_version and row['run_id'] == 'run-1'
  assert_key_text(row['key'], p.instance.get(key_field) if key_field else None)
  # The same row where the outputs' text came with them (numeric outputs).
  with_text = bq.prediction_row(p._replace(outputs_text=_outputs_text(p.outputs)), key_field,
                                'run-1')
  assert with_text['prediction'] == row['prediction']


def test_rejected_rows_become_dead_letters():
  row = {'site_id': 's', 'instance': '{}'}
  letter = bq.rejected_row('p:d.t', ('p:d.t', row, [{'reason': 'invalid', 'message': 'x'}]))
  assert letter['stage'] == 'write_bigquery' and letter['reason'] == 'bigquery_rejected'
  assert letter['site_id'] == 's' and letter['source'] == 'p:d.t' and letter['record'] == row
  assert strict_json(letter['message']) == [{'reason': 'invalid', 'message': 'x'}]
  assert strict_json(encode_dead_letter(letter))['record'] == row
  assert bq.rejected_row('p:d.t', (None, row, []))['source'] == 'p:d.t'


def test_site_outcome_rows():
  line = {
      'site_id': 'a',
      'status': 'partial',
      'rows': 3,
      'predicted': 2,
      'failed': 1,
      'failed_fraction': 0.333333,
      'failed_by_reason': {
          'no_model': 0,
          'bad_feature': 1
      },
      'model_versions': ['2'],
      'models_loaded': 1,
      'models_fast_path': 0,
      'model_load_ms': 12.5
  }
  row = bq.site_outcome_row(line, 'run-1')
  assert set(row) == {f['name'] for f in bq.SITE_OUTCOME_SCHEMA['fields']}
  assert row['failed_by_reason'] == [{
      'reason': 'bad_feature',
      'count': 1
  }, {
      'reason': 'no_model',
      'count': 0
  }]
  assert line['failed_by_reason'] == {'no_model': 0, 'bad_feature': 1}, 'input left as it was'
  assert {
      k: row[k]
      for k in line if k != 'failed_by_reason'
  } == {
      k: v
      for k, v in line.items() if k != 'failed_by_reason'
  }


def test_table_and_dataset_specs():
  for spec in ('p-1234:d', 'd', 'example.com:p-1234:d'):
    assert bq.is_dataset(spec), spec
  for spec in ('p-1234:d.t', 'd.t', 'example.com:p-1234:d.t'):
    assert not bq.is_dataset(spec), spec
  assert bq.vertex_tables('p-1234:d') == {
      'predictions': 'p-1234:d.predictions',
      'errors': 'p-1234:d.errors'
  }


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.one_of(st.text(), st.sampled_from(['\ud800', 'caf\u00e9', '\u2028', '"\\']),
                               st.integers(), st.floats(), st.none(), st.booleans(),
                               st.lists(st.integers(), max_size=2)),
                     max_size=5),
       absent=st.lists(st.booleans(), max_size=5))
def test_key_texts_are_what_the_encoder_writes_for_each_key(keys, absent):
  encode = json_lines.encoder(non_finite=json_lines.AS_STRING)
  instances = [{} if gone else {'rid': key} for key, gone in zip(keys, absent + [False] * 5)]
  expected = [',"key":' + encode(i['rid']) if 'rid' in i else '' for i in instances]
  assert po._key_texts(instances, 'rid', encode) == expected  # pylint: disable=protected-access
