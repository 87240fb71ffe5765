"""The outputs' JSON made a column at a time is the text the per-row encoder writes.

Property tests: arrays of every numeric dtype a signature serves, one value
or a flat list per row, one to three outputs with any names; the text of
each row must be byte for byte what ``json_lines`` writes for that row's
``{name: value}`` dict, and parse strictly back to the row's values. What
the column path does not cover (non-finite values, strings, booleans, 3-D
outputs) must return None, never a different text. A real SavedModel's
predictions carry the text through to the written line.
"""
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
import tensorflow as tf

from models.site.layout import ModelLocation
from models.site.output_text import rows_text
from models.site.site_model import load_site_model
from tests_support import strict_json
from transforms import json_lines

_DTYPES = st.sampled_from(
    ['float16', 'float32', 'float64', 'int8', 'int32', 'int64', 'uint8', 'uint64'])
_NAMES = st.text(min_size=1, max_size=8) | st.sampled_from(['energy_kwh', 'é', '"', '\u2028'])


@st.composite
def output_arrays(draw, rows: int, finite: bool = True):
  dtype = np.dtype(draw(_DTYPES))
  shape = (rows, ) if draw(st.booleans()) else (rows, draw(st.integers(0, 3)))
  elements = None
  if dtype.kind == 'f':
    elements = st.floats(width=dtype.itemsize * 8, allow_nan=not finite, allow_infinity=not finite)
  return draw(hnp.arrays(dtype, shape, elements=elements))


@st.composite
def outputs(draw, finite: bool = True):
  rows = draw(st.integers(0, 6))
  names = draw(st.lists(_NAMES, min_size=1, max_size=3, unique=True))
  return {name: draw(output_arrays(rows, finite)) for name in names}


def per_row_text(arrays):
  """What the job wrote before: one dict per row through the per-row encoder."""
  encode = json_lines.encoder(non_finite=json_lines.AS_STRING)
  rows = len(next(iter(arrays.values())))
  return [encode({name: array[i].tolist() for name, array in arrays.items()}) for i in range(rows)]


@settings(max_examples=300, deadline=None)
@given(arrays=outputs())
def test_each_rows_text_is_what_the_per_row_encoder_writes(arrays):
  texts = rows_text(arrays)
  assert texts == per_row_text(arrays)
  for i, text in enumerate(texts):
    assert text.isascii()
    assert strict_json(text) == {name: array[i].tolist() for name, array in arrays.items()}


@settings(max_examples=150, deadline=None)
@given(arrays=outputs(finite=False))
def test_a_non_finite_value_anywhere_leaves_the_text_to_the_encoder(arrays):
  finite = all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == 'f')
  assert rows_text(arrays) == (per_row_text(arrays) if finite else None)


@pytest.mark.parametrize('column', [
    np.array([True, False]),
    np.array([b'a', b'b']),
    np.array(['x', 'y']),
    np.zeros((2, 1, 1), np.float32),
    np.array([1 + 2j, 3j]),
    np.array([1.0, 1e-5], np.longdouble),
],
                         ids=['bool', 'bytes', 'str', '3-d', 'complex', 'float128'])
def test_outputs_it_does_not_cover_return_none(column):
  assert rows_text({'y': np.zeros(2, np.float32), 'z': column}) is None


def test_a_float32_value_is_written_as_the_double_it_widens_to():
  # The job has always written float32 outputs as their exact double (tolist).
  [text] = rows_text({'y': np.array([[0.1]], np.float32)})
  assert text == '{"y":[0.10000000149011612]}'
  assert strict_json(text)['y'][0] == float(np.float32(0.1))


