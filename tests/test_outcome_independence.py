"""A row's outcome is its own: the same alone or in any chunk, and always exactly one.

Property tests over rows of mixed good and bad values (ints, floats, bools,
NaN, infinities, huge ints, strings, nulls, lists of the wrong length,
nested lists, missing keys) fed to a real SavedModel with float32, int64,
string and [None, 2] inputs (:mod:`mixed_input_models`). Every outcome is
also written as its output line and parsed by a strict JSON reader.
"""
import decimal

import pytest
from hypothesis import HealthCheck
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import mixed_input_models
from models.site.site_model import load_site_model
from models.site.layout import ModelLocation
from tests_support import strict_json
from transforms.dead_letters import dead_letter
from transforms.dead_letters import encode_dead_letter
from transforms.site.prediction_output import encode_aiplatform_results
from transforms.site.prediction_output import encode_predictions
from transforms.site.predictions import Prediction
from transforms.site import bigquery_output

ODD_NUMBERS = st.sampled_from([
    True, False,
    float('nan'),
    float('inf'), -float('inf'), 1e39, -1e39, 3.4028235e38, 3.5e38, 2**31, 2**63 - 1, 2**63, -2**63,
    -2**63 - 1, 2**64, 2**70, 10**400, 2.0**63, 0.5, -0.0, mixed_input_models.POLE,
    decimal.Decimal('2'),
    decimal.Decimal('NaN')
])
SCALARS = st.one_of(ODD_NUMBERS, st.integers(), st.floats(), st.text(max_size=3), st.none(),
                    st.fixed_dictionaries({'b64': st.sampled_from(['AAE=', 'not base64', 'AAE'])}))
ODD = st.one_of(SCALARS, st.lists(SCALARS, max_size=3),
                st.lists(st.lists(SCALARS, max_size=2), max_size=2))
SMALL_FLOATS = st.floats(-1e4, 1e4, width=32)

GOOD = {
    'a': st.one_of(SMALL_FLOATS, st.integers(-100, 100)),
    'b': st.integers(-2**40, 2**40),
    's': st.text(max_size=5),
    'v': st.lists(SMALL_FLOATS, min_size=2, max_size=2)
}
GOOD_ROWS = st.fixed_dictionaries(GOOD, optional={'note': st.one_of(st.floats(), st.text())})
MISSING = object()


@st.composite
def one_odd_field(draw):
  """A good row with one field odd, null or missing: where the column paths once differed."""
  row = draw(GOOD_ROWS)
  field = draw(st.sampled_from(sorted(GOOD)))
  value = draw(st.one_of(ODD, st.just(MISSING)))
  if value is MISSING:
    del row[field]
  else:
    row[field] = value
  return row


ROWS = st.one_of(
    GOOD_ROWS, one_odd_field(),
    st.fixed_dictionaries({}, optional={
        name: st.one_of(good, ODD)
        for name, good in GOOD.items()
    }))


@pytest.fixture(scope='module', params=['with_string', 'numbers_only'])
def model(request, tmp_path_factory):
  path = mixed_input_models.save_mixed(str(tmp_path_factory.mktemp('mixed') / 'm'),
                                       with_string=request.param == 'with_string')
  return load_site_model(ModelLocation('mixed', path, None), 'serving_default')


def outcome(result):
  """A row's outcome, comparable exactly: its outputs as JSON text, or its failure."""
  if result.outputs is not None:
    return 'ok', encode_aiplatform_results([Prediction('s', 'f', {}, result.outputs, None)])
  return result.reason, result.message


def assert_written_as_strict_json(rows, results):
  predictions = [
      Prediction('mixed', 'f', rows[r.index], r.outputs, '1') for r in results
      if r.outputs is not None
  ]
  letters = [
      dead_letter('predict', r.reason, r.message, site_id='mixed', source='f', record=rows[r.index])
      for r in results if r.outputs is None
  ]
  if predictions:
    for line in encode_predictions(predictions, 'note').split('\n'):
      strict_json(line)
    for line in encode_aiplatform_results(predictions).split('\n'):
      strict_json(line)
    for row in bigquery_output.prediction_rows(predictions, 'note', 'run'):
      strict_json(row['instance']), strict_json(row['prediction'])
  for letter in letters:
    strict_json(encode_dead_letter(letter))
    strict_json(bigquery_output.dead_letter_row(letter, 'run')['record'])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROWS, min_size=1, max_size=20))
