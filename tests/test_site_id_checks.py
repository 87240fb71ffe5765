"""Site ids are checked once per distinct value and DoFn, with the outcome of a fresh check."""
import json

from hypothesis import given
from hypothesis import strategies as st

from common.failures import RecordFailure
from transforms.site import instances
from transforms.site.rows import PackJsonLinesBySiteFn

from test_site_rows import rows_by_site
from test_site_rows import run_bundle

IDS = st.one_of(st.booleans(), st.integers(-3, 3), st.sampled_from([1.0, 2.5, -0.0, 1e300]),
                st.sampled_from(['1', 'a', 'a/b', '..', '', 'x' * 300, 'twin ', 'é']),
                st.lists(st.integers(), max_size=1))


def test_the_id_checks_run_once_per_distinct_site_value(monkeypatch, tmp_path):
  calls = []
  real = instances.site_id_problem

  def counted(site_id, model_root=None):
    calls.append(site_id)
    return real(site_id, model_root)

  monkeypatch.setattr(instances, 'site_id_problem', counted)
  lines = [('f', json.dumps({'site_id': f's{i % 3}', 'i': i})) for i in range(300)]
  blocks, letters = run_bundle(PackJsonLinesBySiteFn('site_id', model_root=str(tmp_path)), lines)
  assert letters == []
  assert sorted(calls) == ['s0', 's1', 's2']
  assert sum(len(rows) for rows in rows_by_site(blocks).values()) == 300


@given(st.lists(IDS, max_size=30))
def test_remembered_outcomes_equal_a_fresh_check_of_each_row(ids):
  lines = [('f', json.dumps({'site_id': v, 'i': i})) for i, v in enumerate(ids)]
  blocks, letters = run_bundle(PackJsonLinesBySiteFn('site_id', model_root='/models'), lines)
  packed = {row['i']: site for site, rows in rows_by_site(blocks).items() for _, row in rows}
  refused = {letter['record']['i']: letter['message'] for letter in letters}
  assert sorted(packed.keys() | refused.keys()) == list(range(len(ids)))
  for i, value in enumerate(ids):
    try:
      want = instances.site_of({'site_id': value}, 'site_id', model_root='/models')
    except instances.RecordFailure as e:
      assert refused[i] == e.message
    else:
      assert packed[i] == want


def test_a_full_memory_starts_afresh(monkeypatch):
  monkeypatch.setattr(instances, 'MAX_KNOWN_SITE_IDS', 2)
  known = {}
  for value in ['a', 'b', 'c', True, 'd']:
    try:
      instances.site_of({'s': value}, 's', known=known)
    except instances.RecordFailure:
      pass
    assert len(known) <= 2
