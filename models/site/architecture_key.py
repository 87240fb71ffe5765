"""An exact "same program" key for a SavedModel signature, without loading it.

Sites trained by one script share an architecture and differ only in their
variable values, so one loaded graph can serve them all if each site's
variables are restored into it. That is only safe when the two SavedModels
compute exactly the same function of (inputs, variables), which this module
decides from ``saved_model.pb`` alone (a protobuf parse, about a millisecond).

``fingerprint.pb`` cannot decide it: its ``graph_def_program_hash`` covers the
whole graph, whose variable nodes (and the save/restore functions) Keras 3
orders differently in every export, so two trainings of one architecture hash
differently; its signature and object-graph hashes ignore the function bodies,
so they would accept different programs. The key here covers exactly what the
signature runs:

- the ``SignatureDef`` of the signature (names, dtypes, shapes of inputs and
  outputs) and the signature's concrete function metadata (argument keywords,
  input and output structure);
- every library function reachable from the signature's function (through
  call ops and function-valued attributes), serialized deterministically with
  the generated function names (``__inference_..._123``, whose numbers depend
  on what the exporting process traced before) replaced by their order of
  discovery and the arguments' ``_user_specified_name`` hints (process-wide
  tensor ids for captures) dropped; every op, attribute, constant, edge and
  arity stays in the key;
- the inputs the signature captures, in capture order: variables by name,
  dtype and shape (not by node id or checkpoint key, which Keras 3 numbers
  differently per export; variables that share a name, such as tf.Module
  variables left as "Variable", also by their first path in the object
  graph, e.g. ``dense/w``), constants (e.g. a Keras ``Normalization``
  layer's mean) by their full value.

Everything else in the file (top-level graph nodes, save/restore functions,
unused variables, other signatures) does not run when the signature is called
and is left out. A signature that captures anything but variables (assets,
lookup tables) or assigns to its variables is not shareable: such sites
are loaded fully, each on its own.
"""
import hashlib
import os
import re
from typing import Dict, List, NamedTuple, Tuple

from tensorflow.core.framework import function_pb2
from tensorflow.core.protobuf import saved_model_pb2

from models.site.layout import SAVED_MODEL_FILE

KEY_VERSION = b'site-architecture-v1'

# Ops that change variables: a site whose signature runs one would carry
# state from chunk to chunk in a graph of its own, which a shared graph
# (weights re-assigned per chunk) would not reproduce.
_MUTATING_OPS = re.compile(
    r'^(Assign\w*VariableOp|ResourceScatter\w*|Resource(Sparse)?Apply\w*|'
    r'ResourceStridedSliceAssign|DestroyResourceOp)$')


class NotShareable(Exception):
  """The SavedModel cannot share a graph; it is loaded on its own."""


class CapturedVariable(NamedTuple):
  """A variable the signature captures: its identity and where it lives."""
  node_id: int             # in the object graph (and the checkpoint's)
  position: int            # among the signature's captured inputs
  name: str                # the variable's name, e.g. "dense/kernel"
  dtype: int               # DataType enum
  shape: Tuple[int, ...]
  path: str = ''           # first object-graph path, only when names collide


class Architecture(NamedTuple):
  """A signature's program key and its captured variables in capture order."""
  key: str
  variables: Tuple[CapturedVariable, ...]


def read_architecture(model_dir: str, signature_name: str) -> Architecture:
  """The architecture of a local SavedModel folder's signature.

  Raises:
    NotShareable: unreadable ``saved_model.pb``, or a signature that
      cannot share a graph (see the module docstring).
  """
  try:
    with open(os.path.join(model_dir, SAVED_MODEL_FILE), 'rb') as f:
      data = f.read()
    saved_model = saved_model_pb2.SavedModel.FromString(data)
  except Exception as e:  # pylint: disable=broad-except
    # Corrupt or unreadable metadata: the full load decides what is wrong.
    raise NotShareable(f'cannot parse {SAVED_MODEL_FILE}: {e}') from e
  return architecture_of(saved_model, signature_name)


