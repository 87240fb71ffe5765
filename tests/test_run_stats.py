"""RunStats: every counter's pairs, summed, are the counts of its PCollection, however the
elements are split into bundles."""
import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from transforms import run_stats
from transforms.run_summary import nest

_reasons = st.sampled_from(['bad_json', 'no_model', 'bad_feature'])


def _summed(pairs):
  return sorted(nest(pairs).items())


@settings(max_examples=5, deadline=None)
@given(rows=st.lists(st.integers(-9, 9), max_size=30),
       batches=st.lists(st.lists(st.integers(-9, 9), max_size=5), max_size=10),
       reasons=st.lists(_reasons, max_size=20))
def test_each_counter_counts_its_pcollection(rows, batches, reasons):
  letters = [{'reason': r} for r in reasons]
  given_pairs = [(('sites_seen', ), 2), (('models_loaded', ), 1), (('load_ms', ), 2.25)]
  expected = {
      'records_read': len(rows),
      'predictions_written': sum(map(len, batches)),
      'sites_seen': 2,
      'models_loaded': 1,
      'load_ms': 2.25
  }  # a float stays a float
  if letters:
    expected['failed'] = {r: reasons.count(r) for r in set(reasons)}
  with TestPipeline() as p:
    stats = p | run_stats.RunStats({
        'Read': (p | 'Rows' >> beam.Create(rows), run_stats.Count('records_read')),
        'Written': (p | 'Batches' >> beam.Create(batches),
                    run_stats.CountItems('predictions_written')),
        'Failed': (p | 'Letters' >> beam.Create(letters), run_stats.StatsOf(run_stats.by_reason)),
        'Given': (p | 'Pairs' >> beam.Create(given_pairs), run_stats.AsIs()),
    })
    summed = (stats | beam.CombinePerKey(sum) | beam.combiners.ToList() | beam.Map(_summed))
    assert_that(summed, equal_to([sorted(expected.items())]))


def test_no_sources_is_an_error():
  with pytest.raises(ValueError, match='at least one'):
    run_stats.RunStats({})
