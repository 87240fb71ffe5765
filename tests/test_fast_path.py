"""The shared-graph fast path: every export style shares; predictions are a full load's, bitwise."""
import concurrent.futures
import gc
import os
import random

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
import numpy as np
import pytest
from tensorflow.python.eager import context as eager_context

from beam_jobs.site_predictions import finalize_summary
from models.site import architecture_key
from models.site import shared_graphs
from models.site import variable_restore
from models.site.handler import SiteChunk
from models.site.handler import SiteModelHandler
from models.site.layout import ModelLocation
from models.site.pool import SiteModelPool
from transforms.site.inference import PredictPerSite
from transforms.site.inference import SplitOutcomesFn
from transforms.site.grouping import GroupRowsBySite
import savedmodel_builders as builders

NAMES = list(builders.TWO_LAYER_VARIABLES)
ROWS = [{'x': [0.5, -1.0, 2.0]}, {'x': [1.5, 0.25, -0.75]}, {'x': [-2.0, 3.0, 0.1]}]
KERAS_ROWS = builders.keras_rows(1, 6)
# Sites by program; within a group every site after the first takes the fast path.
GROUPS = {
    'keras': ['kn0', 'kn1', 'kn2', 'kg0', 'kg1', 'kg2', 'kv'],  # named, generated, versions
    'module': ['mod0', 'mod1', 'mod2'],  # tf.Module, unnamed variables
    'relu': ['a', 'b', 'swapped'],  # other variable orders, renamed
    'tanh': ['t1', 't2'],
    'after': ['after'],
    'renamed': ['renamed'],
    'const2': ['c2a', 'c2b'],
    'const3': ['c3'],
    'linear': ['lin1', 'lin2'],
    'embedding': ['emb1', 'emb2', 'emb3'],  # graph holds variables
}
SITES = [s for group in GROUPS.values() for s in group]


@pytest.fixture(scope='module')
def root(tmp_path_factory):
  """Sites exported the way users export them, in loops in this process, each with new weights."""
  sites = tmp_path_factory.mktemp('fast_path') / 'models'

  def at(site, version='1'):
    return str(sites / site / version)

  for i in range(3):
    builders.export_keras(at(f'kn{i}'), i)
    builders.export_keras(at(f'kg{i}'), 10 + i, named=False)
    builders.save_site_module(at(f'mod{i}'), 20 + i)
  # Retrained and re-exported: version 2 (another training) must be served.
  builders.export_keras(at('kv', '1'), 30)
  builders.export_keras(at('kv', '2'), 31, named=False, train=True)
  values = builders.two_layer_values
  builders.save_two_layer(at('a'), values(1))
  builders.save_two_layer(at('b'), values(2), order=NAMES[::-1])
  builders.save_two_layer(at('swapped'), values(3), wiring='swapped')
  builders.save_two_layer(at('t1'), values(1), activation='tanh')
  builders.save_two_layer(at('t2'),
                          values(6),
                          activation='tanh',
                          order=[NAMES[i] for i in (2, 0, 4, 1, 3)])
  builders.save_two_layer(at('after'), values(1), wiring='after')
  builders.save_two_layer(at('renamed'), values(1), output_name='score')
  builders.save_two_layer(at('c2a'), values(7), constant=2.0)
  builders.save_two_layer(at('c2b'), values(8), constant=2.0)
  builders.save_two_layer(at('c3'), values(7), constant=3.0)
  builders.save_linear(at('lin1'), [1.0, 2.0, 3.0], 0.5)
  builders.save_linear(at('lin2'), [-1.0, 0.5, 0.25], 2.0)
  for i in range(3):
    builders.save_embedding(at(f'emb{i + 1}'), i)
  return str(sites)


EMBEDDING_ROWS = [{'ids': 3}, {'ids': 0}, {'ids': 4}, {'ids': 3}]


def rows_for(site):
  if site.startswith('emb'):
    return EMBEDDING_ROWS
  return KERAS_ROWS if site.startswith(('k', 'mod')) else ROWS


def served(root, site):
  versions = sorted(os.listdir(os.path.join(root, site)), key=int)
  return os.path.join(root, site, versions[-1])


@pytest.fixture(scope='module')
def expected(root):
  return {site: builders.full_load_outputs(served(root, site), rows_for(site)) for site in SITES}


