"""The architecture key: equal for exports of one program however named, else different."""
import os
import random
import subprocess
import sys

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import function_pb2
from tensorflow.core.framework import node_def_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.core.protobuf import trackable_object_graph_pb2

from models.site import architecture_key
from models.site import canonical_function
from models.site import variable_restore
from models.site.architecture_key import NotShareable
import savedmodel_builders as builders
from savedmodel_builders import TWO_LAYER_VARIABLES
from savedmodel_builders import save_two_layer
from savedmodel_builders import two_layer_values

NAMES = list(TWO_LAYER_VARIABLES)


def arch(path, signature='serving_default'):
  return architecture_key.read_architecture(path, signature)


def key(path, signature='serving_default'):
  return arch(path, signature).key


def checkpoint_names(path):
  """checkpoint key -> variable name, from the checkpoint's object graph."""
  reader = tf.train.load_checkpoint(variable_restore.checkpoint_prefix(path))
  graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(
      reader.get_tensor('_CHECKPOINTABLE_OBJECT_GRAPH'))
  return {a.checkpoint_key: a.full_name for n in graph.nodes for a in n.attributes}


def library(path):
  with open(os.path.join(path, 'saved_model.pb'), 'rb') as f:
    graph = saved_model_pb2.SavedModel.FromString(f.read()).meta_graphs[0].graph_def
  return {f.signature.name: f for f in graph.library.function}


@pytest.fixture(scope='module')
def keras_loop(tmp_path_factory):
  """Keras sites from one training loop in this process: explicit and generated names."""
  root = tmp_path_factory.mktemp('keras_loop')
  named = [builders.export_keras(str(root / f'named{i}'), i) for i in range(3)]
  generated = [builders.export_keras(str(root / f'gen{i}'), 10 + i, named=False) for i in range(3)]
  return named, generated


def test_a_keras_training_loop_shares_one_key_whatever_the_layer_names(keras_loop):
  named, generated = keras_loop
  # The trap: node names carry the model scope, which counts up per model.
  scopes = [{
      n.name.split('/')[0]
      for f in library(p).values()
      for n in f.node_def if '/' in n.name
  } for p in named]
  assert len({frozenset(s) for s in scopes}) == 3
  assert len({v.name for p in generated for v in arch(p).variables}) == 12  # dense, dense_1, ...
  assert len({key(p) for p in named + generated}) == 1


def test_roles_not_names_say_which_value_goes_where(keras_loop):
  _, generated = keras_loop
  first, second = arch(generated[0]), arch(generated[1])
  assert [v.name for v in first.variables] != [v.name for v in second.variables]
  assert [v.role for v in first.variables] == [v.role for v in second.variables]
  assert [(v.dtype, v.shape) for v in first.variables] == [(v.dtype, v.shape)
                                                           for v in second.variables]
  assert len({v.role for v in first.variables}) == 4


def test_plain_modules_with_unnamed_variables_share_a_key(tmp_path):
  paths = [builders.save_site_module(str(tmp_path / f'm{i}'), i) for i in range(3)]
  assert {v.name for v in arch(paths[0]).variables} == {'Variable'}
  assert len({key(p) for p in paths}) == 1
  assert key(builders.save_site_module(str(tmp_path / 'wider'), 9, units=5)) != key(paths[0])


def test_exports_with_other_variable_orders_share_a_key_and_read_by_identity(tmp_path):
  a = save_two_layer(str(tmp_path / 'a'), two_layer_values(1))
  b = save_two_layer(str(tmp_path / 'b'), two_layer_values(2), order=NAMES[::-1])
  assert key(a) == key(b)
  # The trap: list positions name other variables of the same shape in b.
  assert checkpoint_names(a)['all_variables/1/.ATTRIBUTES/VARIABLE_VALUE'] == 'hidden/bias'
  assert checkpoint_names(b)['all_variables/1/.ATTRIBUTES/VARIABLE_VALUE'] == 'mix/bias'
  arch_b = arch(b)
  weights = variable_restore.read_weights(b, arch_b)
  for variable, value in zip(arch_b.variables, weights):
    np.testing.assert_array_equal(value, two_layer_values(2)[variable.name])


