"""The JSON-lines encoding every output goes through."""
import datetime
import decimal
import json
import math

import numpy as np

from transforms import json_lines


def test_lines_are_ascii_and_read_back_to_the_same_text():
  value = {'t': 'café \u2028 \x85 \ud800', 'n': [1, 2.5]}
  line = json_lines.dumps(value)
  assert line.isascii() and len(line.splitlines()) == 1
  assert json.loads(line) == value


def test_values_from_tf_numpy_and_bigquery_are_encoded():
  line = json_lines.dumps({
      'array': np.array([[1.5, 2.0]], dtype=np.float32), 'scalar': np.int64(3),
      'decimal': decimal.Decimal('0.1'), 'date': datetime.date(2026, 11, 20),
      'utf8': b'ok', 'binary': b'\xff', 'nan': float('nan')})
  back = json.loads(line)
  assert back.pop('array') == [[1.5, 2.0]] and math.isnan(back.pop('nan'))
  assert back == {'scalar': 3, 'decimal': 0.1, 'date': '2026-11-20', 'utf8': 'ok',
                  'binary': {'b64': '/w=='}}


def test_one_encoder_serves_many_values_like_dumps():
  encode = json_lines.encoder()
  values = [{'a': 1}, [np.float32(0.5)], 'x']
  assert [encode(v) for v in values] == [json_lines.dumps(v) for v in values]