def architecture_of(saved_model: saved_model_pb2.SavedModel,
                    signature_name: str) -> Architecture:
  """:func:`read_architecture` on a parsed ``SavedModel`` proto."""
  if len(saved_model.meta_graphs) != 1:
    raise NotShareable(f'{len(saved_model.meta_graphs)} meta graphs, expected 1')
  meta_graph = saved_model.meta_graphs[0]
  if signature_name not in meta_graph.signature_def:
    raise NotShareable(f'no signature {signature_name!r}')
  graph = meta_graph.object_graph_def
  function_name, bare = _signature_function(graph, signature_name)
  concrete = graph.concrete_functions.get(function_name)
  if concrete is None:
    raise NotShareable(f'no concrete function {function_name}')
  variables, constants = _captures(meta_graph, concrete.bound_inputs)

  library = {f.signature.name: f for f in meta_graph.graph_def.library.function}
  reachable = _reachable_functions(library, function_name)
  canonical = {name: f'fn{i}' for i, name in enumerate(reachable)}

  digest = hashlib.sha256(KEY_VERSION)
  _add(digest, signature_name.encode())
  _add(digest, meta_graph.signature_def[signature_name].SerializeToString(deterministic=True))
  bare_copy = type(bare)()
  bare_copy.CopyFrom(bare)
  bare_copy.concrete_function_name = canonical[function_name]
  _add(digest, bare_copy.SerializeToString(deterministic=True))
  _add(digest, concrete.canonicalized_input_signature.SerializeToString(deterministic=True))
  _add(digest, concrete.output_signature.SerializeToString(deterministic=True))
  for variable in variables:
    _add(digest, repr((variable.position, variable.name, variable.dtype,
                       variable.shape, variable.path)).encode())
  for position, value in constants:
    _add(digest, repr(position).encode())
    _add(digest, value)
  for name in reachable:
    _add(digest, _canonical_function(library[name], canonical))
  return Architecture(digest.hexdigest(), tuple(variables))


def _add(digest, data: bytes) -> None:
  # Length-prefixed, so no two different sequences of parts hash alike.
  digest.update(len(data).to_bytes(8, 'little'))
  digest.update(data)


def _child(graph, node_id: int, local_name: str) -> int:
  for ref in graph.nodes[node_id].children:
    if ref.local_name == local_name:
      return ref.node_id
  raise NotShareable(f'object graph node {node_id} has no child {local_name!r}')


def _signature_function(graph, signature_name: str):
  """The concrete function TF2's loader binds to ``signatures[name]``."""
  if not graph.nodes:
    raise NotShareable('no object graph (a TF1 SavedModel)')
  node = graph.nodes[_child(graph, _child(graph, 0, 'signatures'), signature_name)]
  if node.WhichOneof('kind') != 'bare_concrete_function':
    raise NotShareable(f'signature node is a {node.WhichOneof("kind")}')
  return node.bare_concrete_function.concrete_function_name, node.bare_concrete_function


def _captures(meta_graph, bound_inputs) -> Tuple[List[CapturedVariable], List[Tuple[int, bytes]]]:
  """The signature's captured variables, and its captured constants' values."""
  graph = meta_graph.object_graph_def
  variables, constants = [], []
  for position, node_id in enumerate(bound_inputs):
    node = graph.nodes[node_id]
    kind = node.WhichOneof('kind')
    if kind == 'constant':
      constants.append((position, _constant_value(meta_graph, node.constant.operation)))
      continue
    if kind != 'variable':
      raise NotShareable(f'the signature captures a {kind} (node {node_id})')
    spec = node.variable
    shape = tuple(d.size for d in spec.shape.dim)
    if spec.shape.unknown_rank or any(d < 0 for d in shape):
      raise NotShareable(f'variable {spec.name!r} has no fixed shape')
    if spec.experimental_distributed_variable_components:
      raise NotShareable(f'variable {spec.name!r} is distributed')
    variables.append(CapturedVariable(node_id, position, spec.name, spec.dtype, shape))
  names = [v.name for v in variables]
  if len(set(names)) != len(names):
    # The name alone cannot tell these apart across exports: add the path.
    paths = _first_paths(graph)
    variables = [v._replace(path=paths.get(v.node_id, '')) for v in variables]
    identities = [(v.name, v.path) for v in variables]
    if len(set(identities)) != len(identities):
      raise NotShareable('captured variables share names and paths')
  return variables, constants


