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

Everything else stays byte for byte: ops, devices, edges and their order,
and every other attribute. In particular, attributes that could look like
noise but are not names stay: ``_output_shapes`` and ``_input_shapes`` (the
shapes a trace inferred; one program traced for one signature records the
same ones, and a different one is a different trace), ``_read_only_resource_inputs``
(input *positions*), ``_XlaMustCompile``, ``_noinline``, ``config_proto``,
``executor_type`` (how the function is compiled and run, which can change
its numerics), ``_construction_context``, dtypes and constant values. The
result is still an executable ``FunctionDef`` (its name:
``CANONICAL_PREFIX`` + digest), which is what a shared graph registers.

What canonicalization takes from names is :func:`edges` (wiring by
position) and what it strips is :func:`strip_argument_hints`; both are
shared with :mod:`models.site.known_functions`, which matches exports of a
known architecture by them without renaming anything.

Refused (:class:`NotShareable`): ops that change a variable (state would
carry from one site's chunk to the next in a shared graph), ops that name a
resource with a ``shared_name`` or ``container`` attribute (their identity
is a name, so renaming could change which state they share), references to
nodes or arguments that do not exist, and cycles.
"""
import functools
import hashlib
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from tensorflow.core.framework import function_pb2
from tensorflow.python.framework import op_def_registry

CANONICAL_PREFIX = '__site_fn_'
CALL_OPS = frozenset({'PartitionedCall', 'StatefulPartitionedCall'})

# Ops that change variables or destroy resources (by name prefix).
_MUTATING_OPS = ('Assign', 'ResourceScatter', 'ResourceApply', 'ResourceSparseApply',
                 'ResourceStridedSliceAssign', 'DestroyResourceOp')


class NotShareable(Exception):
  """The SavedModel cannot share a graph; it is loaded on its own."""


class CanonicalFunction(NamedTuple):
  """A function in canonical form, and where its arguments go."""
  name: str  # CANONICAL_PREFIX + digest
  definition: function_pb2.FunctionDef  # renamed, executable
  # Per argument: its uses as (canonical node index, input slot), sorted;
  # a use by an output is (-1, output position).
  arg_uses: Tuple[Tuple[Tuple[int, int], ...], ...]
  # Canonical node index -> original name of the library function it calls
  # with the node's inputs as the callee's arguments (call ops only).
  calls: Dict[int, str]


Resolver = Callable[[str], Optional[str]]


@functools.lru_cache(maxsize=4096)
def func_attr_names(op: str) -> Optional[Tuple[str, ...]]:
  """Attributes of ``op`` that hold functions (from its OpDef); None: unknown op, look at all.

  Remembered per op name (OpDefs are fixed once registered; an op registered
  later than asked about keeps the cautious "look at all" answer).
  """
  op_def = op_def_registry.get(op)
  if op_def is None:
    return None
  return tuple(a.name for a in op_def.attr if a.type in ('func', 'list(func)'))


def _rename_attr(value, resolve: Resolver) -> None:
  kind = value.WhichOneof('value')
  if kind == 'func':
    _rename_func(value.func, resolve)
  elif kind == 'list':
    for func in value.list.func:
      _rename_func(func, resolve)


def _rename_func(func, resolve: Resolver) -> None:
  name = resolve(func.name)
  if name is not None:
    func.name = name
  for value in func.attr.values():
    _rename_attr(value, resolve)


def canonicalize(function: function_pb2.FunctionDef, resolve: Resolver) -> CanonicalFunction:
  """``function`` in canonical form.

  Args:
    function: a library function.
    resolve: the canonical name of a library function (canonicalizing it
      first if need be), or None for a name that is not one; called for
      every op and function-valued attribute.

  Raises:
    NotShareable: see the module docstring.
  """
  fdef = function_pb2.FunctionDef()
  fdef.CopyFrom(function)
  nodes = fdef.node_def
  ops: List[str] = []
  calls: Dict[int, str] = {}
  func_attrs: Dict[str, Optional[Tuple[str, ...]]] = {}
  for position, node in enumerate(nodes):
    op = node.op
    if op.startswith(_MUTATING_OPS):
      raise NotShareable(f'function runs {op}, which changes a variable')
    attrs = node.attr
    if 'shared_name' in attrs or 'container' in attrs:
      raise NotShareable(f'{op} names a resource')
    callee = resolve(op)
    if callee is not None:
      node.op = callee
      calls[position] = op
    if op not in func_attrs:
      func_attrs[op] = None if callee is not None else func_attr_names(op)
    named = func_attrs[op]
    for key in (attrs if named is None else named):
      if key in attrs:
        value = attrs[key]
        kind = value.WhichOneof('value')
        if kind == 'func' or (kind == 'list' and value.list.func):
          if op in CALL_OPS and key == 'f':
            calls[position] = value.func.name
          _rename_attr(value, resolve)
    ops.append(op)
  index, args, wiring = edges(fdef)
  sources, tails, control, rets, control_rets = wiring

  number = numbering(wiring, ops)
  names = [f'n{k}' for k in number]
  for i, node in enumerate(nodes):
    node.name = names[i]
    del node.input[:]
    node.input.extend(
        [names[x] + t if x >= 0 else f'a{-1 - x}' for x, t in zip(sources[i], tails[i])])
    if control[i]:
      node.input.extend(sorted({'^' + names[c] for c in control[i]}))
    if '_class' in node.attr:
      located = node.attr['_class'].list.s
      renamed = sorted(_colocated(text, index, names) for text in located)
      del located[:]
      located.extend(renamed)
    if node.HasField('experimental_debug_info'):
      node.ClearField('experimental_debug_info')
  if any(number[i] != i for i in range(len(number))):
    nodes.sort(key=lambda node: int(node.name[1:]))

  signature = fdef.signature
  signature.ClearField('description')
  for i, arg in enumerate(signature.input_arg):
    arg.name = f'a{i}'
    if arg.description:
      arg.ClearField('description')
  for j, arg in enumerate(signature.output_arg):
    arg.name = f'o{j}'
    if arg.description:
      arg.ClearField('description')
  del signature.control_output[:]
  signature.control_output.extend(sorted({names[i] for i in control_rets}))
  fdef.ClearField('ret')
  for j, (source, tail) in enumerate(rets):
    fdef.ret[f'o{j}'] = names[source] + tail if source >= 0 else f'a{-1 - source}'
  fdef.ClearField('control_ret')
  for i in control_rets:
    fdef.control_ret[names[i]] = names[i]
  for value in fdef.attr.values():
    _rename_attr(value, resolve)
  strip_argument_hints(fdef)

  signature.name = ''
  signature.name = CANONICAL_PREFIX + hashlib.sha256(
      fdef.SerializeToString(deterministic=True)).hexdigest()
  uses: List[List[Tuple[int, int]]] = [[] for _ in args]
  for i, node_sources in enumerate(sources):
    for slot, source in enumerate(node_sources):
      if source < 0:
        uses[-1 - source].append((number[i], slot))
  for position, (source, _) in enumerate(rets):
    if source < 0:
      uses[-1 - source].append((-1, position))
  return CanonicalFunction(signature.name, fdef, tuple(tuple(sorted(u)) for u in uses), {
      number[i]: callee
      for i, callee in calls.items()
  })


def strip_argument_hints(fdef: function_pb2.FunctionDef) -> None:
  """Drops the ``_user_specified_name`` hints and renumbers ``resource_arg_unique_id``, in place.

  The hints are names (of an argument, or a process-wide tensor id for a
  capture); the unique ids are kept up to renaming, by first appearance.
  """
  arg_attr = fdef.arg_attr
  for position in arg_attr:  # keys, then lookups: the map's values() iterates in Python
    attrs = arg_attr[position].attr
    if '_user_specified_name' in attrs:
      del attrs['_user_specified_name']
  if fdef.resource_arg_unique_id:
    renumbered: Dict[int, int] = {}
    unique_ids = {
        p: renumbered.setdefault(fdef.resource_arg_unique_id[p], len(renumbered))
        for p in sorted(fdef.resource_arg_unique_id)
    }
    fdef.ClearField('resource_arg_unique_id')
    for position, unique in unique_ids.items():
      fdef.resource_arg_unique_id[position] = unique


class Edges(NamedTuple):
  """A function's wiring by position: node indices, argument positions, output slots.

  A source is a node index, or ``-1 - position`` for an argument; a tail is
  the ``:output:index`` part of a reference ('' for an argument).
  """
  sources: List[List[int]]  # per node: its data inputs' sources
  tails: List[List[str]]  # per node: their tails
  control: List[List[int]]  # per node: its control inputs, in file order
  rets: List[Tuple[int, str]]  # per output: source and tail
  control_rets: List[int]  # control outputs' nodes, in file order


def edges(fdef: function_pb2.FunctionDef) -> Tuple[Dict[str, int], Dict[str, int], Edges]:
  """Node and argument positions by name, and the wiring they give ``fdef``.

  What a canonical form takes from names (colocation attributes aside):
  two functions with equal edges and ops get equal node numbers, hence
  equal canonical names, inputs and outputs. Shared with
  :mod:`models.site.known_functions`, which compares exports by it.

  Raises:
    NotShareable: two nodes share a name, or a reference names no node or argument.
  """
  args = {a.name: i for i, a in enumerate(fdef.signature.input_arg)}
  nodes = fdef.node_def
  index = {node.name: i for i, node in enumerate(nodes)}
  if len(index) != len(nodes):
    raise NotShareable('two nodes share a name')
  sources: List[List[int]] = []
  tails: List[List[str]] = []
  control: List[List[int]] = []
  for node in nodes:
    node_sources, node_tails, node_control = [], [], []
    for text in node.input:
      if text[0] == '^':
        source = index.get(text[1:])
        if source is None:
          raise NotShareable(f'control input {text!r} names no node')
        node_control.append(source)
        continue
      head, colon, tail = text.partition(':')
      source = index.get(head) if colon else -1 - args.get(text, -1)
      if source is None or source == 0 and not colon:
        raise NotShareable(f'input {text!r} names no node output or argument')
      node_sources.append(source)
      node_tails.append(colon + tail)
    sources.append(node_sources)
    tails.append(node_tails)
    control.append(node_control)

  outputs = [a.name for a in fdef.signature.output_arg]
  if set(fdef.ret) != set(outputs):
    raise NotShareable('ret does not match the output arguments')
  rets = []
  for name in outputs:
    text = fdef.ret[name]
    head, colon, tail = text.partition(':')
    source = index.get(head) if colon else -1 - args.get(text, -1)
    if source is None or source == 0 and not colon:
      raise NotShareable(f'output {text!r} names no node output or argument')
    rets.append((source, colon + tail))
  control_rets = []
  for target in fdef.control_ret.values():
    if target not in index:
      raise NotShareable(f'control output {target!r} names no node')
    control_rets.append(index[target])
  return index, args, Edges(sources, tails, control, rets, control_rets)


def numbering(wiring: Edges, ops: Sequence[str]) -> List[int]:
  """Canonical node numbers of a function with ``wiring`` and ``ops`` (original op names)."""
  return _number(wiring.sources, wiring.control, ops, [r for r, _ in wiring.rets if r >= 0],
                 wiring.control_rets)


def _number(sources: Sequence[Sequence[int]], control: Sequence[Sequence[int]], ops: Sequence[str],
            output_nodes: Sequence[int], control_rets: Sequence[int]) -> List[int]:
  """Canonical node numbers: a depth-first postorder (inputs before their consumers).

  The walk starts at the outputs in output order and follows data inputs in
  input order, then control inputs (a set: numbered ones by number first,
  the others by op); then the control outputs, then anything left (nodes
  nothing depends on), by op. Only nodes alike in all of that are ordered
  by their position in the file.
  """
  count = len(sources)
  number = [-1] * count
  active = [False] * count
  next_number = 0

  def by_structure(i: int):
    return (number[i] < 0, number[i], ops[i], i)

  def children(i: int) -> List[int]:
    kids = [s for s in sources[i] if s >= 0]
    if control[i]:
      kids.extend(sorted(set(control[i]), key=by_structure))
    return kids

  def walk(root: int) -> None:
    nonlocal next_number
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
        number[node] = next_number
        next_number += 1

  for root in output_nodes:
    walk(root)
  for root in sorted(set(control_rets), key=by_structure):
    walk(root)
  for root in sorted((i for i in range(count) if number[i] < 0), key=by_structure):
    walk(root)
  return number


def _colocated(text: bytes, index: Dict[str, int], names: List[str]) -> bytes:
  if text.startswith(b'loc:@'):
    target = text[5:].decode('utf-8', 'replace')
    if target in index:
      return b'loc:@' + names[index[target]].encode()
  return text
