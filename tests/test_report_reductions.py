"""The site report's reductions: per-site outcome lines and the site table, and the
histograms of model outputs; counts that reconcile however Beam splits and merges them."""
import json
import math
import random

import apache_beam as beam
import numpy as np
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from transforms.reporting import histograms as hist
from transforms.reporting import site_outcomes as so
from report_data import counts_list
from report_data import flat_numbers
from report_data import make_letter
from report_data import make_prediction
from tests_support import strict_json

# --- per-site outcomes ------------------------------------------------------------------


def test_site_outcomes_count_each_site_and_rows_without_a_site():
  batches = [[make_prediction('a', {'y': 1.0}),
              make_prediction('a', {'y': 2.0})], [make_prediction('b', {'y': 3.0}, version='7')],
             [make_prediction('42', {'y': 0.5})]]
  letters = [
      make_letter('a', 'bad_feature'),
      make_letter('c', 'no_model'),
      make_letter('c', 'no_model'),
      make_letter(None, 'bad_json'),
      make_letter(42, 'bad_feature')
  ]
  loads = [('a', {
      'model_version': '1',
      'fast_path': False,
      'load_ms': 120.0
  }), ('b', {
      'model_version': '7',
      'fast_path': True,
      'load_ms': 2.5
  }), ('b', {
      'model_version': '7',
      'fast_path': False,
      'load_ms': 100.0
  })]
  with TestPipeline(runner='FnApiRunner') as p:
    lines = (p | 'Batches' >> beam.Create(batches)) | so.SiteOutcomes(
        failed=p | 'Letters' >> beam.Create(letters), model_loads=p | 'Loads' >> beam.Create(loads))
    assert_that(
        lines | beam.Map(lambda l: (l['site_id'], l['status'], l['rows'], l['predicted'], l[
            'failed'], l['failed_by_reason'], l['model_versions'], l['models_loaded'], l[
                'models_fast_path'], l['model_load_ms'])),
        equal_to([('a', 'partial', 3, 2, 1, {
            'bad_feature': 1
        }, ['1'], 1, 0, 120.0), ('b', 'ok', 1, 1, 0, {}, ['7'], 2, 1, 102.5),
                  ('42', 'partial', 2, 1, 1, {
                      'bad_feature': 1
                  }, ['1'], 0, 0, 0.0), ('c', 'failed', 2, 0, 2, {
                      'no_model': 2
                  }, [], 0, 0, 0.0), (None, 'failed', 1, 0, 1, {
                      'bad_json': 1
                  }, [], 0, 0, 0.0)]))


def test_site_outcomes_without_model_loads_leave_the_load_fields_null(tmp_path):
  with TestPipeline(runner='FnApiRunner') as p:
    lines = (p | 'Batches' >> beam.Create([[make_prediction('a', {'y': 1.0})]])) | so.SiteOutcomes(
        failed=p | 'Letters' >> beam.Create([make_letter('a', 'bad_feature')]))
    files = lines | so.WriteSiteOutcomes(str(tmp_path))
    assert_that(files | beam.combiners.Count.Globally(), equal_to([1]))
  [written] = list((tmp_path / 'sites').glob('sites-*.jsonl'))
  [line] = [strict_json(l) for l in written.read_text().splitlines()]
  assert line == {
      'site_id': 'a',
      'status': 'partial',
      'rows': 2,
      'predicted': 1,
      'failed': 1,
      'failed_fraction': 0.5,
      'failed_by_reason': {
          'bad_feature': 1
      },
      'model_versions': ['1'],
      'models_loaded': None,
      'models_fast_path': None,
      'model_load_ms': None
  }


_SITES = st.one_of(st.none(), st.sampled_from(['a', 'b', 'site-\u00e9', '<x>']), st.integers(0, 3))
_OUTCOMES = st.lists(st.tuples(
    _SITES, st.one_of(st.none(), st.sampled_from(['bad_json', 'no_model', 'bad_feature']))),
                     max_size=60)


@settings(max_examples=80, deadline=None)
@given(outcomes=_OUTCOMES, seed=st.integers(0, 1000))
def test_site_lines_reconcile_and_do_not_depend_on_how_the_combine_is_split(outcomes, seed):
  events = []
  predictions = [
      make_prediction(so.site_key(s), {'y': 1.0}) for s, reason in outcomes
      if reason is None and s is not None
  ]
  rng = random.Random(seed)
  rng.shuffle(predictions)
  cut = rng.randint(0, len(predictions))
  for batch in (predictions[:cut], predictions[cut:]):
    events.extend(so.prediction_events(batch))
  events.extend(
      so.failure_event(make_letter(s, r)) for s, r in outcomes if r is not None or s is None)
  rng.shuffle(events)
  fn = so.SiteOutcomeFn()
  by_site = {}
  for site, event in events:  # each event in its own accumulator, merged in random groups
    by_site.setdefault(site, []).append(fn.add_input(fn.create_accumulator(), event))
  lines = []
  for site, accs in by_site.items():
    while len(accs) > 1:
      k = rng.randint(2, len(accs))
      accs = [fn.merge_accumulators(accs[:k])] + accs[k:]
    lines.append(so.outcome_line((site, fn.extract_output(accs[0])), True))
  assert sum(l['rows'] for l in lines) == len(outcomes)
  assert sum(l['predicted'] for l in lines) == len(predictions)
  table_fn = so.SiteTableFn(max_sites=3)
  parts = [table_fn.create_accumulator()]
  for line in lines:
    if rng.random() < 0.3:
      parts.append(table_fn.create_accumulator())
    parts[-1] = table_fn.add_input(parts[-1], line)
    strict_json(json.dumps(line, allow_nan=False))
    assert line['rows'] == line['predicted'] + sum(line['failed_by_reason'].values())
    assert line['status'] == ('ok' if not line['failed'] else
                              'failed' if not line['predicted'] else 'partial')
  table = table_fn.extract_output(table_fn.merge_accumulators(parts))
  acc = table['totals']
  assert acc['rows'] == len(outcomes) and acc['lines'] == len(lines)
  assert acc['ok'] + acc['partial'] + acc['failed'] == acc['sites']
  assert table['worst'] == sorted(lines, key=so.worst_first)[:3]