def test_generated_function_numbers_do_not_matter(tmp_path):
  a = save_two_layer(str(tmp_path / 'a'), two_layer_values(1))
  for i in range(5):  # shifts the process-wide function and tensor ids
    tf.function(lambda x, i=i: x * i).get_concrete_function(tf.TensorSpec([None]))
  b = save_two_layer(str(tmp_path / 'b'), two_layer_values(2))
  assert set(library(a)) != set(library(b))
  assert key(a) == key(b)


def test_swapped_biases_are_a_renaming_bound_by_role(tmp_path):
  """Same program with the two equal-shape biases' names swapped: one key, other roles per name."""
  plain = save_two_layer(str(tmp_path / 'plain'), two_layer_values(1))
  swapped = save_two_layer(str(tmp_path / 'swapped'), two_layer_values(1), wiring='swapped')
  assert key(plain) == key(swapped)
  role = {path: {v.name: v.role for v in arch(path).variables} for path in (plain, swapped)}
  assert role[plain]['hidden/bias'] == role[swapped]['mix/bias']
  assert role[plain]['mix/bias'] == role[swapped]['hidden/bias']


@pytest.mark.parametrize(
    'change',
    [
        {
            'activation': 'tanh'
        },  # same variables and shapes, other activation
        {
            'wiring': 'after'
        },  # same variables, one wired to another op
        {
            'input_name': 'features'
        },  # same program, other signature input
        {
            'output_name': 'score'
        },  # same program, other signature output
        {
            'constant': 1.0
        },  # an extra captured constant
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


def test_keras_constants_and_activations_are_part_of_the_key(tmp_path):
  base = builders.export_keras(str(tmp_path / 'base'), 1)
  other_mean = builders.export_keras(str(tmp_path / 'mean'), 1, mean=(14.0, 0.5, 2500.0))
  assert key(other_mean) != key(base)
  assert key(builders.export_keras(str(tmp_path / 'tanh'), 1, activation='tanh')) != key(base)


def test_the_signature_name_is_part_of_the_key(tmp_path):
  both = save_two_layer(str(tmp_path / 'a'),
                        two_layer_values(1),
                        signature_names=('serving_default', 'score'))
  assert key(both, 'serving_default') != key(both, 'score')


@pytest.mark.parametrize('save, reason', [(builders.save_counter, 'changes a variable'),
                                          (builders.save_lookup, 'captures a resource')])
def test_stateful_or_resource_signatures_are_not_shareable(tmp_path, save, reason):
  with pytest.raises(NotShareable, match=reason):
    key(save(str(tmp_path / 'm')))


def test_unreadable_metadata_is_not_shareable(tmp_path):
  path = save_two_layer(str(tmp_path / 'a'), two_layer_values(1))
  with pytest.raises(NotShareable, match='no signature'):
    arch(path, 'predict')
  (tmp_path / 'a' / 'saved_model.pb').write_bytes(b'\x00garbage\xff' * 10)
  with pytest.raises(NotShareable, match='cannot parse'):
    key(path)
  with pytest.raises(NotShareable, match='cannot parse'):
    key(str(tmp_path / 'missing'))


# Canonical functions: renaming and reordering never matter, edits always do.


@pytest.fixture(scope='module')
def keras_body(tmp_path_factory):
  """The Keras model's inner function (concat, normalization, two dense layers)."""
  path = builders.export_keras(str(tmp_path_factory.mktemp('body') / 'm'), 3)
  functions = library(path)
  name = max(functions, key=lambda n: len(functions[n].node_def) * ('_call_' in n))
  return functions[name]


def no_library(unused_name):
  return None


def renamed_and_shuffled(function, rng: random.Random):
  """``function`` with every node and argument renamed and the nodes in another order."""
  out = function_pb2.FunctionDef()
  out.CopyFrom(function)
  nodes = {n.name: f'x{rng.randrange(10**9)}_{i}' for i, n in enumerate(out.node_def)}
  args = {a.name: f'arg{rng.randrange(10**9)}_{i}' for i, a in enumerate(out.signature.input_arg)}

  def rename(ref):
    if ref.startswith('^'):
      return '^' + nodes[ref[1:]]
    head, _, rest = ref.partition(':')
    return args[ref] if not rest else f'{nodes[head]}:{rest}'

  for node in out.node_def:
    node.name = nodes[node.name]
    inputs = [rename(r) for r in node.input]
    data = [r for r in inputs if not r.startswith('^')]
    control = [r for r in inputs if r.startswith('^')]
    rng.shuffle(control)
    del node.input[:]
    node.input.extend(data + control)
  for arg in out.signature.input_arg:
    arg.name = args[arg.name]
  for name in list(out.ret):
    out.ret[name] = rename(out.ret[name])
  targets = dict(out.control_ret)
  out.ClearField('control_ret')
  del out.signature.control_output[:]
  for name, target in targets.items():
    out.control_ret['c_' + nodes[target]] = nodes[target]
    out.signature.control_output.append('c_' + nodes[target])
  order = list(out.node_def)
  rng.shuffle(order)
  shuffled = [node_def_pb2.NodeDef.FromString(n.SerializeToString()) for n in order]
  del out.node_def[:]
  out.node_def.extend(shuffled)
  return out


@settings(max_examples=25,
          deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_renaming_and_reordering_nodes_never_changes_the_canonical_form(keras_body, seed):
  original = canonical_function.canonicalize(keras_body, no_library)
  shuffled = renamed_and_shuffled(keras_body, random.Random(seed))
  other = canonical_function.canonicalize(shuffled, no_library)
  assert other.name == original.name
  assert other.definition.SerializeToString(deterministic=True) == \
      original.definition.SerializeToString(deterministic=True)
  assert other.arg_uses == original.arg_uses


@settings(max_examples=25,
          deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), edit=st.sampled_from(['op', 'attr', 'swap', 'rewire']))
def test_any_edit_of_the_computation_changes_the_canonical_form(keras_body, seed, edit):
  rng = random.Random(seed)
  changed = function_pb2.FunctionDef()
  changed.CopyFrom(keras_body)
  candidates = [
      n for n in changed.node_def
      if edit != 'swap' or len([i for i in n.input if not i.startswith('^')]) >= 2
  ]
  node = rng.choice(candidates)
  data = [i for i, ref in enumerate(node.input) if not ref.startswith('^')]
  if edit == 'op':
    node.op = node.op + 'X'
  elif edit == 'attr':
    node.attr['_edit'].i = 1
  elif edit == 'swap':
    first, second = data[0], data[1]
    if node.input[first] == node.input[second]:
      node.input[first] = changed.signature.input_arg[0].name
    else:
      node.input[first], node.input[second] = node.input[second], node.input[first]
  else:  # feed an input from an argument instead
    slot = rng.choice(data) if data else None
    if slot is None:
      node.input.insert(0, changed.signature.input_arg[0].name)
    else:
      current = node.input[slot]
      args = [a.name for a in changed.signature.input_arg if a.name != current]
      node.input[slot] = rng.choice(args)
  assert canonical_function.canonicalize(changed, no_library).name != \
      canonical_function.canonicalize(keras_body, no_library).name


_EXPORT = '''
import sys
sys.path.insert(0, sys.argv[3])
import savedmodel_builders
savedmodel_builders.export_keras(sys.argv[1], int(sys.argv[2]), train=True)
'''


@pytest.mark.slow
def test_keras_trainings_exported_by_separate_processes_share_a_key(tmp_path):
  """Two trainings (``fit``), each exported by a fresh process, against one in this process."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  tests = os.path.join(repo, 'tests')
  env = dict(os.environ, PYTHONPATH=repo)
  procs = [
      subprocess.Popen([sys.executable, '-c', _EXPORT,
                        str(tmp_path / f'k{i}'),
                        str(i), tests],
                       env=env,
                       cwd=repo) for i in range(2)
  ]
  assert [p.wait(timeout=600) for p in procs] == [0, 0]
  paths = [str(tmp_path / f'k{i}') for i in range(2)]
  here = builders.export_keras(str(tmp_path / 'here'), 5)
  assert key(paths[0]) == key(paths[1]) == key(here)
  from models.site.shared_graphs import SharedGraphs  # pylint: disable=import-outside-toplevel
  from models.site.shared_graphs import load_sharing_graphs  # pylint: disable=import-outside-toplevel
  from models.site.layout import ModelLocation  # pylint: disable=import-outside-toplevel
  graphs = SharedGraphs()
  rows = builders.keras_rows(0)
  for i, path in enumerate([here] + paths):
    model = load_sharing_graphs(ModelLocation(f'k{i}', path, None), 'serving_default', graphs)
    assert model.fast_path == (i > 0)
    got = np.asarray([r.outputs['energy_kwh'] for r in model.predict(rows)])
    assert np.array_equal(got, builders.full_load_outputs(path, rows)['energy_kwh'])
