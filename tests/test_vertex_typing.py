"""CSV text typed by the signature's dtypes: strict parsing, never a guess, never NaN."""
import math

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from common.failures import RecordFailure
from models.site.signature_inputs import InputSpec
from models.site.signature_inputs import to_array
from models.site.text_features import typed_row

F32 = InputSpec('f', tf.float32, ())
F64 = InputSpec('d', tf.float64, ())
I64 = InputSpec('i', tf.int64, ())
I32 = InputSpec('j', tf.int32, ())
U8 = InputSpec('u', tf.uint8, ())
B = InputSpec('b', tf.bool, ())
S = InputSpec('s', tf.string, ())
S1 = InputSpec('s1', tf.string, (1, ))
F1 = InputSpec('f1', tf.float32, (1, ))
F3 = InputSpec('v', tf.float32, (3, ))
I2 = InputSpec('k', tf.int64, (2, ))
S2 = InputSpec('t', tf.string, (2, ))
M22 = InputSpec('m', tf.float32, (2, 2))
SPECS = {spec.name: spec for spec in (F32, F64, I64, I32, U8, B, S, S1, F1, F3, I2, S2, M22)}


def typed(spec, text):
  return typed_row({spec.name: spec}, {spec.name: text})[spec.name]


def refused(spec, text):
  with pytest.raises(RecordFailure) as e:
    typed(spec, text)
  return e.value.reason, e.value.message


@pytest.mark.parametrize('spec,text,value', [
    (F32, '12.5', 12.5),
    (F32, ' -1e-3 ', -0.001),
    (F32, '.5', 0.5),
    (F32, '+7', 7.0),
    (F64, '3.4e38', 3.4e38),
    (F32, '3.4028235e+38', 3.4028235e38),
    (I64, '12', 12),
    (I64, '-0', 0),
    (I64, '12.0', 12),
    (I64, '1e3', 1000),
    (I64, '9223372036854775807', 2**63 - 1),
    (U8, '255', 255),
    (B, 'True', True),
    (B, 'false', False),
    (S, '007', '007'),
    (S, ' x, "y" ', ' x, "y" '),
    (S1, '[1]', '[1]'),
    (F1, '2.5', 2.5),
    (F1, '[2.5]', [2.5]),
    (F3, '[1, 2.5, -3e2]', [1, 2.5, -300.0]),
    (I2, '[3, 4.0]', [3, 4]),
    (S2, '["a", "b,c"]', ['a', 'b,c']),
    (M22, '[[1, 2], [3, 4]]', [[1, 2], [3, 4]]),
])
def test_text_becomes_the_value_of_the_inputs_dtype(spec, text, value):
  got = typed(spec, text)
  assert got == value and type(got) is type(value)


@pytest.mark.parametrize('spec,text,words', [
    (F32, 'nan', 'not finite'),
    (F32, '-Infinity', 'not finite'),
    (F32, 'inf', 'not finite'),
    (F32, '1e39', 'out of range for float32'),
    (F64, '1e999', 'out of range'),
    (F32, '1,5', 'not a decimal'),
    (F32, '1_000', 'not a decimal'),
    (F32, '١٢', 'not a decimal'),
    (F32, '0x10', 'not a decimal'),
    (F32, 'true', 'not a decimal'),
    (I64, '12.5', 'whole'),
    (I64, '9223372036854775808', 'out of range'),
    (I64, '1e400', 'out of range'),
    (I32, '3000000000', 'out of range for int32'),
    (U8, '-1', 'out of range for uint8'),
    (I64, 'NaN', 'not finite'),
    (I64, 'abc', 'not an integer'),
    (B, '1', 'true or false'),
    (B, 'yes', 'true or false'),
    (F3, '1, 2, 3', 'JSON array'),
    (F3, '[1, NaN, 3]', 'JSON array'),
    (F3, '{"a": 1}', 'JSON array'),
    (F3, '[1, "2", 3]', 'JSON numbers'),
    (F3, '[true, 1, 2]', 'JSON numbers'),
    (I2, '[1, 2.5]', 'whole'),
    (S2, '["a", 1]', 'JSON strings'),
    (F1, '[1', 'JSON array'),
])
def test_text_that_is_not_of_the_dtype_is_a_bad_feature_naming_it(spec, text, words):
  reason, message = refused(spec, text)
  assert reason == 'bad_feature'
  assert words in message and repr(spec.name) in message