def test_site_table_is_bounded_and_worst_first():
  lines = [so.outcome_line((f's{i}', c), False) for i, c in enumerate(counts_list())]
  with TestPipeline(runner='FnApiRunner') as p:
    table = p | beam.Create(lines) | so.SiteTable(max_sites=3)
    assert_that(
        table
        | beam.Map(lambda t:
                   ([l['site_id'] for l in t['worst']], t['totals']['sites'], t['totals']['rows'])),
        equal_to([(['s2', 's1', 's3'], 5, 22)]))


# --- histograms ---------------------------------------------------------------------------

_NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                    st.integers(-1000, 1000), st.booleans())
_VALUE = st.one_of(
    _NUMBER, st.text(max_size=3), st.none(), st.lists(_NUMBER, max_size=4),
    st.lists(st.one_of(_NUMBER, st.text(max_size=2), st.lists(_NUMBER, max_size=2)), max_size=3))


@settings(max_examples=120, deadline=None)
@given(outputs=st.lists(st.dictionaries(st.sampled_from(['y', 'z', 'label']), _VALUE, min_size=1),
                        max_size=30),
       seed=st.integers(0, 1000))
def test_histogram_counts_equal_numpy_over_all_values_however_batched(outputs, seed):
  rng = random.Random(seed)
  predictions = [make_prediction('a', o) for o in outputs]
  batches, i = [], 0
  while i < len(predictions):
    k = rng.randint(1, 5)
    batches.append(predictions[i:i + k])
    i += k
  fn = hist.OutputRangesFn()
  ranges = fn.extract_output(
      fn.merge_accumulators(
          [fn.add_input(fn.create_accumulator(), hist.numeric_columns(b)) for b in batches]
          or [fn.create_accumulator()]))
  edges = hist.chosen_ranges(ranges, 12, 7)
  counts = hist.sum_counts(hist.batch_counts(hist.numeric_columns(b), edges) for b in batches)
  result = hist.histograms(counts, ranges, edges)
  for name in set(n for o in outputs for n in o):
    values = np.array([x for o in outputs if name in o for x in flat_numbers(o[name])])
    finite = values[np.isfinite(values)]
    if not finite.size:
      assert result[name]['counts'] == [] and result[name]['rows'] > 0
      continue
    h = result[name]
    assert h['rows'] == sum(1 for o in outputs if name in o)
    assert h['values'] == values.size and h['non_finite'] == values.size - finite.size
    assert hist.values_in(h) == finite.size
    expected, _ = np.histogram(finite, bins=np.asarray(h['edges']))
    assert h['counts'] == expected.tolist()
    assert h['min'] == finite.min() and h['max'] == finite.max()


def test_output_histograms_in_a_pipeline_bin_every_element_of_list_outputs():
  batches = [[
      make_prediction('a', {
          'y': [1.0, 2.0],
          's': 'text'
      }),
      make_prediction('b', {
          'y': [3.0, float('nan')],
          's': 'more'
      })
  ], [make_prediction('c', {'y': [10.0, 10.0]})]]
  with TestPipeline(runner='FnApiRunner') as p:
    out = p | beam.Create(batches) | hist.OutputHistograms(bins=3)
    assert_that(
        out,
        equal_to([{
            'y': {
                'rows': 3,
                'values': 6,
                'non_finite': 1,
                'non_numeric': 0,
                'min': 1.0,
                'max': 10.0,
                'edges': [1.0, 4.0, 7.0, 10.0],
                'counts': [3, 0, 2]
            },
            's': {
                'rows': 2,
                'values': 0,
                'non_finite': 0,
                'non_numeric': 2,
                'min': None,
                'max': None,
                'edges': [],
                'counts': []
            }
        }]))


def test_output_histograms_of_nothing_is_empty():
  with TestPipeline(runner='FnApiRunner') as p:
    out = p | beam.Create([]) | hist.OutputHistograms()
    assert_that(out, equal_to([{}]))


def test_numeric_values_of_odd_outputs():
  assert hist.numeric_values(10**400)[0].tolist() == [math.inf]
  values, other = hist.numeric_values([[1, 2], [3], 'x', None, True])
  assert values.tolist() == [1.0, 2.0, 3.0, 1.0] and other == 2
  assert hist.numeric_values(b'bytes')[0].size == 0
