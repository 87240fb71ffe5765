"""A library function with every name replaced by its structure: equal programs, equal bytes.

Exports of one architecture differ in names only: node names carry Keras's
model scope (``functional_1/hidden_1/...``, then ``functional_1_1/...`` for
the next model built in the process), argument names are derived from node
names, generated function names count up per process. None of these change
what the function computes. :func:`canonicalize` rewrites a ``FunctionDef``
so that every name is a function of the structure alone:

- **nodes** are numbered ``n0, n1, ...`` in a topological order fixed by
  the structure alone: a depth-first walk from the outputs (in output
  order) through each node's data inputs (in input order), numbering a node
  after its inputs; control inputs (a set) are walked numbered ones first,
  by number, the others by op; then the control outputs, then nodes nothing
  depends on. Names never enter the order. Only nodes alike in all of that
  (e.g. two unnumbered control inputs with one op) fall back on their order
  in the file, which can only make two equal programs look different (no
  sharing), never two different ones look equal: the canonical bytes spell
  out the whole graph either way;
- every input reference ``node:output:index``, control input ``^node``,
  control output, ``ret`` and ``control_ret`` entry, and colocation
  attribute (``_class: loc:@node``) is rewritten to the new names; control
  inputs and control outputs are sorted (they are sets);
- **arguments** become ``a0, a1, ...`` and **outputs** ``o0, o1, ...``:
  their *order* is the calling convention and stays, their names go; the
  ``_user_specified_name`` hint in ``arg_attr`` (the argument's name, or a
  process-wide tensor id for captures) is dropped, and
  ``resource_arg_unique_id`` values are renumbered by first appearance;
- **library functions** named by a node's op or by a function-valued
  attribute (``f`` of ``StatefulPartitionedCall``, loop and branch bodies,
  nested ones included) are replaced by their canonical names, which are
  derived from their canonical bytes: two functions get one name exactly
  when their canonical definitions are equal;
- ``experimental_debug_info`` (original node names) is cleared and the
  ``description`` fields are dropped.

Everything else stays byte for byte: ops, every other attribute (dtypes,
shapes, ``_output_shapes``, ``_read_only_resource_inputs`` (input indices),
``_XlaMustCompile``, ``config_proto``, constant values), devices, edges and
their order. The result is still an executable ``FunctionDef`` (its name:
``CANONICAL_PREFIX`` + digest), which is what a shared graph registers.

Refused (:class:`NotShareable`): ops that change a variable (state would
carry from one site's chunk to the next in a shared graph), ops that name a
resource with a ``shared_name`` or ``container`` attribute (their identity
is a name, so renaming could change which state they share), references to
nodes or arguments that do not exist, and cycles.
"""
import hashlib
import re
from typing import Dict, List, NamedTuple, Sequence, Tuple

from tensorflow.core.framework import function_pb2

CANONICAL_PREFIX = '__site_fn_'
CALL_OPS = frozenset({'PartitionedCall', 'StatefulPartitionedCall'})

# Ops that change variables or destroy resources.
_MUTATING_OPS = re.compile(
    r'^(Assign\w*VariableOp|ResourceScatter\w*|Resource(Sparse)?Apply\w*|'
    r'ResourceStridedSliceAssign|DestroyResourceOp)$')
_RESOURCE_NAME_ATTRS = ('shared_name', 'container')


class NotShareable(Exception):
  """The SavedModel cannot share a graph; it is loaded on its own."""


class CanonicalFunction(NamedTuple):
  """A function in canonical form, and where its arguments go."""
  name: str                               # CANONICAL_PREFIX + digest
  definition: function_pb2.FunctionDef    # renamed, executable
  # Per argument: its uses as (canonical node index, input slot), sorted;
  # a use by an output is (-1, output position).
  arg_uses: Tuple[Tuple[Tuple[int, int], ...], ...]
  # Canonical node index -> original name of the library function it calls
  # with the node's inputs as the callee's arguments (call ops only).
  calls: Dict[int, str]


def called_functions(function: function_pb2.FunctionDef, library) -> List[str]:
  """Library functions ``function`` references, in node order, then attribute order."""
  found = []
  for node in function.node_def:
    if node.op in library:
      found.append(node.op)
    for key in sorted(node.attr):
      found.extend(_attr_functions(node.attr[key]))
  for key in sorted(function.attr):
    found.extend(_attr_functions(function.attr[key]))
  return [name for name in found if name in library]


