"""Instance config: fields fed and echoed, array instances for one-tensor signatures, flags."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from common.failures import RecordFailure
from models.site.instance_config import InstanceConfig
from models.site.instance_config import apply_instance_config
from models.site.instance_config import config_from_flags
from models.site.instance_config import flag_problem
from models.site.instance_config import signature_row
from models.site.layout import locate
from models.site.row_feed import feed_rows
from models.site.row_feed import predict_rows
from models.site.site_model import load_site_model
from savedmodel_builders import call_directly
from savedmodel_builders import save_linear
from savedmodel_builders import save_two_in_two_out

ROW = {'site_id': 's1', 'id': 'k-1', 'a': 1.5, 'b': 2, 'c': 'x', 'extra': [1, 2]}


def config(**flags):
  flags.setdefault('included_fields', None)
  flags.setdefault('excluded_fields', None)
  return config_from_flags(site_field='site_id', key_field=flags.pop('key_field', 'id'), **flags)


def test_no_config_feeds_and_echoes_the_row_itself():
  fed, echo = apply_instance_config(ROW, config())
  assert fed is ROW and echo is ROW


def test_included_fields_are_fed_and_echoed_with_the_site_and_key():
  fed, echo = apply_instance_config(ROW, config(included_fields='b,a'))
  assert fed == {'a': 1.5, 'b': 2}
  assert list(echo) == ['site_id', 'id', 'a', 'b']


def test_excluded_fields_are_neither_fed_nor_echoed_but_site_and_key_travel():
  fed, echo = apply_instance_config(ROW, config(excluded_fields='extra,site_id,id'))
  assert fed == {'a': 1.5, 'b': 2, 'c': 'x'}
  assert echo == {'site_id': 's1', 'id': 'k-1', 'a': 1.5, 'b': 2, 'c': 'x'}


def test_array_instances_follow_the_included_order():
  fed, echo = apply_instance_config(ROW, config(included_fields='b, a ,extra',
                                                instance_type='array'))
  assert fed == [2, 1.5, [1, 2]]
  assert echo == {'site_id': 's1', 'id': 'k-1', 'a': 1.5, 'b': 2, 'extra': [1, 2]}
  for row, word in (({'a': 1, 'extra': 2}, 'missing'), ({'a': 1, 'b': None, 'extra': 2}, 'null')):
    with pytest.raises(RecordFailure) as e:
      apply_instance_config(row, config(included_fields='a,b,extra', instance_type='array'))
    assert e.value.reason == 'missing_feature' and "'b'" in e.value.message and word in (
        e.value.message)


_NAMES = st.sampled_from(['site_id', 'id', 'a', 'b', 'c', 'd'])


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_NAMES,
                       st.integers() | st.text(max_size=3)),
       st.lists(_NAMES, unique=True, max_size=4), st.sampled_from(['in', 'ex', 'none']))
def test_applying_to_the_echo_gives_the_same_fed_row_and_echo(row, fields, how):
  cfg = config(included_fields=','.join(fields) if how == 'in' and fields else None,
               excluded_fields=','.join(fields) if how == 'ex' and fields else None)
  fed, echo = apply_instance_config(row, cfg)
  assert apply_instance_config(echo, cfg) == (fed, echo)
  assert all(row[k] == v for k, v in echo.items())
  assert {k for k in ('site_id', 'id') if k in row} <= set(echo)
  if how == 'in' and fields:
    assert set(fed) == set(fields) & set(row)
  if how == 'ex' and fields:
    assert set(fed) == set(row) - set(fields)


@pytest.mark.parametrize('flags,flag,words', [
    ({
        'included_fields': 'a',
        'excluded_fields': 'b'
    }, 'excluded_fields', 'cannot be combined'),
    ({
        'included_fields': 'a,,b'
    }, 'included_fields', 'empty field name'),
    ({
        'excluded_fields': 'a,b,a'
    }, 'excluded_fields', "'a' more than once"),
    ({
        'instance_type': 'array'
    }, 'instance_type', 'need --included_fields'),
    ({
        'instance_type': 'tensor'
    }, 'instance_type', "'tensor' is not one of object, array"),
])
def test_flag_mistakes_name_the_flag(flags, flag, words):
  args = {'included_fields': None, 'excluded_fields': None, 'instance_type': 'object', **flags}
  problem = flag_problem(**args)
  assert problem is not None and problem[0] == flag and words in problem[1]
  with pytest.raises(ValueError, match=f'^--{flag}: '):
    config_from_flags(site_field='site_id', key_field=None, **args)


def test_good_flags_have_no_problem():
  assert flag_problem(included_fields='a,b', excluded_fields=None, instance_type='array') is None
  assert config(excluded_fields='x') == InstanceConfig('site_id', 'id', None, ('x', ), 'object')


@pytest.fixture(scope='module')
def models(tmp_path_factory):
  root = tmp_path_factory.mktemp('models')
  save_linear(str(root / 'one' / '1'), [0.5, -1.0, 2.0], 0.25)  # x: float32[None, 3]
  save_two_in_two_out(str(root / 'two' / '1'), 3.0)  # a: float32, b: int64
  return {
      site: load_site_model(locate(str(root), site), 'serving_default')
      for site in ('one', 'two')
  }


def test_an_array_instance_feeds_a_one_tensor_signature(models):
  cfg = config(included_fields='t0,t1,t2', instance_type='array')
  rows = [{
      'site_id': 'one',
      'id': 'r1',
      't0': 1.0,
      't1': 2.0,
      't2': 3.5,
      'note': 'n'
  }, {
      'site_id': 'one',
      'id': 'r2',
      't0': 1.0,
      't2': 3.5
  }, {
      'site_id': 'one',
      'id': 'r3',
      't0': -4,
      't1': 0.125,
      't2': 8
  }]
  results = predict_rows(models['one'], rows, config=cfg)
  assert [r.reason for r in results] == [None, 'missing_feature', None]
  for row, result in zip(rows, results):
    if result.reason is None:
      want = call_directly(models['one'].location.path, {'x': [row['t0'], row['t1'], row['t2']]})
      np.testing.assert_allclose(result.outputs['y'], want['y'], rtol=1e-6)


def test_array_instances_of_csv_text_are_typed_per_cell(models):
  cfg = config(included_fields='t0,t1,t2', instance_type='array')
  rows = [{
      'site_id': 'one',
      't0': '1',
      't1': '2.5',
      't2': '-3'
  }, {
      'site_id': 'one',
      't0': '1',
      't1': 'nan',
      't2': '-3'
  }]
  results = predict_rows(models['one'], rows, config=cfg, text_values=True)
  assert [r.reason for r in results] == [None, 'bad_feature']
  want = call_directly(models['one'].location.path, {'x': [1.0, 2.5, -3.0]})
  np.testing.assert_allclose(results[0].outputs['y'], want['y'], rtol=1e-6)


def test_an_array_instance_for_a_signature_of_two_inputs_fails_each_row(models):
  cfg = config(included_fields='a,b', instance_type='array')
  results = predict_rows(models['two'], [{'site_id': 'two', 'a': 1.0, 'b': 2}] * 2, config=cfg)
  assert [r.reason for r in results] == ['bad_feature'] * 2
  assert 'takes 2 inputs (a, b)' in results[0].message
  with pytest.raises(RecordFailure):
    signature_row(['a', 'b'], [1, 2])


def test_an_excluded_signature_input_is_a_missing_feature_others_predict(models):
  rows = [{'site_id': 'two', 'a': 1.0, 'b': 2, 'c': 'dropped'}]
  (ok, ) = predict_rows(models['two'], rows, config=config(excluded_fields='c'))
  assert ok.outputs['total'] == pytest.approx(
      call_directly(models['two'].location.path, {
          'a': 1.0,
          'b': 2
      })['total'])
  (missing, ) = predict_rows(models['two'], rows, config=config(excluded_fields='b'))
  assert missing.reason == 'missing_feature' and "'b'" in missing.message


def test_failed_rows_keep_their_chunk_positions(models):
  cfg = config(included_fields='t0,t1,t2', instance_type='array')
  rows = [{'t0': i, 't1': i, 't2': i} if i % 3 else {'t0': i} for i in range(10)]
  results = predict_rows(models['one'], rows, config=cfg)
  assert [r.index for r in results] == list(range(10))
  assert [r.reason is None for r in results] == [bool(i % 3) for i in range(10)]
  fed = feed_rows(models['one'].inputs, rows, config=cfg)
  assert fed.indices == [i for i in range(10) if i % 3]
  assert [i for i, _ in fed.failures] == [0, 3, 6, 9]


def test_untouched_rows_pass_through_feed_rows_as_they_are(models):
  rows = [{'a': 1.0, 'b': 2}]
  fed = feed_rows(models['two'].inputs, rows)
  assert fed.rows[0] is rows[0] and fed.failures == []
