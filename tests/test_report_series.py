"""The report's time series: a batch read a column at a time gives the points row by row
gives; point ranks are per point, whatever the batch."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from transforms.reporting import samples
from transforms.reporting import series
from transforms.site.predictions import Prediction

_TIME = st.one_of(st.integers(-3, 3), st.integers(2**1100, 2**1100 + 1),
                  st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                  st.sampled_from(['2026-11-20T05:00:00Z', 'soon']))
_OUT = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2, 2),
                 st.lists(st.floats(allow_nan=False), min_size=1, max_size=2))


def _batch(rows):
  return [
      Prediction(site_id, 'f.jsonl', instance, outputs, '1') for site_id, instance, outputs in rows
  ]


# Mostly plain batches (one site, 'hour' ints, float outputs), with now and then what
# makes a batch not plain: another site, an earlier time field, a text time, an int output.
_ROWS = st.lists(st.tuples(
    st.sampled_from(['s'] * 9 + ['t']),
    st.one_of(st.fixed_dictionaries({'hour': st.integers(0, 23)}),
              st.fixed_dictionaries({'hour': _TIME}), st.fixed_dictionaries({'timestamp': _TIME}),
              st.fixed_dictionaries({
                  'timestamp': st.integers(0, 9),
                  'hour': _TIME
              })),
    st.one_of(
        st.fixed_dictionaries({
            'y': st.floats(allow_nan=True, allow_infinity=True),
            'z': st.floats(-1e3, 1e3)
        }),
        st.fixed_dictionaries({
            'y': st.lists(st.floats(), min_size=1, max_size=1),
            'z': st.floats(-1e3, 1e3)
        }), st.fixed_dictionaries({
            'y': _OUT,
            'z': _OUT
        }))),
                 min_size=1,
                 max_size=25)


def _as_lists(elements):
  return [(site, (dt, field, names, xs.tolist(), rows.tolist()))
          for site, (dt, field, names, xs, rows) in elements]


def _same(a, b):
  return repr(a) == repr(b)  # NaN-aware: nan's repr is 'nan' on both sides


@settings(max_examples=300, deadline=None)
@given(rows=_ROWS, time_field=st.sampled_from([series.AUTO, 'hour']))
def test_a_batch_gives_the_points_it_gives_row_by_row(rows, time_field):
  batch = _batch(rows)
  assert _same(_as_lists(series.timed_points(batch, time_field)),
               _as_lists(series.timed_points_by_row(batch, time_field)))


@settings(max_examples=100, deadline=None)
@given(hours=st.lists(st.integers(0, 10**6), min_size=1, max_size=40), seed=st.integers(0, 2**16))
def test_a_plain_batch_is_read_by_columns_with_the_same_points(hours, seed):
  rng = np.random.default_rng(seed)
  values = rng.normal(size=(len(hours), 2))
  values[rng.random(values.shape) < 0.2] = math.nan
  shape_one = seed % 2  # outputs of shape [1] are one-float lists
  batch = [
      Prediction('s', 'f', {
          'hour': h,
          'x': 1
      }, {
          'b': [float(v[0])] if shape_one else float(v[0]),
          'a': float(v[1])
      }, '1') for h, v in zip(hours, values)
  ]
  got = list(series.timed_points(batch, series.AUTO))
  assert _same(_as_lists(got), _as_lists(series.timed_points_by_row(batch, series.AUTO)))
  if not np.isnan(values).all():
    [(site, (_, field, names, xs, _))] = got
    assert (site, field, names) == ('s', 'hour', ('a', 'b'))
    assert len(xs) == int((~np.isnan(values).all(axis=1)).sum())


@settings(max_examples=200, deadline=None)
@given(points=st.lists(st.tuples(st.floats(allow_nan=False, allow_infinity=True),
                                 st.lists(st.floats(allow_nan=True), min_size=2, max_size=2)),
                       min_size=1,
                       max_size=20))
def test_point_ranks_are_per_point(points):
  xs = np.array([x for x, _ in points])
  rows = np.array([row for _, row in points])
  together = series.point_ranks(xs, rows)
  alone = [series.point_ranks(xs[i:i + 1], rows[i:i + 1])[0] for i in range(len(points))]
  assert together.tolist() == [int(r) for r in alone]
  # a NaN is one NaN, whatever its bits
  odd_nan = np.array([np.frombuffer(np.uint64(0x7ff8000000000001).tobytes(), np.float64)[0]])
  assert series.point_ranks(np.zeros(1),
                            odd_nan.reshape(1,
                                            1)) == series.point_ranks(np.zeros(1),
                                                                      np.array([[math.nan]]))


def test_series_points_keep_the_k_first_ranks_ties_by_repr():
  xs = np.arange(50, dtype=np.float64)
  rows = np.stack([np.sin(xs), np.full(50, math.nan)], axis=1)
  element = ('s', (False, 'hour', ('a', 'b'), xs, rows))
  [(site, kept)] = series.series_points(element, sites=['s'], k=7)
  ranks = series.point_ranks(xs, rows)
  assert site == 's' and [r for r, _, _ in kept] == sorted(ranks.tolist())[:7]
  assert all(point[2] == {'a': math.sin(point[0])} for _, _, point in kept)
  assert list(series.series_points(element, sites=['t'], k=7)) == []


def _sample(elements, k):
  """The series' bottom-k merge of ``elements`` (sites a and b), as Python values."""
  merge = samples.MergeBottomKPerKeyFn(k)
  accumulator = merge.create_accumulator()
  for element in elements:
    for sampled in series.series_points(element, sites=['a', 'b'], k=k):
      accumulator = merge.add_input(accumulator, sampled)
  return repr(merge.extract_output(accumulator))


