"""An exact "same program up to renaming" key for a SavedModel signature, without loading it.

Sites trained by one script share an architecture and differ only in their
variable values, so one graph can serve them all if each site's values are
bound to it. That is only safe when the two SavedModels' signatures compute
the same function of (inputs, variables), which this module decides from
``saved_model.pb`` alone (a protobuf parse and a pass over the signature's
functions, under a millisecond for a small Keras model; an export of an
architecture seen before matches its functions instead, a third of that:
:mod:`models.site.known_functions`).

What two exports of one architecture differ in, and why none of it is in
the key: node names (Keras's model scope counts up per model built in a
process: ``functional_1/hidden_1/...``, ``functional_1_1/hidden_1/...``),
argument names derived from them, generated function names
(``__inference___call___727``), variable names (``dense/kernel`` vs
``dense_3/kernel`` with Keras-generated layer names, ``Variable`` for every
unnamed ``tf.Variable``), object-graph node ids and checkpoint keys (Keras 3
orders its variable lists differently in every process), the SignatureDef's
tensor names, and ``fingerprint.pb`` (its program hash covers all of the
above). The key covers exactly what the signature runs, with names made
canonical by :mod:`models.site.canonical_function`:

- the signature's name and its ``SignatureDef`` with tensor names cleared
  (input and output keys, dtypes, shapes, method name stay);
- the signature's concrete function metadata: argument keywords, input and
  output structure (``TensorSpec`` names there are the signature's keys);
- the canonical form of the signature's function, which names every library
  function it reaches by a digest of that function's canonical form, so the
  whole call tree (ops, attributes, constants, wiring) is in the key;
- the captured inputs, in the order the function takes them (its arguments
  are positional): variables by dtype, shape and structural role (below),
  constants (e.g. a Keras ``Normalization`` layer's mean) by their value.

**Structural role of a variable**: where its value goes, in canonical
terms: the canonical node(s) and input slot(s) consuming the signature
function's argument it is bound to, followed through call ops into the
callee's argument, down to the ops that read it, e.g.
``n0:6>n3:0`` (node 0 of the signature function passes it as input 6 to a
function whose node 3 reads it). Two exports with one key have the same
roles in the same places, and each site's values are bound to the shared
graph by role; names, capture positions and checkpoint keys are only used
to find a value within one export (:mod:`models.site.variable_restore`).

Everything else in the file (top-level graph nodes, save/restore functions,
other signatures, unused variables) does not run when the signature is
called and is left out. A signature that captures anything but variables
and constants (assets, lookup tables), or that changes or names resources,
is not shareable: such sites are loaded fully, each on its own.
"""
import functools
import hashlib
import os
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

from tensorflow.core.framework import function_pb2
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2

from models.site.canonical_function import CanonicalFunction
from models.site.canonical_function import NotShareable
from models.site.canonical_function import canonicalize
from models.site.known_functions import KnownFunctions
from models.site import saved_model_parts
from models.site.layout import SAVED_MODEL_FILE

__all__ = [
    'Architecture', 'CapturedConstant', 'CapturedVariable', 'NotShareable', 'Program',
    'architecture_of', 'read_architecture'
]

KEY_VERSION = b'site-architecture-v2'


class CapturedVariable(NamedTuple):
  """A variable the signature captures: its role, and where this export keeps it."""
  node_id: int  # in this export's object graph (and its checkpoint's)
  position: int  # among the signature's captured inputs
  role: str  # structural role (module docstring)
  name: str  # this export's name for it (messages and checks only)
  dtype: int  # DataType enum
  shape: Tuple[int, ...]


class CapturedConstant(NamedTuple):
  position: int  # among the signature's captured inputs
  value: tensor_pb2.TensorProto


class Program(NamedTuple):
  """What a shared graph registers and how it is called."""
  function_name: str  # canonical signature function
  functions: Tuple[function_pb2.FunctionDef, ...]  # callees before callers
  argument_keywords: Tuple[str, ...]  # order of the signature's inputs
  input_signature: bytes  # StructuredValue: ((), {keyword: TensorSpec})
  output_signature: bytes  # StructuredValue: {output key: TensorSpec}
  constants: Tuple[CapturedConstant, ...]
  num_captures: int


class Architecture(NamedTuple):
  """A signature's key, its captured variables in capture order, and its program."""
  key: str
  variables: Tuple[CapturedVariable, ...]
  program: Program