def _first_paths(graph) -> Dict[int, str]:
  """Each node's first path from the root, breadth first in child order."""
  paths, queue = {0: ''}, [0]
  while queue:
    node_id = queue.pop(0)
    for ref in graph.nodes[node_id].children:
      if ref.node_id not in paths:
        paths[ref.node_id] = f'{paths[node_id]}/{ref.local_name}'.lstrip('/')
        queue.append(ref.node_id)
  return paths


def _constant_value(meta_graph, operation: str) -> bytes:
  for node in meta_graph.graph_def.node:
    if node.name == operation and node.op == 'Const':
      return node.attr['value'].SerializeToString(deterministic=True)
  raise NotShareable(f'captured constant {operation!r} is not in the graph')


def _referenced_functions(function: function_pb2.FunctionDef, library) -> List[str]:
  """Library functions ``function`` calls, in node order (then attribute name order)."""
  found = []
  for node in function.node_def:
    if _MUTATING_OPS.match(node.op):
      raise NotShareable(f'function runs {node.op}, which changes a variable')
    if node.op in library:
      found.append(node.op)
    for key in sorted(node.attr):
      found.extend(_attr_functions(node.attr[key]))
  for key in sorted(function.attr):
    found.extend(_attr_functions(function.attr[key]))
  return found


def _attr_functions(value) -> List[str]:
  kind = value.WhichOneof('value')
  if kind == 'func':
    return [value.func.name]
  if kind == 'list':
    return [f.name for f in value.list.func]
  return []


def _reachable_functions(library: Dict[str, function_pb2.FunctionDef], root: str) -> List[str]:
  """``root`` and every library function it reaches, in deterministic discovery order."""
  if root not in library:
    raise NotShareable(f'function {root} is not in the library')
  order, queue, seen = [], [root], {root}
  while queue:
    name = queue.pop(0)
    order.append(name)
    for ref in _referenced_functions(library[name], library):
      if ref not in library:
        # A function-valued attribute naming an op or a missing function:
        # leave it as is (it is in the serialized bytes either way).
        continue
      if ref not in seen:
        seen.add(ref)
        queue.append(ref)
  return order


def _rename_attr(value, canonical: Dict[str, str]) -> None:
  kind = value.WhichOneof('value')
  if kind == 'func' and value.func.name in canonical:
    value.func.name = canonical[value.func.name]
  elif kind == 'list':
    for func in value.list.func:
      if func.name in canonical:
        func.name = canonical[func.name]


def _canonical_function(function: function_pb2.FunctionDef, canonical: Dict[str, str]) -> bytes:
  """The function's bytes with every library function name made canonical."""
  copy = function_pb2.FunctionDef()
  copy.CopyFrom(function)
  copy.signature.name = canonical[function.signature.name]
  for node in copy.node_def:
    if node.op in canonical:
      node.op = canonical[node.op]
    for value in node.attr.values():
      _rename_attr(value, canonical)
  for value in copy.attr.values():
    _rename_attr(value, canonical)
  for arg in copy.arg_attr.values():
    # A naming hint only; for captured inputs it holds a process-wide tensor
    # id that differs between exports.
    arg.attr.pop('_user_specified_name', None)
  return copy.SerializeToString(deterministic=True)