def _attr_functions(value) -> List[str]:
  kind = value.WhichOneof('value')
  if kind == 'func':
    return [value.func.name] + [n for v in value.func.attr.values() for n in _attr_functions(v)]
  if kind == 'list' and value.list.func:
    return [f.name for f in value.list.func] + [
        n for f in value.list.func for v in f.attr.values() for n in _attr_functions(v)]
  return []


def _rename_attr(value, names: Dict[str, str]) -> None:
  kind = value.WhichOneof('value')
  if kind == 'func':
    _rename_func(value.func, names)
  elif kind == 'list':
    for func in value.list.func:
      _rename_func(func, names)


def _rename_func(func, names: Dict[str, str]) -> None:
  if func.name in names:
    func.name = names[func.name]
  for value in func.attr.values():
    _rename_attr(value, names)


class _Ref(NamedTuple):
  node: int       # -1 for an argument
  output: str     # output arg name of the op (part of the op's definition)
  index: int      # output index, or the argument's position


def _parse_ref(text: str, nodes: Dict[str, int], args: Dict[str, int]) -> _Ref:
  parts = text.split(':')
  if len(parts) == 1:
    if text not in args:
      raise NotShareable(f'input {text!r} names no argument')
    return _Ref(-1, '', args[text])
  if len(parts) == 3 and parts[0] in nodes and parts[2].isdigit():
    return _Ref(nodes[parts[0]], parts[1], int(parts[2]))
  raise NotShareable(f'input {text!r} names no node output')


def canonicalize(function: function_pb2.FunctionDef,
                 names: Dict[str, str]) -> CanonicalFunction:
  """``function`` in canonical form; ``names`` maps its callees to their canonical names.

  Raises:
    NotShareable: see the module docstring.
  """
  fdef = function_pb2.FunctionDef()
  fdef.CopyFrom(function)
  args = {a.name: i for i, a in enumerate(fdef.signature.input_arg)}
  nodes = fdef.node_def
  index = {node.name: i for i, node in enumerate(nodes)}
  if len(index) != len(nodes):
    raise NotShareable('two nodes share a name')
  data: List[List[_Ref]] = []
  control: List[List[int]] = []
  ops: List[str] = []
  for node in nodes:
    op = node.op
    if _MUTATING_OPS.match(op):
      raise NotShareable(f'function runs {op}, which changes a variable')
    attrs = node.attr
    for attr in _RESOURCE_NAME_ATTRS:
      if attr in attrs:
        raise NotShareable(f'{op} names a resource ({attr})')
    if op in names:
      node.op = names[op]
    for value in attrs.values():
      kind = value.WhichOneof('value')
      if kind == 'func' or (kind == 'list' and value.list.func):
        _rename_attr(value, names)
    refs, controls = [], []
    for text in node.input:
      if text[0] == '^':
        source = index.get(text[1:])
        if source is None:
          raise NotShareable(f'control input {text!r} names no node')
        controls.append(source)
      else:
        refs.append(_parse_ref(text, index, args))
    data.append(refs)
    control.append(controls)
    ops.append(op)

  outputs = [a.name for a in fdef.signature.output_arg]
  if set(fdef.ret) != set(outputs):
    raise NotShareable('ret does not match the output arguments')
  ret_refs = [_parse_ref(fdef.ret[name], index, args) for name in outputs]
  control_rets = []
  for target in fdef.control_ret.values():
    if target not in index:
      raise NotShareable(f'control output {target!r} names no node')
    control_rets.append(index[target])

  number = _number(data, control, ops, [r.node for r in ret_refs if r.node >= 0], control_rets)

  def ref_text(ref: _Ref) -> str:
    return f'a{ref.index}' if ref.node < 0 else f'n{number[ref.node]}:{ref.output}:{ref.index}'

  node_names = {name: f'n{number[i]}' for name, i in index.items()}
  for i, node in enumerate(nodes):
    node.name = f'n{number[i]}'
    del node.input[:]
    node.input.extend([ref_text(ref) for ref in data[i]])
    if control[i]:
      node.input.extend(sorted({f'^n{number[c]}' for c in control[i]}))
    if '_class' in node.attr:
      located = node.attr['_class'].list.s
      renamed = sorted(_colocated(text, node_names) for text in located)
      del located[:]
      located.extend(renamed)
    if node.HasField('experimental_debug_info'):
      node.ClearField('experimental_debug_info')
  nodes.sort(key=lambda node: int(node.name[1:]))

  signature = fdef.signature
  signature.ClearField('description')
  for i, arg in enumerate(signature.input_arg):
    arg.name = f'a{i}'
    arg.ClearField('description')
  for j, arg in enumerate(signature.output_arg):
    arg.name = f'o{j}'
    arg.ClearField('description')
  del signature.control_output[:]
  signature.control_output.extend(sorted({f'n{number[i]}' for i in control_rets}))
  fdef.ClearField('ret')
  for j, ref in enumerate(ret_refs):
    fdef.ret[f'o{j}'] = ref_text(ref)
  fdef.ClearField('control_ret')
  for i in control_rets:
    fdef.control_ret[f'n{number[i]}'] = f'n{number[i]}'
  for value in fdef.attr.values():
    _rename_attr(value, names)
  for attrs in fdef.arg_attr.values():
    if '_user_specified_name' in attrs.attr:
      del attrs.attr['_user_specified_name']
  if fdef.resource_arg_unique_id:
    renumbered: Dict[int, int] = {}
    unique_ids = {p: renumbered.setdefault(fdef.resource_arg_unique_id[p], len(renumbered))
                  for p in sorted(fdef.resource_arg_unique_id)}
    fdef.ClearField('resource_arg_unique_id')
    for position, unique in unique_ids.items():
      fdef.resource_arg_unique_id[position] = unique

  signature.name = ''
  signature.name = CANONICAL_PREFIX + hashlib.sha256(
      fdef.SerializeToString(deterministic=True)).hexdigest()
  return CanonicalFunction(signature.name, fdef,
                           _arg_uses(len(args), data, ret_refs, number),
                           _calls(fdef.node_def, names))


