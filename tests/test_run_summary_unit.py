"""Unit tests of the run summary: stats summed and nested, finalized, judged, written once."""
import json
import math

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from beam_jobs import site_predictions
from tests_support import strict_json
from transforms import run_summary

_REASONS = st.sampled_from(['bad_json', 'no_model', 'bad_feature'])


@settings(max_examples=200, deadline=None)
@given(written=st.integers(0, 50),
       failed=st.dictionaries(_REASONS, st.integers(1, 20)),
       skew=st.integers(-3, 3) | st.just(0),
       fraction=st.floats(0, 1),
       sites=st.integers(0, 9))
def test_status_is_failed_exactly_when_the_policy_says(written, failed, skew, fraction, sites):
  read = max(0, written + sum(failed.values()) + skew)
  stats = [(('records_read', ), read), (('predictions_written', ), written),
           (('sites_seen', ), sites)] + [(('failed', r), n) for r, n in failed.items()]
  policy = site_predictions.status_policy(fraction)
  summary = run_summary.build_summary(stats, [('errors', 'b'), ('errors', 'a'),
                                              ('predictions', 'p')],
                                      finalize=site_predictions.finalize_summary,
                                      extra={'run_id': 'r'},
                                      policy=policy)
  failed_total = sum(failed.values())
  assert summary['failed_total'] == failed_total and summary['failed'] == failed
  assert summary['reconciled'] == (read == written + failed_total)
  should_fail = (not summary['reconciled'] or read == 0 or written == 0
                 or failed_total / read > fraction)
  assert (summary['status'] == 'failed') == should_fail
  assert summary['status'] in ('ok', 'failed') and summary['status_reason']
  assert summary['max_failed_fraction'] == fraction and summary['run_id'] == 'r'
  assert summary['outputs'] == {'errors': ['a', 'b'], 'predictions': ['p']}
  assert strict_json(run_summary.encode(summary).decode()) == summary
  if should_fail:
    with pytest.raises(run_summary.RunFailed, match='^run failed: '):
      run_summary.fail_if_failed(summary, [], summary_path='out/summary.json')
  else:
    assert run_summary.fail_if_failed(summary, [], summary_path='out/summary.json') is summary


@settings(max_examples=100, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from([('a', ), ('b',
                                                           'x'), ('b',
                                                                  'y'), ('c', 'd',
                                                                         'e')]), st.integers(0, 9)),
                      max_size=12))
def test_nest_sums_nothing_and_keeps_every_path(pairs):
  last = {}
  for key, amount in sorted(pairs):
    last[key] = amount
  tree = run_summary.nest(pairs)
  for key, amount in last.items():
    node = tree
    for part in key:
      node = node[part]
    assert node == amount


def test_finalize_fills_defaults_for_an_empty_run():
  summary = site_predictions.finalize_summary({})
  assert summary == {
      'failed': {},
      'failed_total': 0,
      'records_read': 0,
      'predictions_written': 0,
      'sites_seen': 0,
      'models_loaded': 0,
      'models_fast_path': 0,
      'bigquery_rejected': 0,
      'model_load_ms_total': 0.0,
      'reconciled': True
  }
  assert site_predictions.status_policy(1.0).judge(summary) == ('failed', 'no records read')


def test_encode_refuses_non_finite_numbers():
  with pytest.raises(ValueError):
    run_summary.encode({'x': math.inf})


def test_write_once_keeps_the_first_attempt_but_writes_new_counts(tmp_path):
  path = str(tmp_path / 'summary.json')
  first = {'records_read': 3, 'wall_time_s': 1.0, 'provenance': {'input': 'x'}}
  assert run_summary.write_once(path, dict(first)) == first
  assert run_summary.write_once(path, dict(first, wall_time_s=9.0)) == first
  assert json.loads((tmp_path / 'summary.json').read_text()) == first
  changed = dict(first, records_read=4, wall_time_s=9.0)
  assert run_summary.write_once(path, changed) == changed
  (tmp_path / 'summary.json').write_text('{not json')
  assert run_summary.write_once(path, dict(first)) == first
  assert json.loads((tmp_path / 'summary.json').read_text()) == first
