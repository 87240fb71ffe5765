"""A batch's outputs kept as the model's arrays read, pickle and report as the per-row
dicts they stand for."""
import pickle

import ml_dtypes
import numpy as np
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from models.site.row_results import OutputColumns
from transforms.reporting import series
from transforms.reporting.histograms import numeric_columns
from transforms.site.predictions import PredictionBatch

_DTYPES = st.sampled_from([
    np.float32, np.float64, np.float16, np.int32, np.int64, np.bool_, np.uint8, ml_dtypes.bfloat16
])
_TRAILING = st.sampled_from([(), (1, ), (2, ), (3, 1)])


@st.composite
def _outputs(draw):
  """Arrays by output name (1-3 outputs) of one number of rows, as a signature returns."""
  rows = draw(st.integers(1, 6))
  names = draw(
      st.lists(st.sampled_from(['y', 'b', 'z', 'energy_kwh']), min_size=1, max_size=3, unique=True))
  arrays = {}
  for name in names:
    dtype = np.dtype(draw(_DTYPES))
    shape = (rows, ) + draw(_TRAILING)
    if dtype == ml_dtypes.bfloat16:
      values = draw(hnp.arrays(np.float32, shape, elements=st.floats(-1e3, 1e3, width=32)))
      arrays[name] = values.astype(dtype)
    else:
      arrays[name] = draw(hnp.arrays(dtype, shape))
  return arrays


def _rows(arrays):
  """Each row's ``{name: value}`` the way the model step made them before (tolist per output)."""
  names = list(arrays)
  columns = [arrays[name].tolist() for name in names]
  return [dict(zip(names, values)) for values in zip(*columns)]


def _batch(outputs, rows):
  count = len(rows)
  return PredictionBatch('s', '1', ['f.jsonl'] * count, [{
      'hour': h
  } for h in range(count)], outputs)


@settings(max_examples=200, deadline=None)
@given(_outputs())
def test_columns_read_as_the_rows_dicts_and_pickle_as_themselves(arrays):
  columns = OutputColumns(arrays)
  rows = _rows(arrays)
  assert len(columns) == len(rows)
  assert repr(list(columns)) == repr(rows)  # repr: NaN-aware, and types (float vs int) count
  assert repr([columns[i] for i in range(len(rows))]) == repr(rows)
  assert repr(columns[1:]) == repr(rows[1:])
  again = pickle.loads(pickle.dumps(columns))
  assert isinstance(again, OutputColumns)
  assert repr(list(again)) == repr(rows)
  assert list(again.arrays) == list(arrays)


@settings(max_examples=200, deadline=None)
@given(_outputs())
def test_the_report_reads_the_same_numbers_from_arrays_as_from_the_rows(arrays):
  rows = _rows(arrays)
  from_arrays = numeric_columns(_batch(OutputColumns(arrays), rows))
  from_rows = numeric_columns(_batch(rows, rows))
  assert list(from_arrays) == list(from_rows)
  for name, (count, numbers, other) in from_rows.items():
    got_count, got_numbers, got_other = from_arrays[name]
    assert (got_count, got_other) == (count, other)
    np.testing.assert_array_equal(got_numbers, numbers)
  assert repr(_points(OutputColumns(arrays), rows)) == repr(_points(rows, rows))


def _points(outputs, rows):
  return [(site, (dt, field, names, xs.tolist(), values.tolist()))
          for site, (dt, field, names, xs,
                     values) in series.timed_points(_batch(outputs, rows), series.AUTO)]


def test_outputs_of_different_row_counts_are_refused():
  try:
    OutputColumns({'y': np.zeros(2), 'z': np.zeros(3)})
  except ValueError as e:
    assert 'one number of rows' in str(e)
  else:
    raise AssertionError('accepted outputs of 2 and 3 rows')
