"""Rows -> signature tensors: casting, shapes and per-row isolation."""
import decimal

import numpy as np
import pytest
import tensorflow as tf

from common.failures import RecordFailure
from models.site.signature_inputs import InputSpec
from models.site.signature_inputs import batch_rows
from models.site.signature_inputs import to_array

F3 = InputSpec('x', tf.float32, (3, ))
F1 = InputSpec('t', tf.float32, (1, ))
SCALAR_I = InputSpec('n', tf.int64, ())
STR = InputSpec('s', tf.string, ())


def reason(spec, row):
  with pytest.raises(RecordFailure) as e:
    to_array(spec, row)
  return e.value.reason, e.value.message


def test_list_of_k_numbers_is_cast_to_the_signature_dtype():
  a = to_array(F3, {'x': [1, 2.5, 3]})
  assert a.dtype == np.float32 and a.tolist() == [1.0, 2.5, 3.0]


def test_plain_number_fills_a_width_one_input():
  assert to_array(F1, {'t': 21.5}).tolist() == [21.5]


def test_whole_floats_are_accepted_for_ints_fractions_are_not():
  assert to_array(SCALAR_I, {'n': 4.0}).dtype == np.int64
  assert reason(SCALAR_I, {'n': 4.5})[0] == 'bad_feature'


@pytest.mark.parametrize('row,expected', [
    ({}, ('missing_feature', 'missing')),
    ({
        'x': None
    }, ('missing_feature', 'null')),
    ({
        'x': 'abc'
    }, ('bad_feature', 'float32')),
    ({
        'x': ['1', '2', '3']
    }, ('bad_feature', 'float32')),
    ({
        'x': [True, False, True]
    }, ('bad_feature', 'float32')),
    ({
        'x': [1.0, 2.0]
    }, ('bad_feature', 'shape [2]')),
    ({
        'x': [[1.0], [2.0, 3.0]]
    }, ('bad_feature', 'x')),
    ({
        'x': {
            'a': 1
        }
    }, ('bad_feature', 'float32')),
])
def test_unusable_values_name_the_feature_and_the_problem(row, expected):
  got_reason, message = reason(F3, row)
  assert got_reason == expected[0]
  assert expected[1] in message and "'x'" in message


def test_strings_and_b64_become_bytes():
  assert to_array(STR, {'s': 'héllo'}).item() == 'héllo'.encode()
  assert to_array(STR, {'s': {'b64': 'AAE='}}).item() == b'\x00\x01'
  assert reason(STR, {'s': 3})[0] == 'bad_feature'


def test_bad_rows_are_isolated_and_the_rest_batched_in_order():
  rows = [{'x': [1, 2, 3]}, {'x': 'bad'}, {'x': [4, 5, 6]}, {}]
  batches, failures = batch_rows({'x': F3}, rows)
  assert [(i, e.reason) for i, e in failures] == [(1, 'bad_feature'), (3, 'missing_feature')]
  assert len(batches) == 1
  assert batches[0].row_indices == [0, 2]
  np.testing.assert_array_equal(batches[0].tensors['x'], [[1, 2, 3], [4, 5, 6]])


def test_clean_chunk_takes_the_vectorised_path_with_identical_values():
  rows = [{'x': [i, i + 0.5, -i]} for i in range(50)]
  batches, failures = batch_rows({'x': F3}, rows)
  assert not failures and len(batches) == 1
  expected = np.stack([to_array(F3, r) for r in rows])
  np.testing.assert_array_equal(batches[0].tensors['x'], expected)


def test_unknown_inner_dimension_groups_rows_by_shape():
  spec = InputSpec('v', tf.float32, (None, ))
  rows = [{'v': [1, 2]}, {'v': [1, 2, 3]}, {'v': [4, 5]}]
  batches, failures = batch_rows({'v': spec}, rows)
  assert not failures
  assert sorted(b.row_indices for b in batches) == [[0, 2], [1]]


F32 = InputSpec('a', tf.float32, ())
I64 = InputSpec('b', tf.int64, ())
U8 = InputSpec('u', tf.uint8, ())
B = InputSpec('flag', tf.bool, ())


