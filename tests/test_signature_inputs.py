"""Rows -> signature tensors: casting, shapes and per-row isolation."""
import numpy as np
import pytest
import tensorflow as tf

from models.site.signature_inputs import InputSpec
from models.site.signature_inputs import batch_rows
from models.site.signature_inputs import to_array
from models.site.errors import SiteModelError

F3 = InputSpec('x', tf.float32, (3,))
F1 = InputSpec('t', tf.float32, (1,))
SCALAR_I = InputSpec('n', tf.int64, ())
STR = InputSpec('s', tf.string, ())


def reason(spec, row):
  with pytest.raises(SiteModelError) as e:
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
    ({'x': None}, ('missing_feature', 'null')),
    ({'x': 'abc'}, ('bad_feature', 'float32')),
    ({'x': ['1', '2', '3']}, ('bad_feature', 'float32')),
    ({'x': [True, False, True]}, ('bad_feature', 'float32')),
    ({'x': [1.0, 2.0]}, ('bad_feature', 'shape [2]')),
    ({'x': [[1.0], [2.0, 3.0]]}, ('bad_feature', 'x')),
    ({'x': {'a': 1}}, ('bad_feature', 'float32')),
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
  spec = InputSpec('v', tf.float32, (None,))
  rows = [{'v': [1, 2]}, {'v': [1, 2, 3]}, {'v': [4, 5]}]
  batches, failures = batch_rows({'v': spec}, rows)
  assert not failures
  assert sorted(b.row_indices for b in batches) == [[0, 2], [1]]
