"""The JSON-lines encoding every output goes through: ASCII, one line, strict RFC 8259."""
import datetime
import decimal
import json
import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests_support import strict_json
from transforms import json_lines


def test_lines_are_ascii_and_read_back_to_the_same_text():
  value = {'t': 'café \u2028 \x85 \ud800', 'n': [1, 2.5]}
  line = json_lines.dumps(value)
  assert line.isascii() and len(line.splitlines()) == 1
  assert strict_json(line) == value


def test_values_from_tf_numpy_and_bigquery_are_encoded():
  line = json_lines.dumps({
      'array': np.array([[1.5, 2.0]], dtype=np.float32),
      'scalar': np.int64(3),
      'decimal': decimal.Decimal('0.1'),
      'date': datetime.date(2026, 11, 20),
      'utf8': b'ok',
      'binary': b'\xff'
  })
  assert strict_json(line) == {
      'array': [[1.5, 2.0]],
      'scalar': 3,
      'decimal': 0.1,
      'date': '2026-11-20',
      'utf8': 'ok',
      'binary': {
          'b64': '/w=='
      }
  }


NON_FINITE = [
    float('nan'),
    float('inf'), -float('inf'),
    np.float32('nan'),
    np.array([1.0, np.inf]),
    decimal.Decimal('NaN'),
    decimal.Decimal('-Infinity')
]


@pytest.mark.parametrize('value', NON_FINITE, ids=repr)
def test_non_finite_numbers_are_refused_by_default(value):
  with pytest.raises(ValueError):
    json_lines.dumps({'v': value})
  with pytest.raises(ValueError):
    json_lines.encoder()([value])


def test_non_finite_numbers_as_strings_when_asked():
  value = {
      'a': float('nan'),
      'b': [float('inf'), -float('inf'), 1.5],
      'c': np.array([np.nan], dtype=np.float32),
      'd': np.float64('-inf'),
      'e': decimal.Decimal('NaN'),
      'f': {
          'g': (float('nan'), )
      },
      'h': 'NaN'
  }
  line = json_lines.dumps(value, non_finite=json_lines.AS_STRING)
  assert strict_json(line) == {
      'a': 'NaN',
      'b': ['Infinity', '-Infinity', 1.5],
      'c': ['NaN'],
      'd': '-Infinity',
      'e': 'NaN',
      'f': {
          'g': ['NaN']
      },
      'h': 'NaN'
  }
  # Finite values are written exactly as the strict encoder writes them.
  assert json_lines.dumps({'x': 0.1}, non_finite=json_lines.AS_STRING) == '{"x":0.1}'


def test_the_internal_encoding_keeps_nan_for_pythons_own_reader():
  line = json_lines.dumps({'a': float('nan')}, non_finite=json_lines.PYTHON)
  assert math.isnan(json.loads(line)['a'])
  with pytest.raises(ValueError):
    json_lines.loads_strict(line)


def test_an_unknown_policy_is_refused():
  with pytest.raises(ValueError, match='non_finite'):
    json_lines.encoder(non_finite='null')


@pytest.mark.parametrize(
    'line', ['NaN', '{"a": NaN}', '[Infinity]', '{"a": -Infinity}', '{"a": 1e400}', '{"a": ', ''])
def test_the_strict_reader_refuses_what_strict_parsers_refuse(line):
  with pytest.raises(ValueError):
    json_lines.loads_strict(line)


@pytest.mark.parametrize('line, reason',
                         [('NaN', 'NaN is not JSON'), ('{"a": [Infinity]}', 'Infinity is not JSON'),
                          ('{"a": -Infinity}', '-Infinity is not JSON'),
                          ('{"a": 1e400}', 'number 1e400 is beyond the range of a double'),
                          ('[-1.5e999]', 'number -1.5e999 is beyond the range of a double')])
def test_the_strict_reader_says_why_it_refuses_a_line(line, reason):
  with pytest.raises(ValueError, match='^' + re.escape(reason)):
    json_lines.loads_strict(line)


def test_the_strict_reader_reads_finite_json_as_json_does():
  line = '{"a": 1.7976931348623157e308, "b": -0.0, "c": [1, 2.5e-320, "NaN"], "d": null}'
  assert json_lines.loads_strict(line) == json.loads(line)


def test_one_encoder_serves_many_values_like_dumps():
  encode = json_lines.encoder()
  values = [{'a': 1}, [np.float32(0.5)], 'x']
  assert [encode(v) for v in values] == [json_lines.dumps(v) for v in values]


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                           lambda children: st.lists(children, max_size=4) | st.dictionaries(
                               st.text(max_size=5), children, max_size=4),
                           max_leaves=20)


@given(JSON_VALUES)
def test_any_value_is_one_strict_ascii_line_with_non_finite_as_strings(value):
  line = json_lines.dumps(value, non_finite=json_lines.AS_STRING)
  assert line.isascii() and '\n' not in line
  strict_json(line)
