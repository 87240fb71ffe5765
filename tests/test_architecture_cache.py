"""Architectures remembered by file identity: reloading an evicted site does no key work."""
import os
import time

import numpy as np
import pytest

from models.site import architecture_cache
from models.site import architecture_key
from models.site.architecture_key import NotShareable
from models.site.pool import SiteModelPool
import savedmodel_builders as builders

ROWS = builders.keras_rows(4, 5)


@pytest.fixture(name='key_reads')
def fixture_key_reads(monkeypatch):
  """Counts real reads of ``saved_model.pb`` for a key, by folder."""
  reads = []
  real = architecture_key.read_architecture

  def counted(model_dir, signature_name, **kwargs):
    reads.append(os.path.basename(os.path.dirname(model_dir)))
    return real(model_dir, signature_name, **kwargs)

  monkeypatch.setattr(architecture_cache, 'read_architecture', counted)
  return reads


def outputs(pool, site):
  return np.asarray([r.outputs['energy_kwh'] for r in pool.get(site).model.predict(ROWS)])


def test_an_evicted_site_loads_again_without_key_work_and_predicts_the_same(tmp_path, key_reads):
  for i in range(3):
    builders.save_site_module(str(tmp_path / f's{i}' / '1'), i)
  pool = SiteModelPool(model_root=str(tmp_path), signature='serving_default', max_models=2)
  first = {s: outputs(pool, s) for s in ('s0', 's1', 's2')}  # s0 evicted by s2
  assert key_reads == ['s0', 's1', 's2']
  again = outputs(pool, 's0')
  assert key_reads == ['s0', 's1', 's2']  # remembered: no second read
  assert pool.get('s0').loaded_now is False
  np.testing.assert_array_equal(again, first['s0'])
  np.testing.assert_array_equal(
      again,
      builders.full_load_outputs(str(tmp_path / 's0' / '1'), ROWS)['energy_kwh'])


def test_a_file_exported_again_in_place_is_read_again(tmp_path, key_reads):
  path = str(tmp_path / 's0' / '1')
  builders.save_site_module(path, 0)
  cache = architecture_cache.ArchitectureCache()
  before = cache.read(path, 'serving_default')
  time.sleep(0.01)
  builders.save_site_module(path, 0, units=6)  # another architecture, same folder
  after = cache.read(path, 'serving_default')
  assert len(key_reads) == 2 and before.key != after.key
  assert after.key == architecture_key.read_architecture(path, 'serving_default').key


def test_a_file_that_cannot_share_is_remembered_as_such(tmp_path, key_reads):
  path = builders.save_counter(str(tmp_path / 'counter' / '1'))
  cache = architecture_cache.ArchitectureCache()
  for _ in range(3):
    with pytest.raises(NotShareable, match='changes a variable'):
      cache.read(path, 'serving_default')
  assert len(key_reads) == 1
  with pytest.raises(NotShareable):  # another signature name is another entry
    cache.read(path, 'other')
  assert len(key_reads) == 2


def test_the_cache_forgets_least_recently_used_files_beyond_its_bound(tmp_path, key_reads):
  paths = [builders.save_site_module(str(tmp_path / f's{i}' / '1'), i) for i in range(3)]
  size = os.path.getsize(os.path.join(paths[0], 'saved_model.pb'))
  cache = architecture_cache.ArchitectureCache(max_bytes=2 * size + size // 2)
  for path in paths + paths[2:]:
    cache.read(path, 'serving_default')
  assert cache.size == 2 and len(key_reads) == 3
  cache.read(paths[0], 'serving_default')  # forgotten first
  assert len(key_reads) == 4


def test_sites_of_one_architecture_share_one_program_which_goes_with_its_last_entry(
    tmp_path, key_reads):
  paths = [builders.save_site_module(str(tmp_path / f's{i}' / '1'), i) for i in range(3)]
  size = os.path.getsize(os.path.join(paths[0], 'saved_model.pb'))
  cache = architecture_cache.ArchitectureCache(max_bytes=2 * size + size // 2)
  first, second = (cache.read(p, 'serving_default') for p in paths[:2])
  again = cache.read(paths[1], 'serving_default')  # remembered
  assert first.key == second.key and again.program is cache.read(paths[0],
                                                                 'serving_default').program
  # Each site keeps its own variables (values are bound by role, found by node id).
  assert again.variables == architecture_key.read_architecture(paths[1],
                                                               'serving_default').variables
  builders.save_site_module(str(tmp_path / 'other' / '1'), 0, units=6)
  for path in paths[2:] + [str(tmp_path / 'other' / '1')] * 2:
    cache.read(path, 'serving_default')  # s0 and s1 forgotten
  assert cache.size == 2
  assert len(cache._programs) == 2 and sum(cache._holders.values()) == 2  # pylint: disable=protected-access
