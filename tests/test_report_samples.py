"""The run report's samples: dead letters per reason, bottom-k per key however the
combine is split, and the time series of the worst sites."""
import datetime
import math
import random

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from transforms.reporting import histograms as hist
from transforms.reporting import samples
from transforms.reporting import series
from transforms.reporting import site_outcomes as so
from report_data import counts_list
from report_data import make_letter
from report_data import make_prediction

# --- samples ------------------------------------------------------------------------------


def test_dead_letter_samples_are_bounded_per_reason_and_truncated():
  long_record = {'text': 'x' * 5000}
  letters = ([make_letter('a', 'bad_json', record='{"a": ' + 'y' * 900)] * 10 +
             [make_letter('b', 'no_model', record=long_record, message='m' * 800)] * 2 + [{
                 'reason': None,
                 'record': {1, 2}
             }])
  with TestPipeline(runner='FnApiRunner') as p:
    out = p | beam.Create(letters) | samples.SampleDeadLetters(per_reason=3)
    assert_that(
        out | beam.Map(lambda d: sorted((r, len(e), max(len(x['record']) for x in e),
                                         max(len(x['message']) for x in e)) for r, e in d.items())),
        equal_to([[('bad_json', 3, samples.MAX_TEXT, 10),
                   ('no_model', 2, samples.MAX_TEXT, samples.MAX_TEXT), ('unknown', 1, 6, 4)]]))


_FIVE_AM = datetime.datetime(2026, 11, 20, 5, tzinfo=datetime.timezone.utc).timestamp()


@settings(max_examples=80, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from('abc'), st.one_of(st.integers(), st.text())),
                      max_size=50),
       k=st.integers(1, 5),
       seed=st.integers(0, 1000))
def test_bottom_k_samples_are_bounded_and_do_not_depend_on_the_split(pairs, k, seed):
  fn = samples.BottomKPerKeyFn(k)
  whole = fn.extract_output(
      fn.merge_accumulators([fn.add_input(fn.create_accumulator(), p) for p in pairs]
                            or [fn.create_accumulator()]))
  rng = random.Random(seed)
  parts = [fn.create_accumulator()]
  for pair in rng.sample(pairs, len(pairs)):
    if rng.random() < 0.3:
      parts.append(fn.create_accumulator())
    parts[-1] = fn.add_input(parts[-1], pair)
  assert fn.extract_output(fn.merge_accumulators(parts)) == whole
  for key, kept in whole.items():
    values = [v for kk, v in pairs if kk == key]
    assert len(kept) == min(k, len(values)) and all(v in values for v in kept)


@settings(max_examples=80, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from('abc'), st.one_of(st.integers(0, 20), st.text())),
                      max_size=60),
       k=st.integers(1, 5),
       cuts=st.lists(st.integers(0, 60), max_size=6))
def test_pre_sampled_batches_keep_what_sending_every_value_keeps(pairs, k, cuts):
  # A producer samples each batch itself (bottom_k) and sends one element per key.
  whole = samples.BottomKPerKeyFn(k)
  expected = whole.extract_output(
      whole.merge_accumulators([whole.add_input(whole.create_accumulator(), p) for p in pairs]
                               or [whole.create_accumulator()]))
  bounds = sorted({0, len(pairs), *(c for c in cuts if c < len(pairs))})
  merge = samples.MergeBottomKPerKeyFn(k)
  accumulator = merge.create_accumulator()
  for start, stop in zip(bounds, bounds[1:]):
    batch = pairs[start:stop]
    for key in sorted({key for key, _ in batch}):
      accumulator = merge.add_input(accumulator,
                                    (key, samples.bottom_k([v for kk, v in batch if kk == key], k)))
  assert merge.extract_output(merge.merge_accumulators([accumulator])) == expected


def _first_number_reference(value):
  values, _ = hist.numeric_values(value)
  return next((n for n in values.tolist() if math.isfinite(n)), None)


_OUTPUT_SCALARS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                            st.booleans(), st.text(max_size=3), st.none())


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(_OUTPUT_SCALARS, st.lists(_OUTPUT_SCALARS, max_size=3),
                       st.lists(st.lists(st.floats(), min_size=1, max_size=2), max_size=2)))