@pytest.mark.parametrize('spec,value', [
    (F32, True),
    (F32, False),
    (F3, [1.0, True, 2.0]),
    (F32, float('nan')),
    (F32, float('inf')),
    (F32, -float('inf')),
    (F3, [1.0, float('nan'), 2.0]),
    (F32, 1e39),
    (F32, -1e39),
    (F32, 10**400),
    (F32, decimal.Decimal('NaN')),
    (F32, decimal.Decimal('sNaN')),
    (F32, decimal.Decimal('1e400')),
    (I64, 2**70),
    (I64, -2**70),
    (I64, 2**63),
    (I64, 2.0**63),
    (I64, float('nan')),
    (I64, True),
    (I64, decimal.Decimal('2.5')),
    (U8, -1),
    (U8, 256),
    (B, 1),
    (B, 1.0),
    (B, 'true'),
    (STR, 3),
    (STR, 2.5),
    (STR, True),
    (STR, ['a']),
    (STR, 'lone \ud800'),
    (STR, {
        'b64': 'not base64!'
    }),
    (STR, {
        'b64': 'AAE'
    }),
    (STR, {
        'b64': 7
    }),
    (F3, [1.0, None, 2.0]),
    (F3, [[1.0, 2.0, 3.0]]),
    (F3, [1.0, [2.0], 3.0]),
    (F32, [1.0]),
    (F32, {
        'a': 1
    }),
],
                         ids=repr)
def test_values_the_input_cannot_hold_exactly_are_bad_features(spec, value):
  assert reason(spec, {spec.name: value})[0] == 'bad_feature'


@pytest.mark.parametrize('spec,value,expected', [
    (F32, 3.4028234e38, np.float32(3.4028234e38)),
    (F32, 2**70, np.float32(2.0**70)),
    (F32, decimal.Decimal('0.5'), np.float32(0.5)),
    (I64, 2**63 - 1, np.int64(2**63 - 1)),
    (I64, -2**63, np.int64(-2**63)),
    (I64, decimal.Decimal('12'), np.int64(12)),
    (U8, 255, np.uint8(255)),
    (B, True, np.bool_(True)),
    (F1, [2.5], np.float32(2.5)),
])
def test_values_within_the_dtype_are_converted_exactly(spec, value, expected):
  array = to_array(spec, {spec.name: value})
  assert array.dtype == expected.dtype and array.ravel()[0] == expected


def bits(array):
  """Exact identity of a converted value: bytes of numbers, the objects of strings."""
  if not isinstance(array, np.ndarray):  # one element of an object array
    return (array, )
  return tuple(array.ravel().tolist()) if array.dtype == object else (array.dtype, array.tobytes())


@pytest.mark.parametrize('spec,odd,good,odd_reason', [
    (F32, True, 10.0, 'bad_feature'),
    (F32, False, 1, 'bad_feature'),
    (I64, True, 3, 'bad_feature'),
    (F32, 2**70, 1.5, None),
    (I64, 2**70, 1, 'bad_feature'),
    (I64, 4.0, 2, None),
    (F32, float('nan'), 1.0, 'bad_feature'),
    (F32, 1e39, 1.0, 'bad_feature'),
    (STR, 3, 'a', 'bad_feature'),
    (STR, 'lone \ud800', 'a', 'bad_feature'),
    (F3, [1, 2, True], [1.0, 2.0, 3.0], 'bad_feature'),
    (F1, True, [1.0], 'bad_feature'),
    (F1, 2.0, [1.0], None),
    (B, 1, True, 'bad_feature'),
])
def test_a_rows_outcome_does_not_depend_on_its_neighbours(spec, odd, good, odd_reason):
  """The column fast path once turned [True, 10.0] into [1.0, 10.0]."""

  def outcomes(rows):
    batches, failures = batch_rows({spec.name: spec}, rows)
    found = {i: e.reason for i, e in failures}
    for batch in batches:
      for pos, index in enumerate(batch.row_indices):
        found[index] = bits(batch.tensors[spec.name][pos])
    return found

  alone = {
      name: outcomes([{
          spec.name: value
      }])[0]
      for name, value in (('odd', odd), ('good', good))
  }
  together = outcomes([{spec.name: good}, {spec.name: odd}, {spec.name: good}])
  assert together == {0: alone['good'], 1: alone['odd'], 2: alone['good']}
  assert (alone['odd'] if isinstance(alone['odd'], str) else None) == odd_reason
