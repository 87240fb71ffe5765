"""The per-worker site model pool: lazy loads, bounds, failures, threads; and the handler."""
import concurrent.futures
import threading

import numpy as np
import pytest

from common.failures import RecordFailure
from models.site import pool as site_model_pool
from models.site.site_model import load_site_model
from models.site.handler import SiteChunk
from models.site.handler import SiteModelHandler
from models.site.layout import ModelLocation
from models.site.layout import locate
import savedmodel_builders


class FakeModel:

  def __init__(self, location, num_bytes):
    self.location = location
    self.num_bytes = num_bytes
    self.load_ms = 1.0
    self.fast_path = False


class CountingLoader:
  """Loads instantly; records which sites it loaded, in order."""

  def __init__(self, num_bytes=10):
    self.loaded = []
    self.num_bytes = num_bytes
    self._lock = threading.Lock()

  def __call__(self, location, signature):
    with self._lock:
      self.loaded.append(location.site_id)
    return FakeModel(location, self.num_bytes)


@pytest.fixture
def root(tmp_path):
  for site in 'abcdefgh':
    (tmp_path / site / '1').mkdir(parents=True)
    (tmp_path / site / '1' / 'saved_model.pb').write_bytes(b'x')
  return str(tmp_path)


def make_pool(root, loader, **bounds):
  return site_model_pool.SiteModelPool(model_root=root,
                                       signature='serving_default',
                                       loader=loader,
                                       **bounds)


def test_loads_once_and_evicts_least_recently_used_by_count(root):
  loader = CountingLoader()
  pool = make_pool(root, loader, max_models=2)
  assert pool.get('a').loaded_now and not pool.get('a').loaded_now
  pool.get('b')
  pool.get('a')  # a is now most recent
  pool.get('c')  # evicts b
  assert pool.size == 2
  pool.get('a')
  pool.get('b')
  assert loader.loaded == ['a', 'b', 'c', 'b']


def test_byte_bound_evicts_but_keeps_the_model_just_loaded(root):
  loader = CountingLoader(num_bytes=60)
  pool = make_pool(root, loader, max_models=100, max_bytes=100)
  pool.get('a')
  pool.get('b')
  assert pool.size == 1 and pool.num_bytes == 60
  assert pool.get('b').loaded_now is False


def test_permanent_failures_are_remembered(root):
  loader = CountingLoader()
  pool = make_pool(root, loader)
  for _ in range(3):
    with pytest.raises(RecordFailure) as e:
      pool.get('missing')
    assert e.value.reason == 'no_model'
  assert loader.loaded == []


def test_concurrent_threads_load_each_site_once_and_get_their_own_model(root):
  loader = CountingLoader()
  pool = make_pool(root, loader, max_models=3)
  sites = list('abcdefgh') * 25
  with concurrent.futures.ThreadPoolExecutor(8) as ex:
    got = list(ex.map(lambda s: (s, pool.get(s).model.location.site_id), sites))
  assert all(want == have for want, have in got)
  assert pool.size <= 3


def test_layout_versions_pin_and_failures(tmp_path):
  savedmodel_builders.save_linear(str(tmp_path / 's' / '9'), [1.0], 0.0)
  savedmodel_builders.save_linear(str(tmp_path / 's' / '10'), [1.0], 0.0)
  (tmp_path / 's' / 'notes').mkdir()
  assert locate(str(tmp_path), 's').version == '10'
  assert locate(str(tmp_path), 's', '9').path.endswith('9')
  with pytest.raises(RecordFailure, match='version 3') as e:
    locate(str(tmp_path), 's', '3')
  assert e.value.reason == 'no_model'
  (tmp_path / 'hollow' / '1').mkdir(parents=True)
  with pytest.raises(RecordFailure) as e:
    locate(str(tmp_path), 'hollow')
  assert e.value.reason == 'model_load_failed'


def test_missing_signature_is_a_load_failure_naming_the_ones_present(tmp_path):
  path = savedmodel_builders.save_linear(str(tmp_path / 'm'), [1.0, 2.0], 0.0)
  with pytest.raises(RecordFailure, match="serving_default") as e:
    load_site_model(ModelLocation('m', path, None), 'predict')
  assert e.value.reason == 'model_load_failed'


def test_model_bytes_count_variables_and_graph(tmp_path):
  path = savedmodel_builders.save_linear(str(tmp_path / 'm'), [1.0] * 1000, 0.0)
  model = load_site_model(ModelLocation('m', path, None), 'serving_default')
  graph = (tmp_path / 'm' / 'saved_model.pb').stat().st_size
  assert model.num_bytes == 1001 * 4 + graph


def test_handler_batching_is_explicit_and_pool_is_per_process():
  handler = SiteModelHandler(model_root='/models', chunks_per_batch=3)
  assert handler.batch_elements_kwargs() == {'min_batch_size': 1, 'max_batch_size': 3}
  assert handler.share_model_across_processes() is False
  small = handler.get_num_bytes([SiteChunk('a', [{'x': 1.0}])])
  large = handler.get_num_bytes([SiteChunk('a', [{'x': 1.0}] * 10)])
  assert 0 < small and large == 10 * small
  # Chunks cut from packed rows carry their JSON size, counted as it is.
  assert handler.get_num_bytes([SiteChunk('a', [{
      'x': 1.0
  }], ['f'], 9), SiteChunk('b', [], [], 4)]) == 13


def test_handler_isolates_sites_and_rows(tmp_path):
  savedmodel_builders.save_linear(str(tmp_path / 'good' / '1'), [2.0], 1.0)
  handler = SiteModelHandler(model_root=str(tmp_path))
  pool = handler.load_model()
  results = handler.run_inference([
      SiteChunk('good', [{
          'x': [1.0]
      }, {
          'x': 'no'
      }, {
          'x': [3.0]
      }]),
      SiteChunk('absent', [{
          'x': [1.0]
      }])
  ], pool)
  good, absent = [r.inference for r in results]
  assert good.model_loaded and good.model_version == '1'
  assert [(r.index, r.reason) for r in good.rows] == [(0, None), (1, 'bad_feature'), (2, None)]
  np.testing.assert_allclose([good.rows[0].outputs['y'], good.rows[2].outputs['y']], [3.0, 7.0])
  assert [r.reason for r in absent.rows] == ['no_model']
