"""The architecture key: equal for exports of one program, different for anything else."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.core.protobuf import trackable_object_graph_pb2

from models.site import architecture_key
from models.site import variable_restore
from models.site.architecture_key import NotShareable
import savedmodel_builders
from savedmodel_builders import TWO_LAYER_VARIABLES
from savedmodel_builders import save_two_layer
from savedmodel_builders import two_layer_values

NAMES = list(TWO_LAYER_VARIABLES)


def key(path):
  return architecture_key.read_architecture(path, 'serving_default').key


def checkpoint_names(path):
  """checkpoint key -> variable name, from the checkpoint's object graph."""
  reader = tf.train.load_checkpoint(variable_restore.checkpoint_prefix(path))
  graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(
      reader.get_tensor('_CHECKPOINTABLE_OBJECT_GRAPH'))
  return {a.checkpoint_key: a.full_name for n in graph.nodes for a in n.attributes}


def test_exports_with_other_variable_orders_share_a_key_and_read_by_identity(tmp_path):
  a = save_two_layer(str(tmp_path / 'a'), two_layer_values(1))
  b = save_two_layer(str(tmp_path / 'b'), two_layer_values(2), order=NAMES[::-1])
  assert key(a) == key(b)
  # The trap: list positions name other variables of the same shape in b.
  assert checkpoint_names(a)['all_variables/1/.ATTRIBUTES/VARIABLE_VALUE'] == 'hidden/bias'
  assert checkpoint_names(b)['all_variables/1/.ATTRIBUTES/VARIABLE_VALUE'] == 'mix/bias'
  arch_b = architecture_key.read_architecture(b, 'serving_default')
  assert [v.name for v in arch_b.variables] == NAMES   # capture order
  weights = variable_restore.read_weights(b, arch_b)
  for variable, value in zip(arch_b.variables, weights):
    np.testing.assert_array_equal(value, two_layer_values(2)[variable.name])


def test_generated_function_numbers_do_not_matter(tmp_path):
  a = save_two_layer(str(tmp_path / 'a'), two_layer_values(1))
  for i in range(5):   # shifts the process-wide function and tensor ids
    tf.function(lambda x, i=i: x * i).get_concrete_function(tf.TensorSpec([None]))
  b = save_two_layer(str(tmp_path / 'b'), two_layer_values(2))
  def functions(path):
    with open(os.path.join(path, 'saved_model.pb'), 'rb') as f:
      graph = saved_model_pb2.SavedModel.FromString(f.read()).meta_graphs[0].graph_def
    return {f.signature.name for f in graph.library.function}
  assert functions(a) != functions(b)
  assert key(a) == key(b)


@pytest.mark.parametrize('change', [
    {'activation': 'tanh'},            # same variables and shapes, other activation
    {'input_name': 'features'},        # same program, other signature input
    {'output_name': 'score'},          # same program, other signature output
    {'constant': 1.0},                 # an extra captured constant
])
def test_near_misses_do_not_share(tmp_path, change):
  a = save_two_layer(str(tmp_path / 'a'), two_layer_values(1))
  b = save_two_layer(str(tmp_path / 'b'), two_layer_values(1), **change)
  assert key(a) != key(b)


def test_captured_constants_are_part_of_the_key(tmp_path):
  a = save_two_layer(str(tmp_path / 'a'), two_layer_values(1), constant=2.0)
  b = save_two_layer(str(tmp_path / 'b'), two_layer_values(2), constant=2.0)
  c = save_two_layer(str(tmp_path / 'c'), two_layer_values(1), constant=3.0)
  assert key(a) == key(b) != key(c)


def test_same_named_variables_are_told_apart_by_path(tmp_path):
  # tf.Module variables left as "Variable": identity adds the object path.
  a = savedmodel_builders.save_linear(str(tmp_path / 'a'), [1.0, 2.0], 0.5)
  b = savedmodel_builders.save_linear(str(tmp_path / 'b'), [3.0, 4.0], -1.0)
  arch = architecture_key.read_architecture(a, 'serving_default')
  assert [(v.name, v.path) for v in arch.variables] == [('Variable', 'w'), ('Variable', 'b')]
  assert key(a) == key(b)
  assert key(a) != key(savedmodel_builders.save_linear(str(tmp_path / 'c'), [1.0] * 3, 0.0))


@pytest.mark.parametrize('save, reason', [
    (savedmodel_builders.save_counter, 'changes a variable'),
    (savedmodel_builders.save_lookup, 'captures a resource')])
def test_stateful_or_resource_signatures_are_not_shareable(tmp_path, save, reason):
  with pytest.raises(NotShareable, match=reason):
    key(save(str(tmp_path / 'm')))


def test_unreadable_metadata_is_not_shareable(tmp_path):
  path = save_two_layer(str(tmp_path / 'a'), two_layer_values(1))
  with pytest.raises(NotShareable, match='no signature'):
    architecture_key.read_architecture(path, 'predict')
  (tmp_path / 'a' / 'saved_model.pb').write_bytes(b'\x00garbage\xff' * 10)
  with pytest.raises(NotShareable, match='cannot parse'):
    key(path)
  with pytest.raises(NotShareable, match='cannot parse'):
    key(str(tmp_path / 'missing'))


_EXPORT = '''
import sys
import numpy as np
from samples import energy_sites
profile = energy_sites.random_profile(np.random.default_rng(int(sys.argv[2])))
energy_sites.export_site_model(sys.argv[1], profile)
'''


@pytest.mark.slow
def test_keras_exports_from_separate_processes_share_a_key(tmp_path):
  """Two trainings of the sample's Keras model, each exported by a fresh process."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, PYTHONPATH=repo)
  procs = [subprocess.Popen([sys.executable, '-c', _EXPORT, str(tmp_path / f'k{i}'), str(i)],
                            env=env, cwd=repo) for i in range(2)]
  assert [p.wait(timeout=300) for p in procs] == [0, 0]
  paths = [str(tmp_path / f'k{i}') for i in range(2)]
  assert key(paths[0]) == key(paths[1])
  from models.site.shared_graphs import SharedGraphs  # pylint: disable=import-outside-toplevel
  from models.site.shared_graphs import load_sharing_graphs  # pylint: disable=import-outside-toplevel
  from models.site.layout import ModelLocation  # pylint: disable=import-outside-toplevel
  graphs = SharedGraphs()
  rows = [{'temperature_c': t, 'occupancy': 0.5, 'floor_area_m2': 1200} for t in (-3.0, 20.0, 31.5)]
  for i, path in enumerate(paths):
    model = load_sharing_graphs(ModelLocation(f'k{i}', path, None), 'serving_default', graphs)
    assert model.fast_path == (i == 1)
    got = [r.outputs['energy_kwh'] for r in model.predict(rows)]
    want = [savedmodel_builders.call_directly(path, row)['energy_kwh'] for row in rows]
    np.testing.assert_array_equal(got, want)
