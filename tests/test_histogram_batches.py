"""Histogram values of a whole batch at once equal those of its values one by one."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from transforms.reporting.histograms import OutputRangesFn
from transforms.reporting.histograms import batch_counts
from transforms.reporting.histograms import batch_values
from transforms.reporting.histograms import numeric_columns
from transforms.reporting.histograms import numeric_values
from transforms.site.predictions import Prediction

NUMBERS = st.one_of(st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True))
SCALARS = st.one_of(NUMBERS, st.none(), st.text(max_size=3))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3),
                   st.lists(st.lists(NUMBERS, min_size=2, max_size=2), max_size=3))


def _Prediction(outputs):  # pylint: disable=invalid-name
  return Prediction('s', 'f.jsonl', {}, outputs, None)


def _one_by_one(values):
  parts = [numeric_values(v) for v in values]
  numbers = np.concatenate([p[0] for p in parts]) if parts else np.empty(0)
  return numbers, sum(p[1] for p in parts)


@given(
    st.one_of(st.lists(VALUES, max_size=8), st.lists(NUMBERS, max_size=8),
              st.lists(st.lists(NUMBERS, min_size=3, max_size=3), max_size=8)))
def test_a_batch_gives_the_numbers_of_its_values_in_order(values):
  numbers, other = batch_values(values)
  want_numbers, want_other = _one_by_one(values)
  assert other == want_other
  np.testing.assert_array_equal(numbers, want_numbers)


@given(st.lists(st.dictionaries(st.sampled_from(['a', 'b', 'c']), VALUES, max_size=3), max_size=6))
def test_ranges_and_counts_of_a_batch_equal_those_of_its_rows_alone(outputs):
  batch = [_Prediction(o) for o in outputs]
  fn = OutputRangesFn()
  together = fn.extract_output(fn.add_input(fn.create_accumulator(), numeric_columns(batch)))
  alone = fn.create_accumulator()
  for prediction in batch:
    alone = fn.add_input(alone, numeric_columns([prediction]))
  assert together == fn.extract_output(alone)
  edges = {name: [-1.0, 0.0, 1.0] for name in together}
  summed = {}
  for prediction in batch:
    for name, counts in batch_counts(numeric_columns([prediction]), edges).items():
      summed[name] = [a + b for a, b in zip(summed.get(name, [0, 0]), counts)]
  assert batch_counts(numeric_columns(batch), edges) == summed