# Found by this test: plain strings next to a row converted on its own (here a base64
# object) were stacked as fixed-width bytes, which drop trailing NULs ('\x00' -> '').
@example(rows=[{
    'a': 0,
    'b': -1380060,
    's': '\u6f8e\x07',
    'v': [-0.0, -7013.4]
}, {
    'a': 0,
    'b': -4656,
    's': '\x00',
    'v': [-9139.6, 414.5]
}, {
    'a': None,
    'v': None,
    's': {
        'b64': 'AAE='
    }
}])
def test_each_row_has_one_outcome_the_same_alone_or_in_a_chunk(model, rows):
  together = model.predict(rows)
  assert [r.index for r in together] == list(range(len(rows)))
  for index, row in enumerate(rows):
    [alone] = model.predict([row])
    assert outcome(together[index]) == outcome(alone), row


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROWS, min_size=1, max_size=20))
def test_every_outcome_is_written_as_strict_json(model, rows):
  assert_written_as_strict_json(rows, model.predict(rows))


@settings(max_examples=100, deadline=None)
@given(good=st.lists(GOOD_ROWS, min_size=1, max_size=10),
       odd=one_odd_field(),
       position=st.integers(0, 10))
def test_one_odd_row_changes_nothing_for_clean_neighbours(model, good, odd, position):
  """Clean chunks take the whole-column path; one odd row must not change their bits."""
  clean = [outcome(r) for r in model.predict(good)]
  rows = list(good)
  rows.insert(min(position, len(rows)), odd)
  mixed = [outcome(r) for r in model.predict(rows)]
  odd_at = min(position, len(good))
  assert mixed[:odd_at] + mixed[odd_at + 1:] == clean
  assert mixed[odd_at] == outcome(model.predict([odd])[0])


def test_bools_for_a_float_input_are_bad_features_in_any_chunk(model):
  """``"temperature_c": true`` was 1.0 next to numbers, bad_feature alone."""
  rows = [{
      'a': True,
      'b': 1,
      's': 'x',
      'v': [1.0, 2.0]
  }, {
      'a': 10.0,
      'b': 1,
      's': 'x',
      'v': [1.0, 2.0]
  }]
  together = model.predict(rows)
  assert together[0].reason == 'bad_feature' and "'a'" in together[0].message
  assert together[0].reason == model.predict(rows[:1])[0].reason
  assert together[1].outputs['ax'] == 31.0


def test_non_finite_outputs_are_dead_letters_naming_the_output(model):
  pole = mixed_input_models.POLE
  rows = [{
      'a': pole,
      'b': 1,
      's': 'x',
      'v': [1.0, 2.0]
  }, {
      'a': 1.0,
      'b': 1,
      's': 'x',
      'v': [1.0, 2.0]
  }, {
      'a': -pole,
      'b': 1,
      's': 'x',
      'v': [1.0, 2.0]
  }]
  first, second, third = model.predict(rows)
  assert (first.outputs, first.reason, third.outputs, third.reason) == (None, 'non_finite_output',
                                                                        None, 'non_finite_output')
  assert "'half' (inf)" in first.message and "'half' (nan)" in third.message
  assert "'ax'" not in first.message
  assert second.outputs['half'] == 0.5


def test_an_unfed_nan_is_echoed_as_a_string_and_the_row_predicted(model):
  row = {'a': 1.0, 'b': 2, 's': 'x', 'v': [1.0, 2.0], 'note': float('nan'), 'k': float('inf')}
  [result] = model.predict([row])
  [line] = encode_predictions([Prediction('mixed', 'f', row, result.outputs, None)],
                              'k').split('\n')
  written = strict_json(line)
  assert written['instance']['note'] == 'NaN' and written['key'] == 'Infinity'
  assert written['prediction']['b2'] == 4