def test_first_number_of_an_output_is_what_its_numeric_values_give(value):
  got, want = series.first_number(value), _first_number_reference(value)
  assert got == want or (got is not None and want is not None and math.isclose(got, want))


def _reference_point(prediction, time_field):
  """A prediction's series point as the report defines it, row by row, with its rank."""
  found = series.row_time(prediction.instance, time_field)
  if found is None:
    return None
  values, row = {}, []
  for name in sorted(prediction.outputs)[:series.MAX_SERIES_OUTPUTS]:
    number = series.first_number(prediction.outputs[name])
    row.append(math.nan if number is None else number)
    if number is not None:
      values[name] = number
  point = (found[0], found[1], values, found[2])
  rank = int(series.point_ranks(np.array([found[0]]), np.array([row]))[0])
  return (rank, point) if values else None


_TIMES = st.one_of(st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=False),
                   st.sampled_from(['2026-11-20T05:00:00Z', 'soon', '2026-11-20']), st.none())
_OUTPUT = st.one_of(st.floats(allow_nan=True), st.lists(st.floats(), max_size=2),
                    st.text(max_size=2))


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from('ab'), st.sampled_from(['hour', 'timestamp',
                                                                       'x']), _TIMES,
                               st.dictionaries(st.sampled_from('pqrs'), _OUTPUT, max_size=4)),
                     max_size=30),
       k=st.integers(1, 6),
       cut=st.integers(0, 30))
def test_series_points_from_columns_are_the_rows_points(rows, k, cut):
  predictions = [
      make_prediction(site, outputs, instance={field: t}) for site, field, t, outputs in rows
  ]
  expected = {}
  for p in predictions:
    ranked = _reference_point(p, series.AUTO)
    if ranked is not None:
      expected.setdefault(p.site_id, []).append(ranked)
  expected = {
      site: [point for _, point in sorted(ranked, key=lambda r: (r[0], repr(r[1])))[:k]]
      for site, ranked in expected.items()
  }
  merge = samples.MergeBottomKPerKeyFn(k)
  accumulator = merge.create_accumulator()
  for batch in (predictions[:cut], predictions[cut:]):
    for element in series.timed_points(batch, series.AUTO):
      for sampled in series.series_points(element, sites=['a', 'b'], k=k):
        accumulator = merge.add_input(accumulator, sampled)
  assert merge.extract_output(accumulator) == expected


@pytest.mark.parametrize('value, expected', [(7, (7.0, False)), (2.5, (2.5, False)), (True, None),
                                             (float('nan'), None), (10**400, None),
                                             ('2026-11-20T05:00:00Z', (_FIVE_AM, True)),
                                             ('2026-11-20 05:00:00', (_FIVE_AM, True)),
                                             ('2026-11-20T06:00:00+01:00', (_FIVE_AM, True)),
                                             ('2026-11-20', (_FIVE_AM - 5 * 3600, True)),
                                             ('soon', None), (None, None), ([1], None)])
def test_time_values(value, expected):
  assert series.time_value(value) == expected


def test_series_sample_the_worst_sites_that_predicted_sorted_by_time():
  batches = []
  for site in 'abcd':
    batches.append([
        make_prediction(site, {
            'y': [float(h)],
            'z': 'text'
        }, instance={
            'hour': h,
            'site_id': site
        }) for h in range(30, -1, -1)
    ])
  batches.append([make_prediction('b', {'y': 1.0}, instance={'no_time': 1})])
  lines = [so.outcome_line((s, c), False) for s, c in zip('abcd', counts_list()[:4])]
  with TestPipeline(runner='FnApiRunner') as p:
    site_lines = p | 'Lines' >> beam.Create(lines)
    out = (p | 'Batches' >> beam.Create(batches)) | series.SampleSeries(
        site_lines=site_lines, max_sites=2, points_per_site=10)
    # b: 50% failed, d: 20%, a: 0% (left out: two sites); c predicted nothing.
    assert_that(
        out | beam.Map(lambda s: [(x['site_id'], x['time_field'], len(x['x']), x['x'] == sorted(x[
            'x']), all(v['y'] == t for v, t in zip(x['values'], x['x']))) for x in s]),
        equal_to([[('b', 'hour', 10, True, True), ('d', 'hour', 10, True, True)]]))