def read_architecture(model_dir: str,
                      signature_name: str,
                      known: Optional[KnownFunctions] = None) -> Architecture:
  """The architecture of a local SavedModel folder's signature.

  ``known``: functions canonicalized before, which this export's may match
  (:mod:`models.site.known_functions`: same key, less work); it learns
  this export's when they are canonicalized in full.

  Raises:
    NotShareable: unreadable ``saved_model.pb``, or a signature that
      cannot share a graph (see the module docstring).
  """
  try:
    parts = saved_model_parts.read_parts(_read_file(os.path.join(model_dir, SAVED_MODEL_FILE)))
  except Exception as e:  # pylint: disable=broad-except
    # Corrupt or unreadable metadata: the full load decides what is wrong.
    raise NotShareable(f'cannot parse {SAVED_MODEL_FILE}: {e}') from e
  return _architecture(parts, signature_name, known)


def _read_file(path: str) -> bytes:
  """The bytes of file ``path``: open, read to the end, close (Python's file objects add
  four system calls to these, which cost as much as the read itself)."""
  fd = os.open(path, os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0))
  try:
    chunks = []
    while True:
      chunk = os.read(fd, 1 << 20)
      if not chunk:
        return b''.join(chunks)
      chunks.append(chunk)
  finally:
    os.close(fd)


def architecture_of(saved_model: saved_model_pb2.SavedModel,
                    signature_name: str,
                    known: Optional[KnownFunctions] = None) -> Architecture:
  """:func:`read_architecture` on a parsed ``SavedModel`` proto."""
  return _architecture(saved_model_parts.parts_of(saved_model), signature_name, known)


def _architecture(parts: saved_model_parts.Parts, signature_name: str,
                  known: Optional[KnownFunctions]) -> Architecture:
  """The architecture of ``signature_name`` from a SavedModel's parts."""
  if parts.num_meta_graphs != 1:
    raise NotShareable(f'{parts.num_meta_graphs} meta graphs, expected 1')
  if signature_name not in parts.signature_entries:
    raise NotShareable(f'no signature {signature_name!r}')
  graph = parts.object_graph_def
  function_name, bare = _signature_function(graph, signature_name)
  concrete = graph.concrete_functions.get(function_name)
  if concrete is None:
    raise NotShareable(f'no concrete function {function_name}')

  library = parts.library
  if function_name not in library:
    raise NotShareable(f'function {function_name} is not in the library')
  copy = saved_model_parts.copier(library)
  names = saved_model_parts.function_names(library)
  matched = known.match(function_name, names, copy) if known is not None else None
  if matched:
    canonical, known_roles, arg_types = matched
  else:
    canonical, known_roles = _canonical_library(library, function_name), {}
    arg_types = [a.type for a in library[function_name].signature.input_arg]
  root = canonical[function_name]

  num_inputs = len(bare.argument_keywords)
  if len(arg_types) != num_inputs + len(concrete.bound_inputs):
    raise NotShareable('the signature function does not take its inputs and captures')
  variables, constants = [], []
  roles = {}
  for node_id, position, name, dtype, shape in _captures(parts, concrete.bound_inputs, constants):
    argument = num_inputs + position
    if arg_types[argument] != types_pb2.DT_RESOURCE:
      raise NotShareable(f'captured variable {name!r} is not passed as a resource')
    role = known_roles.get(argument) or _role(canonical, function_name, argument, {})
    if role in roles:
      raise NotShareable(f'variables {roles[role]!r} and {name!r} have one role')
    roles[role] = name
    variables.append(CapturedVariable(node_id, position, role, name, dtype, shape))

  digest = hashlib.sha256(KEY_VERSION)
  _add(digest, signature_name.encode())
  _add(digest, _unnamed_signature_def(parts.signature_entries[signature_name]))
  bare_copy = type(bare)()
  bare_copy.CopyFrom(bare)
  bare_copy.concrete_function_name = root.name
  _add(digest, bare_copy.SerializeToString(deterministic=True))
  input_signature = concrete.canonicalized_input_signature.SerializeToString(deterministic=True)
  output_signature = concrete.output_signature.SerializeToString(deterministic=True)
  _add(digest, input_signature)
  _add(digest, output_signature)
  for variable in variables:
    _add(
        digest,
        repr(('variable', variable.position, variable.dtype, variable.shape,
              variable.role)).encode())
  for constant in constants:
    _add(digest, repr(('constant', constant.position)).encode())
    _add(digest, constant.value.SerializeToString(deterministic=True))
  _add(digest, root.name.encode())

  functions, seen = [], set()
  for name in canonical:
    if canonical[name].name not in seen:
      seen.add(canonical[name].name)
      functions.append(canonical[name].definition)
  program = Program(root.name, tuple(functions), tuple(bare.argument_keywords), input_signature,
                    output_signature, tuple(constants), len(concrete.bound_inputs))
  architecture = Architecture(digest.hexdigest(), tuple(variables), program)
  if known is not None and not matched:
    known.learn(architecture.key, function_name, names, copy, canonical,
                {num_inputs + v.position: v.role
                 for v in variables})
  return architecture


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