def test_model_predictions_carry_the_text_of_their_outputs(tmp_path):

  class TwoOutputs(tf.Module):

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name='x')])
    def serve(self, x):
      return {
          'doubled': 2.0 * x,
          'pair': tf.stack([x, -x], axis=1),
          'count': tf.size(x) + 0 * tf.cast(x, tf.int32)
      }

  module = TwoOutputs()
  tf.saved_model.save(module, str(tmp_path), signatures={'serving_default': module.serve})
  model = load_site_model(ModelLocation('s', str(tmp_path), None), 'serving_default')
  rows = [{'x': 0.1}, {'x': -3.5}, {'x': 1e30}]
  results = model.predict(rows)
  encode = json_lines.encoder()
  assert [r.outputs_text for r in results] == [encode(r.outputs) for r in results]
  direct = module.serve(tf.constant([0.1, -3.5, 1e30], tf.float32))
  for i, result in enumerate(results):
    parsed = strict_json(result.outputs_text)
    assert parsed['doubled'] == float(direct['doubled'][i].numpy())
    assert parsed['pair'] == direct['pair'][i].numpy().tolist()
    assert parsed['count'] == 3


def test_the_encoding_benchmark_checks_both_texts_equal_and_prints_its_figures():
  repo = pathlib.Path(__file__).resolve().parents[1]
  proc = subprocess.run([
      sys.executable,
      str(repo / 'benchmarks' / 'output_encoding.py'), '--rows', '7', '--width', '2', '--repeat',
      '1'
  ],
                        cwd=repo,
                        capture_output=True,
                        text=True,
                        timeout=300,
                        check=False)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  for name in ('outputs, per-row dict', 'outputs, per column', 'line, outputs encoded per row',
               'line, outputs text carried'):
    assert re.search(rf'^{re.escape(name)}\s+[\d.]+ us/row$', proc.stdout, re.M), proc.stdout
  assert re.search(r'per column is [\d.]+x faster; whole line: [\d.]+x$', proc.stdout, re.M)


_EDGES = [1e-4, 1e16, 1.0, 0.5, 123456.789, 2.0**53]


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.sampled_from(_EDGES).flatmap(lambda edge: st.sampled_from(
    [edge, np.nextafter(edge, 0),
     np.nextafter(edge, np.inf), edge * 10, edge / 10]))
                       | st.floats(allow_nan=False, allow_infinity=False) | st.floats(1e-6, 1e17)
                       | st.just(-0.0),
                       min_size=1,
                       max_size=40),
       negate=st.booleans(),
       dtype=st.sampled_from(['float64', 'float32']))
def test_floats_at_the_notation_thresholds_are_written_as_repr_writes_them(values, negate, dtype):
  # orjson writes small magnitudes positionally (0.00001) where repr uses exponents: the
  # column text must still be repr's, at both ends of the positional range and beyond.
  with np.errstate(over='ignore'):
    column = np.array([-v if negate else v for v in values], dtype=dtype)
  if not np.isfinite(column).all():
    return
  texts = rows_text({'y': column, 'pair': np.stack([column, column[::-1]], axis=1)})
  assert texts == per_row_text({'y': column, 'pair': np.stack([column, column[::-1]], axis=1)})
  assert [strict_json(t)['y'] for t in texts] == column.tolist()
  for alone in (column, column[:, None], np.stack([column, column], axis=1)):  # one output
    assert rows_text({'y': alone}) == per_row_text({'y': alone})


def test_a_column_with_one_exponent_value_is_written_entirely_as_repr_writes_it():
  column = np.array([0.25, 1e-05, 3.0, 1e16, 9999999999999998.0, 1e-4, 9.999999999999999e-05])
  assert rows_text({'y': column}) == ['{"y":%r}' % v for v in column.tolist()]
  assert rows_text({'y': column[[0, 2, 4, 5]]
                    }) == ['{"y":0.25}', '{"y":3.0}', '{"y":9999999999999998.0}', '{"y":0.0001}']


def test_a_float128_output_is_written_as_its_nearest_double():
  column = np.array([1.0, 1e-5, 2.5], np.longdouble)
  text = json_lines.dumps({'y': column.tolist()})
  assert strict_json(text) == {'y': [1.0, 1e-5, 2.5]}
