"""The shared-graph fast path: exact predictions, sharing only one program, fallbacks, threads."""
import concurrent.futures
import os
import random

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
import numpy as np
import pytest
import tensorflow as tf

from beam_jobs.site_predictions import finalize_summary
from models.site import architecture_key
from models.site import shared_graphs
from models.site import variable_restore
from models.site.handler import SiteChunk
from models.site.handler import SiteModelHandler
from models.site.layout import ModelLocation
from models.site.pool import SiteModelPool
from transforms.site.inference import PredictPerSite
from transforms.site.inference import SplitOutcomes
from transforms.site.rows import PackBySite
import savedmodel_builders as builders

NAMES = list(builders.TWO_LAYER_VARIABLES)
ROWS = [{'x': [0.5, -1.0, 2.0]}, {'x': [1.5, 0.25, -0.75]}, {'x': [-2.0, 3.0, 0.1]}]
# Architectures: relu (a b c d nofp), tanh (t1 t2), linear (lin1 lin2), renamed output.
RELU = ['a', 'b', 'c', 'd', 'nofp']


@pytest.fixture(scope='module')
def root(tmp_path_factory):
  """Sites exported the realistic way: fresh modules, other variable orders, new weights."""
  base = tmp_path_factory.mktemp('fast_path')
  sites = base / 'models'
  a = builders.save_two_layer(str(sites / 'a' / '1'), builders.two_layer_values(1))
  b = builders.save_two_layer(str(sites / 'b' / '1'), builders.two_layer_values(2),
                              order=NAMES[::-1])
  builders.copy_with_new_weights(a, str(sites / 'c' / '1'), seed=3)
  builders.copy_with_new_weights(b, str(sites / 'd' / '1'), seed=4)
  builders.copy_with_new_weights(a, str(sites / 'nofp' / '1'), seed=5)
  os.remove(sites / 'nofp' / '1' / 'fingerprint.pb')
  builders.save_two_layer(str(sites / 't1' / '1'), builders.two_layer_values(1),
                          activation='tanh')
  builders.save_two_layer(str(sites / 't2' / '1'), builders.two_layer_values(6),
                          activation='tanh', order=[NAMES[i] for i in (2, 0, 4, 1, 3)])
  builders.save_linear(str(sites / 'lin1' / '1'), [1.0, 2.0, 3.0], 0.5)
  builders.save_linear(str(sites / 'lin2' / '1'), [-1.0, 0.5, 0.25], 2.0)
  builders.save_two_layer(str(sites / 'renamed' / '1'), builders.two_layer_values(1),
                          output_name='score')
  return str(sites)


def full_load_outputs(path, rows):
  """A site's outputs from its own ``tf.saved_model.load``."""
  fn = tf.saved_model.load(path).signatures['serving_default']
  outputs = fn(x=tf.constant([r['x'] for r in rows], tf.float32))
  return {name: value.numpy().tolist() for name, value in outputs.items()}


@pytest.fixture(scope='module')
def expected(root):
  return {site: full_load_outputs(os.path.join(root, site, '1'), ROWS)
          for site in os.listdir(root)}


def outputs_of(model, rows=ROWS):
  results = model.predict(rows)
  assert [r.reason for r in results] == [None] * len(rows)
  return {name: [r.outputs[name] for r in results] for name in model.output_names}


def make_pool(root, **kwargs):
  return SiteModelPool(model_root=root, signature='serving_default', **kwargs)


def test_interleaved_sites_predict_exactly_as_their_own_full_load(root, expected):
  pool = make_pool(root)
  order = ['a', 't1', 'b', 'lin1', 'c', 't2', 'renamed', 'd', 'lin2', 'nofp']
  fast = {}
  for site in order + order[::-1] + order:
    model, loaded_now = pool.get(site)
    if loaded_now:
      fast[site] = model.fast_path
    assert outputs_of(model) == expected[site], site   # bit-identical
  # The first site of each program loads its graph; the others only weights.
  assert fast == {'a': False, 't1': False, 'b': True, 'lin1': False, 'c': True,
                  't2': True, 'renamed': False, 'd': True, 'lin2': True, 'nofp': True}
  assert pool.num_graphs == 4


def test_near_misses_do_not_share_a_graph(root):
  keys = {site: architecture_key.read_architecture(os.path.join(root, site, '1'),
                                                   'serving_default').key
          for site in ('a', 'b', 't1', 'renamed')}
  assert keys['a'] == keys['b']
  assert len({keys['a'], keys['t1'], keys['renamed']}) == 3


def test_unreadable_metadata_falls_back_to_a_full_load(root, expected, monkeypatch):
  def unreadable(*unused_args):
    raise architecture_key.NotShareable('simulated unreadable checkpoint')
  graphs = shared_graphs.SharedGraphs()
  location = ModelLocation('a', os.path.join(root, 'a', '1'), '1')
  for target in ('read_weights', 'bound_variables'):
    with monkeypatch.context() as patch:
      patch.setattr(variable_restore, target, unreadable)
      model = shared_graphs.load_sharing_graphs(location, 'serving_default', graphs)
    assert model.graph is None and not model.fast_path
    assert outputs_of(model) == expected['a']
  assert graphs.size == 0