def outputs_of(model, rows):
  results = model.predict(rows)
  assert [r.reason for r in results] == [None] * len(rows)
  return {name: np.asarray([r.outputs[name] for r in results]) for name in model.output_names}


def assert_bit_equal(got, want, site):
  assert sorted(got) == sorted(want), site
  for name in want:
    assert np.array_equal(got[name], want[name]), (site, name, got[name], want[name])


def make_pool(root, **kwargs):
  return SiteModelPool(model_root=root, signature='serving_default', **kwargs)


def test_every_export_style_shares_and_predicts_exactly_as_its_own_full_load(root, expected):
  pool = make_pool(root)
  order = SITES[:]
  random.Random(0).shuffle(order)
  fast = {}
  for site in order + order[::-1] + order:
    model, loaded_now = pool.get(site)
    if loaded_now:
      fast[site] = model.fast_path
    assert_bit_equal(outputs_of(model, rows_for(site)), expected[site], site)
  for group, sites in GROUPS.items():
    first = min(sites, key=order.index)
    assert {s: fast[s] for s in sites} == {s: s != first for s in sites}, group
  assert pool.num_graphs == len(GROUPS)
  assert pool.get('kv').model.version == '2'
  # By default every graph holds variables: the site's own program, reads included.
  assert not any(pool.get(sites[0]).model.graph.binds_values for sites in GROUPS.values())


def test_bound_values_share_too_and_stay_within_float_rounding(root, expected):
  """``bind_values``: plain reads take each site's values as inputs (the sparse read holds
  variables); oneDNN may fuse that program differently (last bits, e.g. tanh on AVX-512)."""
  pool = make_pool(root, bind_values=True)
  for site in SITES:
    got = outputs_of(pool.get(site).model, rows_for(site))
    for name, want in expected[site].items():
      np.testing.assert_allclose(got[name], want, rtol=1e-6, atol=1e-6, err_msg=site)
  binds = {group: pool.get(sites[0]).model.graph.binds_values for group, sites in GROUPS.items()}
  assert binds == {group: group != 'embedding' for group in GROUPS}
  assert pool.num_graphs == len(GROUPS)


def test_swapped_biases_get_each_value_where_its_own_export_uses_it(root, expected):
  """A name-bound restore would put ``hidden/bias`` into the first layer here; roles do not."""
  pool = make_pool(root)
  pool.get('a')
  model = pool.get('swapped').model
  assert model.fast_path
  assert_bit_equal(outputs_of(model, ROWS), expected['swapped'], 'swapped')
  assert not np.array_equal(
      expected['swapped']['y'],
      builders.full_load_outputs(
          builders.save_two_layer(os.path.join(root, '..', 'plain3'), builders.two_layer_values(3)),
          ROWS)['y'])


def test_near_misses_do_not_share_a_graph(root):
  keys = {
      site: architecture_key.read_architecture(served(root, site), 'serving_default').key
      for site in SITES
  }
  for group, sites in GROUPS.items():
    assert len({keys[s] for s in sites}) == 1, group
  assert len({keys[sites[0]] for sites in GROUPS.values()}) == len(GROUPS)


def test_unreadable_weights_or_a_refused_graph_fall_back_to_a_full_load(
    root, expected, monkeypatch):

  def refuse(*unused_args, **unused_kwargs):
    raise architecture_key.NotShareable('simulated')

  graphs = shared_graphs.SharedGraphs()
  location = ModelLocation('a', served(root, 'a'), '1')
  for target, attribute in ((variable_restore, 'read_weights'), (shared_graphs, 'SharedGraph')):
    with monkeypatch.context() as patch:
      patch.setattr(target, attribute, refuse)
      model = shared_graphs.load_sharing_graphs(location, 'serving_default', graphs)
    assert model.graph is None and not model.fast_path
    assert_bit_equal(outputs_of(model, ROWS), expected['a'], 'a')
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
  pool = make_pool(root, max_models=4)  # evictions and reloads while threads run
  rng = random.Random(0)
  tasks = [(site, rng.randrange(3)) for site in (rng.choice(SITES) for _ in range(300))]

  def run(task):
    site, skip = task
    return site, skip, outputs_of(pool.get(site).model, rows_for(site)[skip:])

  with concurrent.futures.ThreadPoolExecutor(8) as executor:
    results = list(executor.map(run, tasks))
  for site, skip, got in results:
    assert_bit_equal(got, {k: v[skip:] for k, v in expected[site].items()}, site)