@functools.lru_cache(maxsize=1024)
def _unnamed_signature_def(entry: bytes) -> bytes:
  """The SignatureDef of a serialized entry without its graph tensor names, serialized.

  TF2's loader does not use the names. Remembered per entry's bytes: the
  exports of one architecture mostly have one signature map, byte for byte.
  """
  signature_def = meta_graph_pb2.MetaGraphDef.SignatureDefEntry.FromString(entry).value
  for infos in (signature_def.inputs, signature_def.outputs):
    for info in infos.values():
      if info.WhichOneof('encoding') != 'name':
        raise NotShareable(f'signature tensor encoded as {info.WhichOneof("encoding")}')
      info.ClearField('name')
  return signature_def.SerializeToString(deterministic=True)


def _captures(parts: saved_model_parts.Parts, bound_inputs,
              constants: List[CapturedConstant]) -> List[Tuple]:
  """The signature's captured variables as (node id, position, name, dtype, shape).

  Its captured constants go to ``constants``.
  """
  nodes = parts.object_graph_def.nodes
  variables = []
  for position, node_id in enumerate(bound_inputs):
    node = nodes[node_id]
    kind = node.WhichOneof('kind')
    if kind == 'constant':
      constants.append(CapturedConstant(position, _constant_value(parts, node.constant.operation)))
      continue
    if kind != 'variable':
      raise NotShareable(f'the signature captures a {kind} (node {node_id})')
    spec = node.variable
    shape_proto = spec.shape
    shape = tuple([d.size for d in shape_proto.dim])
    if shape_proto.unknown_rank or any(d < 0 for d in shape):
      raise NotShareable(f'variable {spec.name!r} has no fixed shape')
    if spec.experimental_distributed_variable_components:
      raise NotShareable(f'variable {spec.name!r} is distributed')
    variables.append((node_id, position, spec.name, spec.dtype, shape))
  return variables


def _constant_value(parts: saved_model_parts.Parts, operation: str) -> tensor_pb2.TensorProto:
  node = parts.graph_node(operation)
  if node is None or node.op != 'Const':
    raise NotShareable(f'captured constant {operation!r} is not in the graph')
  return node.attr['value'].tensor


def _canonical_library(library: Mapping[str, function_pb2.FunctionDef],
                       root: str) -> Dict[str, CanonicalFunction]:
  """``root`` and every library function it reaches, canonical, each after its callees."""
  done: Dict[str, CanonicalFunction] = {}
  active = set()

  def resolve(name: str) -> Optional[str]:
    if name in done:
      return done[name].name
    if name not in library:
      return None
    if name in active:
      raise NotShareable(f'function {name} calls itself')
    active.add(name)
    done[name] = canonicalize(library[name], resolve)
    active.discard(name)
    return done[name].name

  resolve(root)
  return done


def _role(canonical: Dict[str, CanonicalFunction], function: str, arg: int,
          memo: Dict[Tuple[str, int], str]) -> str:
  """Where argument ``arg`` of ``function`` goes, in canonical node positions."""
  if (function, arg) in memo:
    return memo[(function, arg)]
  fn = canonical[function]
  paths = []
  for node, slot in fn.arg_uses[arg]:
    if node < 0:
      paths.append(f'o{slot}')
    elif node in fn.calls:
      inner = _role(canonical, fn.calls[node], slot, memo)
      paths.extend(f'n{node}:{slot}>{p}' for p in inner.split(';'))
    else:
      paths.append(f'n{node}:{slot}')
  memo[(function, arg)] = ';'.join(sorted(paths)) or '-'
  return memo[(function, arg)]