def test_signatures_that_cannot_share_load_in_full(tmp_path):
  for site in ('c1', 'c2'):
    builders.save_counter(str(tmp_path / site / '1'))
  pool = make_pool(str(tmp_path))
  for site in ('c1', 'c2'):
    model = pool.get(site).model
    assert model.graph is None and not model.fast_path
    # Each site keeps its own state, as a full load does.
    assert [r.outputs['y'] for r in model.predict([{'x': 1.0}])] == [2.0]
    assert [r.outputs['y'] for r in model.predict([{'x': 1.0}])] == [3.0]
  assert pool.num_graphs == 0


def test_threads_hammering_interleaved_sites_never_mix_weights(root, expected):
  pool = make_pool(root, max_models=3)   # evictions and reloads while threads run
  rng = random.Random(0)
  tasks = [(rng.choice(RELU + ['t1', 't2', 'lin1', 'lin2']), ROWS[rng.randrange(3):])
           for _ in range(400)]
  def run(task):
    site, rows = task
    return site, rows, outputs_of(pool.get(site).model, rows)
  with concurrent.futures.ThreadPoolExecutor(8) as executor:
    results = list(executor.map(run, tasks))
  for site, rows, got in results:
    skip = len(ROWS) - len(rows)
    assert got == {k: v[skip:] for k, v in expected[site].items()}, site


def test_a_graph_goes_with_the_last_site_using_it(root):
  pool = make_pool(root, max_models=2)
  pool.get('a')
  pool.get('b')
  assert pool.num_graphs == 1
  pool.get('lin1')
  pool.get('lin2')                 # evicts a and b: their graph goes too
  assert pool.size == 2 and pool.num_graphs == 1
  linear_graph = 4 * 4 + os.path.getsize(os.path.join(root, 'lin1', '1', 'saved_model.pb'))
  assert pool.num_bytes == linear_graph + sum(
      pool.get(site).model.num_bytes for site in ('lin1', 'lin2'))
  model, loaded_now = pool.get('c')
  assert loaded_now and not model.fast_path   # the relu graph is loaded again


def test_byte_bound_counts_site_weights_and_shared_graphs(root):
  probe = make_pool(root)
  probe.get('a')
  graph_and_one_site = probe.num_bytes
  site_bytes = probe.get('a').model.num_bytes
  assert site_bytes == sum(np.prod(s) for s in builders.TWO_LAYER_VARIABLES.values()) * 4 \
      + shared_graphs.SITE_OVERHEAD_BYTES
  pool = make_pool(root, max_bytes=graph_and_one_site + 2 * site_bytes)
  for site in RELU:
    pool.get(site)
  assert pool.size == 3 and pool.num_bytes <= graph_and_one_site + 2 * site_bytes


def test_handler_reports_fast_path_loads_and_split_counts_them(root):
  handler = SiteModelHandler(model_root=root)
  pool = handler.load_model()
  results = handler.run_inference([SiteChunk('a', ROWS, ['f'] * 3), SiteChunk('b', ROWS, ['f'] * 3),
                                   SiteChunk('b', ROWS, ['f'] * 3)], pool)
  outcomes = [r.inference for r in results]
  assert [(o.model_loaded, o.model_fast_path) for o in outcomes] == [
      (True, False), (True, True), (False, False)]
  stats = [out.value for r in results for out in SplitOutcomes().process(r)
           if isinstance(out, beam.pvalue.TaggedOutput) and out.tag == 'stats']
  assert stats.count((('models_fast_path',), 1)) == 1
  assert stats.count((('models_loaded',), 1)) == 2
  assert finalize_summary({})['models_fast_path'] == 0


def test_sharing_can_be_switched_off(root):
  pool = SiteModelHandler(model_root=root, share_graphs=False).load_model()
  pool.get('a')
  model = pool.get('b').model
  assert model.graph is None and not model.fast_path and pool.num_graphs == 0


def test_predict_per_site_counts_fast_path_loads_in_beam_metrics(root, expected):
  records = [('input.jsonl', dict(row, site=site)) for site in RELU for row in ROWS]
  pipeline = TestPipeline(runner='FnApiRunner')
  result = (pipeline
            | beam.Create(records)
            | beam.ParDo(PackBySite('site', max_block_rows=2))
            | PredictPerSite(model_root=root, rows_per_chunk=2))
  def check(batches):
    got = {}
    assert max(map(len, batches)) <= 2
    for p in (p for batch in batches for p in batch):
      got.setdefault(p.site_id, []).append((p.instance['x'], p.outputs['y']))
    for site in RELU:
      want = list(zip([r['x'] for r in ROWS], expected[site]['y']))
      assert sorted(got[site]) == sorted(want), site
  assert_that(result.prediction_batches, check)
  run = pipeline.run()
  run.wait_until_finish()
  counters = run.metrics().query(MetricsFilter().with_name('models_fast_path'))['counters']
  assert sum(c.committed for c in counters) == len(RELU) - 1
