"""Templates of known architectures: a match gives the full canonicalization's result, or none.

Every export here has the layout the cheap check looks for first (the same
signature function ops and arguments as the template); each near miss
differs from a template's export in one attribute, one edge, one op, one
callee: it must not match, and its key is the one a full read gives.
"""
import os
import shutil

import numpy as np
import pytest
from tensorflow.core.protobuf import saved_model_pb2

from models.site import architecture_key
from models.site.known_functions import KnownFunctions
from models.site.pool import SiteModelPool
import savedmodel_builders as builders

SIGNATURE = 'serving_default'


@pytest.fixture(scope='module')
def sites(tmp_path_factory):
  """Keras sites from one training loop: the names differ from one export to the next."""
  root = tmp_path_factory.mktemp('known')
  return [builders.export_keras(str(root / f'k{i}'), i) for i in range(5)]


def read(path, known=None):
  return architecture_key.read_architecture(path, SIGNATURE, known=known)


def learned(paths):
  """KnownFunctions that read ``paths`` (a template is made the second time a key is seen)."""
  known = KnownFunctions()
  for path in paths:
    read(path, known)
  return known


def same_architecture(a, b):
  functions = [[f.SerializeToString(deterministic=True) for f in x.program.functions]
               for x in (a, b)]
  return (a.key == b.key and a.variables == b.variables and functions[0] == functions[1]
          and a.program.function_name == b.program.function_name
          and a.program.constants == b.program.constants)


def edited(source, target, edit):
  """A copy of export ``source`` whose signature functions went through ``edit(library, root,
  inner)`` (the signature's function, the function it calls), saved as TensorFlow saves."""
  shutil.copytree(source, target)
  path = os.path.join(target, 'saved_model.pb')
  with open(path, 'rb') as f:
    saved_model = saved_model_pb2.SavedModel.FromString(f.read())
  meta = saved_model.meta_graphs[0]
  root_name, _ = architecture_key._signature_function(  # pylint: disable=protected-access
      meta.object_graph_def, SIGNATURE)
  functions = {f.signature.name: f for f in meta.graph_def.library.function}
  root = functions[root_name]
  call = next(n for n in root.node_def if n.op == 'StatefulPartitionedCall')
  edit(meta.graph_def.library, root, functions[call.attr['f'].func.name])
  with open(path, 'wb') as f:
    f.write(saved_model.SerializeToString(deterministic=True))
  return target


def node(function, op):
  return next(n for n in function.node_def if n.op == op)


def change_constant(library, root, inner):
  del library, root
  const = node(inner, 'Const')
  const.attr['value'].tensor.float_val.append(0.5)


def swap_add_inputs(library, root, inner):
  del library, root
  add = next(n for n in inner.node_def if n.op == 'AddV2' and len(set(n.input[:2])) == 2)
  add.input[0], add.input[1] = add.input[1], add.input[0]


def drop_a_control_input(library, root, inner):
  del library, root
  noop = next(n for n in inner.node_def if any(i.startswith('^') for i in n.input))
  first = next(i for i in noop.input if i.startswith('^'))
  noop.input.remove(first)


def relu6(library, root, inner):
  del library, root
  node(inner, 'Relu').op = 'Relu6'


def call_an_edited_copy(library, root, inner):
  copy = library.function.add()
  copy.CopyFrom(inner)
  copy.signature.name = inner.signature.name + '_copy'
  node(copy, 'Relu').attr['_edit'].i = 1
  node(root, 'StatefulPartitionedCall').attr['f'].func.name = copy.signature.name


def swap_root_inputs(library, root, inner):
  del library, inner
  call = node(root, 'StatefulPartitionedCall')
  call.input[0], call.input[1] = call.input[1], call.input[0]


NEAR_MISSES = [
    change_constant, swap_add_inputs, drop_a_control_input, relu6, call_an_edited_copy,
    swap_root_inputs
]


def test_a_known_architecture_matches_with_exactly_the_full_result(sites):
  known = learned(sites[:2])
  assert known.size == 1 and known.matches == 0
  for path in sites[2:]:
    assert same_architecture(read(path, known), read(path))
  assert known.matches == 3
  assert read(sites[0], known).key == read(sites[4]).key