def _number(data: Sequence[Sequence[_Ref]], control: Sequence[Sequence[int]],
            ops: Sequence[str], output_nodes: Sequence[int],
            control_rets: Sequence[int]) -> List[int]:
  """Canonical node numbers: a depth-first postorder (inputs before their consumers).

  The walk starts at the outputs in output order and follows data inputs in
  input order, then control inputs (a set: numbered ones by number first,
  the others by op); then the control outputs, then anything left (nodes
  nothing depends on), by op. Only nodes alike in all of that are ordered
  by their position in the file.
  """
  count = len(data)
  number = [-1] * count
  active = [False] * count
  counter = [0]

  def by_structure(i: int):
    return (number[i] < 0, number[i], ops[i], i)

  def children(i: int) -> List[int]:
    kids = [r.node for r in data[i] if r.node >= 0]
    if control[i]:
      kids.extend(sorted(set(control[i]), key=by_structure))
    return kids

  def walk(root: int) -> None:
    if number[root] >= 0:
      return
    active[root] = True
    stack = [(root, iter(children(root)))]
    while stack:
      node, pending = stack[-1]
      for child in pending:
        if number[child] < 0:
          if active[child]:
            raise NotShareable('the function graph has a cycle')
          active[child] = True
          stack.append((child, iter(children(child))))
          break
      else:
        stack.pop()
        active[node] = False
        number[node] = counter[0]
        counter[0] += 1

  for root in output_nodes:
    walk(root)
  for root in sorted(set(control_rets), key=by_structure):
    walk(root)
  for root in sorted((i for i in range(count) if number[i] < 0), key=by_structure):
    walk(root)
  return number


def _colocated(text: bytes, node_names: Dict[str, str]) -> bytes:
  if text.startswith(b'loc:@'):
    target = text[5:].decode('utf-8', 'replace')
    if target in node_names:
      return b'loc:@' + node_names[target].encode()
  return text


def _arg_uses(num_args, data, ret_refs, number):
  uses: List[List[Tuple[int, int]]] = [[] for _ in range(num_args)]
  for i, refs in enumerate(data):
    for slot, ref in enumerate(refs):
      if ref.node < 0:
        uses[ref.index].append((number[i], slot))
  for position, ref in enumerate(ret_refs):
    if ref.node < 0:
      uses[ref.index].append((-1, position))
  return tuple(tuple(sorted(u)) for u in uses)


def _calls(nodes, names: Dict[str, str]) -> Dict[int, str]:
  """Call nodes whose data inputs are exactly a library function's arguments."""
  calls = {}
  originals = {v: k for k, v in names.items()}
  for node in nodes:
    if node.op in originals:
      calls[int(node.name[1:])] = originals[node.op]
    elif node.op in CALL_OPS and 'f' in node.attr and node.attr['f'].func.name in originals:
      calls[int(node.name[1:])] = originals[node.attr['f'].func.name]
  return calls