def test_a_graph_and_its_functions_go_with_the_last_site_using_it(root):
  pool = make_pool(root, max_models=2)
  pool.get('a')
  graph = pool.get('b').model.graph
  names = graph.function_names
  assert pool.num_graphs == 1 and all(eager_context.context().has_function(n) for n in names)
  pool.get('lin1')
  pool.get('lin2')  # evicts a and b: their graph goes too
  assert pool.size == 2 and pool.num_graphs == 1
  linear = pool.get('lin1').model.graph
  assert pool.num_bytes == linear.num_bytes + sum(
      pool.get(site).model.num_bytes for site in ('lin1', 'lin2'))
  del graph
  gc.collect()
  assert not any(eager_context.context().has_function(n) for n in names)
  model, loaded_now = pool.get('c2a')
  assert loaded_now and not model.fast_path


def test_byte_bound_counts_site_weights_and_shared_graphs(root):
  probe = make_pool(root)
  probe.get('a')
  site_bytes = probe.get('a').model.num_bytes
  assert site_bytes == sum(np.prod(s) for s in builders.TWO_LAYER_VARIABLES.values()) * 4 \
      + shared_graphs.SITE_OVERHEAD_BYTES
  keras = make_pool(root)
  keras_site = keras.get('kn0').model.num_bytes
  bound = keras.num_bytes + 2 * keras_site  # a graph and three sites
  pool = make_pool(root, max_bytes=bound)
  for site in GROUPS['keras']:
    pool.get(site)
    assert pool.num_bytes <= bound
  assert pool.size == 3 and pool.num_graphs == 1


def test_handler_reports_fast_path_loads_and_split_counts_them(root):
  handler = SiteModelHandler(model_root=root)
  pool = handler.load_model()
  results = handler.run_inference([
      SiteChunk('a', ROWS, ['f'] * 3),
      SiteChunk('b', ROWS, ['f'] * 3),
      SiteChunk('b', ROWS, ['f'] * 3)
  ], pool)
  outcomes = [r.inference for r in results]
  assert [(o.model_loaded, o.model_fast_path) for o in outcomes] == [(True, False), (True, True),
                                                                     (False, False)]
  stats = [
      out.value for r in results for out in SplitOutcomesFn().process(r)
      if isinstance(out, beam.pvalue.TaggedOutput) and out.tag == 'stats'
  ]
  assert stats.count((('models_fast_path', ), 1)) == 1
  assert stats.count((('models_loaded', ), 1)) == 2
  assert finalize_summary({})['models_fast_path'] == 0


def test_sharing_can_be_switched_off(root):
  pool = SiteModelHandler(model_root=root, share_graphs=False).load_model()
  pool.get('a')
  model = pool.get('b').model
  assert model.graph is None and not model.fast_path and pool.num_graphs == 0


def test_predict_per_site_counts_fast_path_loads_in_beam_metrics(root):
  """One row per chunk: a row's bits can depend on its batch, so each is compared alone."""
  sites = GROUPS['keras']
  want = {
      site: {
          row['temperature_c']: builders.full_load_outputs(served(root, site),
                                                           [row])['energy_kwh'][0].tolist()
          for row in KERAS_ROWS
      }
      for site in sites
  }
  records = [('input.jsonl', dict(row, site=site)) for site in sites for row in KERAS_ROWS]
  pipeline = TestPipeline(runner='FnApiRunner')
  grouped = (pipeline
             | beam.Create(records)
             | GroupRowsBySite('site', max_block_rows=2, rows_per_chunk=1))
  result = grouped.chunks | PredictPerSite(model_root=root)

  def check(batches):
    got = {}
    assert max(map(len, batches)) == 1
    for p in (p for batch in batches for p in batch):
      got.setdefault(p.site_id, {})[p.instance['temperature_c']] = p.outputs['energy_kwh']
    assert got == want

  assert_that(result.prediction_batches, check)
  run = pipeline.run()
  run.wait_until_finish()
  counters = run.metrics().query(MetricsFilter().with_name('models_fast_path'))['counters']
  assert sum(c.committed for c in counters) == len(sites) - 1