@pytest.mark.parametrize('edit', NEAR_MISSES, ids=lambda e: e.__name__)
def test_a_near_miss_with_the_known_layout_does_not_match(sites, tmp_path, edit):
  known = learned(sites[:2])
  path = edited(sites[2], str(tmp_path / 'near'), edit)
  full = read(path)
  assert full.key != read(sites[2]).key  # the edit changes the program
  assert same_architecture(read(path, known), full)
  assert known.matches == 0


def reverse_control_inputs(library, root, inner):
  del library, root
  for n in inner.node_def:
    data = [i for i in n.input if not i.startswith('^')]
    control = [i for i in n.input if i.startswith('^')]
    del n.input[:]
    n.input.extend(data + control[::-1])


def rename_with_carets(library, root, inner):
  """Every node of the called function renamed ``a/b`` -> ``a^/b``: not plain, same program."""
  del library, root
  names = {n.name: n.name.replace('/', '^/') + '^' for n in inner.node_def}

  def renamed(text):
    if text.startswith('^'):
      return '^' + names[text[1:]]
    head, colon, tail = text.partition(':')
    return names[head] + colon + tail if colon else text

  for n in inner.node_def:
    n.name = names[n.name]
    inputs = [renamed(i) for i in n.input]
    del n.input[:]
    n.input.extend(inputs)
  for key in list(inner.ret):
    inner.ret[key] = renamed(inner.ret[key])
  targets = {key: names[value] for key, value in inner.control_ret.items()}
  inner.ClearField('control_ret')
  for key, value in targets.items():
    inner.control_ret[key] = value


@pytest.mark.parametrize('edit', [lambda *_: None, reverse_control_inputs, rename_with_carets],
                         ids=['as_saved', 'control_inputs_reordered', 'names_not_plain'])
def test_what_canonicalization_ignores_still_matches(sites, tmp_path, edit):
  known = learned(sites[:2])
  path = edited(sites[2], str(tmp_path / 'same'), edit)
  assert read(path).key == read(sites[2]).key
  assert same_architecture(read(path, known), read(path))
  assert known.matches == 1


def colocate(library, root, inner):
  del library, root
  nodes = list(inner.node_def)
  nodes[1].attr['_class'].list.s.append(f'loc:@{nodes[0].name}'.encode())


def test_functions_canonicalization_treats_by_more_than_names_get_no_template(sites, tmp_path):
  """Colocation attributes name nodes inside a value: those functions are always canonicalized."""
  paths = [edited(p, str(tmp_path / f'c{i}'), colocate) for i, p in enumerate(sites[:3])]
  known = learned(paths)
  assert known.size == 0 and known.matches == 0
  assert same_architecture(read(paths[2], known), read(paths[2]))


def test_templates_are_bounded(sites, tmp_path):
  known = KnownFunctions(max_templates=1)
  others = [edited(p, str(tmp_path / f'r{i}'), relu6) for i, p in enumerate(sites[:3])]
  for path in sites[:2] + others[:2]:  # a template of each architecture, the first forgotten
    read(path, known)
  assert known.size == 1
  assert same_architecture(read(others[2], known), read(others[2]))  # the one kept
  assert known.matches == 1
  assert same_architecture(read(sites[3], known), read(sites[3]))  # read in full
  assert known.matches == 1


def test_the_pool_binds_matched_sites_bit_for_bit_as_their_full_loads(sites):
  rows = builders.keras_rows(2, 6)
  root = os.path.dirname(sites[0])
  pool = SiteModelPool(model_root=root, signature=SIGNATURE)
  for path in sites:
    model = pool.get(os.path.basename(path)).model
    got = np.asarray([r.outputs['energy_kwh'] for r in model.predict(rows)])
    assert np.array_equal(got, builders.full_load_outputs(path, rows)['energy_kwh'])
    assert model.fast_path == (path != sites[0])
  assert pool._graphs.architectures.known.matches == 3  # pylint: disable=protected-access
