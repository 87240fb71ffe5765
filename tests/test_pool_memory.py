"""Memory of a worker's site model pool: bounded, and flat in the number of sites."""
import gc
import os
import subprocess
import sys

import pytest

from models.site.pool import SiteModelPool
import savedmodel_builders as builders

ROWS = builders.keras_rows(2, 3)
N_SITES = 120
WARM = 30
POOL = 10

pytestmark = pytest.mark.slow  # exports N_SITES models first


def rss_mib() -> float:
  with open('/proc/self/statm', encoding='ascii') as f:
    return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


_EXPORT = """
import sys
import savedmodel_builders as builders
for i in range(int(sys.argv[2])):
  builders.save_site_module(f'{sys.argv[1]}/site-{i}/1', i)
"""


@pytest.fixture(scope='module')
def many_sites(tmp_path_factory):
  """N_SITES tf.Module sites of one architecture, exported in a loop (in a process of its
  own, as a training job would, and away from the graphs earlier tests left in this
  process), each with its own weights."""
  root = tmp_path_factory.mktemp('many_sites')
  tests = os.path.dirname(os.path.abspath(__file__))
  env = dict(os.environ,
             PYTHONPATH=os.pathsep.join(
                 [tests, os.path.dirname(tests),
                  os.environ.get('PYTHONPATH', '')]))
  subprocess.run([sys.executable, '-c', _EXPORT,
                  str(root), str(N_SITES)],
                 env=env,
                 check=True,
                 capture_output=True,
                 timeout=600)
  return str(root)


def serve(pool, sites):
  for site in sites:
    results = pool.get(site).model.predict(ROWS)
    assert all(r.outputs is not None for r in results)


def test_rss_stays_flat_once_the_pool_is_full(many_sites):
  pool = SiteModelPool(model_root=many_sites, signature='serving_default', max_models=POOL)
  sites = [f'site-{i}' for i in range(N_SITES)]
  serve(pool, sites[:WARM])  # pool full, allocator warmed up
  gc.collect()
  warm = rss_mib()
  serve(pool, sites[WARM:])  # three times as many sites again
  gc.collect()
  grown = rss_mib() - warm
  assert pool.size == POOL and pool.num_graphs == 1
  # A full load each would add about a megabyte per site.
  assert grown < 4, f'RSS grew {grown:.1f} MiB over {N_SITES - WARM} sites'


def test_estimated_bytes_stay_under_the_bound(many_sites):
  probe = SiteModelPool(model_root=many_sites, signature='serving_default')
  probe.get('site-0')
  bound = probe.num_bytes + 10 * probe.get('site-0').model.num_bytes
  pool = SiteModelPool(model_root=many_sites,
                       signature='serving_default',
                       max_models=10_000,
                       max_bytes=bound)
  for i in range(40):
    pool.get(f'site-{i}')
    assert pool.num_bytes <= bound
  assert pool.size == 11
