"""Memory of a worker's site model pool: bounded, and flat in the number of sites."""
import gc
import os

import pytest

from models.site.pool import SiteModelPool
import savedmodel_builders as builders

ROWS = [{'x': [0.5, -1.0, 2.0]}, {'x': [1.5, 0.25, -0.75]}]
N_SITES = 400
POOL = 20


def rss_mib() -> float:
  with open('/proc/self/statm', encoding='ascii') as f:
    return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


@pytest.fixture(scope='module')
def many_sites(tmp_path_factory):
  """N_SITES sites of one architecture, each with its own weights."""
  root = tmp_path_factory.mktemp('many_sites')
  source = builders.save_two_layer(str(root / 'site-0' / '1'), builders.two_layer_values(0))
  for i in range(1, N_SITES):
    builders.copy_with_new_weights(source, str(root / f'site-{i}' / '1'), seed=i)
  return str(root)


def serve(pool, sites):
  for site in sites:
    results = pool.get(site).model.predict(ROWS)
    assert all(r.outputs is not None for r in results)


def test_rss_stays_flat_once_the_pool_is_full(many_sites):
  pool = SiteModelPool(model_root=many_sites, signature='serving_default', max_models=POOL)
  sites = [f'site-{i}' for i in range(N_SITES)]
  serve(pool, sites[:100])          # pool full, allocator warmed up
  gc.collect()
  warm = rss_mib()
  serve(pool, sites[100:])          # three times as many sites again
  gc.collect()
  grown = rss_mib() - warm
  assert pool.size == POOL and pool.num_graphs == 1
  # 300 more sites; a full load each would add megabytes per site.
  assert grown < 8, f'RSS grew {grown:.1f} MiB over {N_SITES - 100} sites'


def test_estimated_bytes_stay_under_the_bound(many_sites):
  probe = SiteModelPool(model_root=many_sites, signature='serving_default')
  probe.get('site-0')
  bound = probe.num_bytes + 10 * probe.get('site-0').model.num_bytes
  pool = SiteModelPool(model_root=many_sites, signature='serving_default',
                       max_models=10_000, max_bytes=bound)
  for i in range(60):
    pool.get(f'site-{i}')
    assert pool.num_bytes <= bound
  assert pool.size == 11