# Batches of a bundle (sizes), a sample size k, how soon buffers are trimmed, random data.
_BUNDLE = dict(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=8),
               k=st.integers(1, 5),
               factor=st.integers(1, 3),
               seed=st.integers(0, 2**16))


@settings(max_examples=100, deadline=None)
@given(**_BUNDLE)
def test_a_bundle_of_batches_keeps_the_points_each_batch_would(sizes, k, factor, seed):
  rng = np.random.default_rng(seed)
  elements = []
  for i, size in enumerate(sizes):
    xs = rng.integers(0, 30, size).astype(np.float64)  # repeated x: ties between points
    rows = rng.normal(size=(size, 2))
    rows[rng.random(rows.shape) < 0.3] = math.nan
    elements.append(('ab'[i % 2], (False, 'hour', ('p', 'q'), xs, rows)))
  fn = series.SeriesPointsFn(k)
  fn.BUFFER_FACTOR = factor  # trims as the buffer grows
  fn.start_bundle()
  for element in elements:
    assert fn.process(element, sites=['a', 'b']) is None  # emits at the bundle's end
  merge = samples.MergeBottomKPerKeyFn(k)
  got = merge.create_accumulator()
  for windowed in fn.finish_bundle():
    got = merge.add_input(got, windowed.value)
  assert repr(merge.extract_output(got)) == _sample(elements, k)


@settings(max_examples=100, deadline=None)
@given(**_BUNDLE)
def test_the_first_pass_keeps_few_points_per_site_and_samples_the_same(sizes, k, factor, seed):
  rng = np.random.default_rng(seed)
  batches = []
  for i, size in enumerate(sizes):
    hours = rng.integers(0, 12, size)  # repeated hours and outputs: ties between points
    outputs = rng.integers(0, 3, size).astype(np.float64)
    batches.append([
        Prediction('ab'[i % 2], 'f.jsonl', {'hour': int(h)}, {'y': float(y)}, '1')
        for h, y in zip(hours, outputs)
    ])
  every = [element for batch in batches for element in series.timed_points(batch, series.AUTO)]
  fn = series.TimedPointsFn(k, series.AUTO)
  fn.BUFFER_FACTOR = factor  # trims as the buffer grows
  fn.start_bundle()
  for batch in batches:
    assert fn.process(batch) is None  # emits at the bundle's end
  kept = [windowed.value for windowed in fn.finish_bundle()]
  assert _sample(kept, k) == _sample(every, k)
  assert sorted(site for site, _ in kept) == sorted({site for site, _ in every})
  for site, (_, _, _, xs, rows) in kept:
    ranks = series.point_ranks(xs, rows)
    every_ranks = np.concatenate([series.point_ranks(p[3], p[4]) for s, p in every if s == site])
    kth = np.sort(every_ranks)[min(k, len(every_ranks)) - 1]
    assert (ranks <= kth).all()  # only the k first points of the site, and their ties
    # ... each point at most k times (copies are interchangeable in any sample of k)
    tied, counts = np.unique(every_ranks[every_ranks <= kth], return_counts=True)
    assert len(ranks) == np.minimum(counts, k).sum()
    assert set(ranks.tolist()) == set(tied.tolist())


def test_a_site_repeating_a_few_points_keeps_k_copies_at_most():
  # One date and a class-like output: 300,000 rows, three distinct points.
  k = 50
  batches = [[
      Prediction('a', 'f.jsonl', {'date': 20261204}, {'y': float(i % 3)}, '1') for i in range(1000)
  ] for _ in range(300)]
  fn = series.TimedPointsFn(k, 'date')
  fn.start_bundle()
  for batch in batches:
    fn.process(batch)
  [(site, (_, _, _, xs, rows))] = [windowed.value for windowed in fn.finish_bundle()]
  assert site == 'a' and len(xs) == k  # not the 100,000 copies of the first point
  every = [element for batch in batches[:3] for element in series.timed_points(batch, 'date')]
  assert _sample([(site, (False, 'date', ('y', ), xs, rows))], k) == _sample(every, k)


@pytest.mark.parametrize(
    'xs, ys',
    [
        (np.arange(24.0), np.arange(0, 6, 0.5)),  # hours and round outputs
        (np.arange(0, 1e6, 3600.0), np.arange(-5, 5, 0.25)),  # epoch seconds
        (np.arange(1000.0), np.arange(50.0)),  # x equal to the output
    ])
def test_round_numbers_get_distinct_ranks(xs, ys):
  # The sample is the points of smallest rank: ranks that collide for round numbers
  # would sample by repr instead (the earliest times first), not spread over the series.
  grid_x, grid_y = np.meshgrid(xs, ys)
  xs, ys = grid_x.ravel(), grid_y.ravel()
  for rows in (ys.reshape(-1, 1), np.stack([ys, xs], axis=1)):
    ranks = series.point_ranks(xs, rows)
    assert len(set(ranks.tolist())) == len(xs)