@pytest.mark.parametrize('spec', list(SPECS.values()))
def test_an_empty_cell_is_missing_for_every_dtype(spec):
  assert refused(spec, '')[0] == 'missing_feature'
  assert refused(spec, '  ')[0] == 'missing_feature'


def test_fields_that_are_not_inputs_stay_text_and_absent_inputs_stay_absent():
  row = {'site_id': '007', 'f': '1.5', 'note': 'nan'}
  assert typed_row({'f': F32, 'i': I64}, row) == {'site_id': '007', 'f': 1.5, 'note': 'nan'}
  assert row['f'] == '1.5'


def test_array_instances_type_each_cell():
  assert typed(F3, ['1', '2.5', '-3']) == [1.0, 2.5, -3.0]
  assert refused(S2, ['a', ''])[0] == 'missing_feature'
  assert typed(M22, ['[1, 2]', '[3, 4]']) == [[1, 2], [3, 4]]
  assert refused(F3, ['1', 'nan', '2'])[0] == 'bad_feature'


@settings(max_examples=300, deadline=None)
@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_a_float32_written_as_text_reads_back_as_the_same_float32(value):
  for text in (repr(value), str(np.float32(value)), f'{value:.9g}'):
    got = typed(F32, text)
    assert np.float32(got) == np.float32(value)
    assert to_array(F32, {'f': got}).item() == np.float32(value)


@pytest.mark.parametrize(
    'spec',
    [F32, InputSpec('h', tf.float16,
                    ()), InputSpec('bf', tf.bfloat16, ())])
def test_floats_are_refused_exactly_where_the_dtype_overflows(spec):
  info = ml_dtypes.finfo(spec.dtype.as_numpy_dtype)
  edge = float(info.max) + 2.0**(info.maxexp - 1) * float(info.eps) / 2  # max + half an ulp
  below = float(np.nextafter(edge, 0))
  with np.errstate(over='ignore'):
    assert np.isfinite(np.asarray(below).astype(spec.dtype.as_numpy_dtype))
    assert not np.isfinite(np.asarray(edge).astype(spec.dtype.as_numpy_dtype))
  assert typed(spec, repr(below)) == below
  assert typed(spec, repr(-below)) == -below
  assert refused(spec, repr(edge))[0] == 'bad_feature'
  assert refused(spec, repr(-edge))[0] == 'bad_feature'


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=3.0e38, max_value=3.5e38) | st.floats(min_value=6.5e4, max_value=6.6e4))
def test_a_float_is_accepted_iff_the_dtype_holds_it_finite(value):
  for spec in (F32, InputSpec('h', tf.float16, ())):
    with np.errstate(over='ignore'):
      holds = bool(np.isfinite(np.asarray(value).astype(spec.dtype.as_numpy_dtype)))
    try:
      typed(spec, repr(value))
      accepted = True
    except RecordFailure:
      accepted = False
    assert accepted == holds


@settings(max_examples=300, deadline=None)
@given(st.integers(-2**63, 2**63 - 1))
def test_an_int64_written_as_text_reads_back_exactly(value):
  assert typed(I64, str(value)) == value
  assert to_array(I64, {'i': typed(I64, str(value))}).item() == value


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_any_text_is_typed_or_refused_with_a_reason_never_nan(text):
  for spec in (F32, I64, B, F3):
    try:
      value = typed(spec, text)
    except RecordFailure as e:
      assert e.reason in ('bad_feature', 'missing_feature')
      continue
    flat = value if isinstance(value, list) else [value]
    assert all(not (isinstance(v, float) and not math.isfinite(v))
               for v in np.ravel(np.asarray(flat, dtype=object)))
  if text.strip(' \t'):
    assert typed(S, text) == text
  else:
    assert refused(S, text)[0] == 'missing_feature'
