"""A shared program that takes each site's variable values as inputs instead of variables.

A signature captures its variables as resource handles, and its functions
read them with ``ReadVariableOp``. A shared graph holding one set of
variables must assign each site's values into them before every site's
rows run; making a variable costs a kernel per new shape (about a
millisecond each, for every architecture of a "nothing shares" worker).
When every use of a captured variable is a plain read, the program can take
the value itself instead: :func:`value_program` rewrites the canonical
functions (:mod:`models.site.canonical_function`) so that

- each captured variable's argument has the variable's dtype instead of
  ``DT_RESOURCE`` (its handle data and ``_output_shapes`` hint go, and its
  ``resource_arg_unique_id`` entry);
- each ``ReadVariableOp`` of it becomes an ``Identity`` of the argument (the
  value a read returns; consumers of ``node:value:0`` read ``node:output:0``);
- each call op passing it on passes the value instead (``Tin`` says the
  dtype, ``_read_only_resource_inputs`` no longer lists it), into a copy of
  the callee rewritten the same way.

Every other op, attribute and edge stays, so a site's outputs are those of
its own full load, bit for bit. A variable used any other way (a sparse
read, a shape query, passed to a loop body, returned) keeps the program as
it is: :func:`value_program` returns None and the graph holds variables.
"""
import hashlib
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from tensorflow.core.framework import function_pb2
from tensorflow.core.framework import types_pb2

from models.site.architecture_key import CapturedVariable
from models.site.architecture_key import Program
from models.site.canonical_function import CALL_OPS

VALUE_PREFIX = '__site_fv_'
_READ = 'ReadVariableOp'


class ValueProgram(NamedTuple):
  """The rewritten functions (callees first) and the name of the one to call."""
  function_name: str
  functions: Tuple[function_pb2.FunctionDef, ...]


class _Unsupported(Exception):
  """A captured variable is used as something other than a value."""


def value_program(program: Program,
                  variables: Sequence[CapturedVariable]) -> Optional[ValueProgram]:
  """``program`` taking ``variables`` (of its captures) as values, or None if it cannot."""
  library = {f.signature.name: f for f in program.functions}
  root = library[program.function_name]
  num_inputs = len(root.signature.input_arg) - program.num_captures
  dtypes = {num_inputs + v.position: v.dtype for v in variables}
  made: Dict[Tuple[str, Tuple[Tuple[int, int], ...]], str] = {}
  out: List[function_pb2.FunctionDef] = []
  try:
    name = _rewrite(library, program.function_name, dtypes, made, out)
  except _Unsupported:
    return None
  kept = {f.signature.name: f for f in program.functions}
  needed = _reachable(name, {f.signature.name: f for f in out}, kept)
  return ValueProgram(name, tuple(needed))


def _rewrite(library: Dict[str, function_pb2.FunctionDef], name: str, dtypes: Dict[int, int],
             made: Dict, out: List[function_pb2.FunctionDef]) -> str:
  """The name of ``library[name]`` rewritten to take arguments ``dtypes`` as values."""
  memo_key = (name, tuple(sorted(dtypes.items())))
  if memo_key in made:
    return made[memo_key]
  fdef = function_pb2.FunctionDef()
  fdef.CopyFrom(library[name])
  args = fdef.signature.input_arg
  for position, dtype in dtypes.items():
    if args[position].type != types_pb2.DT_RESOURCE:
      raise _Unsupported(f'argument {position} of {name} is not a resource')
    args[position].type = dtype
    args[position].ClearField('handle_data')
    if position in fdef.arg_attr:
      for hint in ('_output_shapes', '_handle_dtypes', '_handle_shapes'):
        if hint in fdef.arg_attr[position].attr:
          del fdef.arg_attr[position].attr[hint]
    if position in fdef.resource_arg_unique_id:
      del fdef.resource_arg_unique_id[position]
  refs = {f'a{position}': position for position in dtypes}
  for value in fdef.ret.values():
    if value in refs:
      raise _Unsupported(f'{name} returns a variable')
  reads = set()
  for node in fdef.node_def:
    slots = [(slot, refs[text]) for slot, text in enumerate(node.input) if text in refs]
    if not slots:
      continue
    if node.op == _READ and len(node.input) >= 1 and slots == [(0, slots[0][1])]:
      if node.attr['dtype'].type != dtypes[slots[0][1]]:
        raise _Unsupported(f'{node.name} reads another dtype')
      node.op = 'Identity'
      node.attr['T'].type = node.attr['dtype'].type
      del node.attr['dtype']
      reads.add(node.name)
    elif node.op in CALL_OPS and 'f' in node.attr and node.attr['f'].func.name in library:
      callee = {slot: dtypes[position] for slot, position in slots}
      node.attr['f'].func.name = _rewrite(library, node.attr['f'].func.name, callee, made, out)
      for slot, dtype in callee.items():
        node.attr['Tin'].list.type[slot] = dtype
      if '_read_only_resource_inputs' in node.attr:
        listed = node.attr['_read_only_resource_inputs'].list.i
        kept = [i for i in listed if i not in callee]
        del listed[:]
        listed.extend(kept)
    elif node.op in library:
      callee = {slot: dtypes[position] for slot, position in slots}
      node.op = _rewrite(library, node.op, callee, made, out)
    else:
      raise _Unsupported(f'{node.op} uses a variable')
  if reads:
    renamed = {f'{n}:value:': f'{n}:output:' for n in reads}
    for node in fdef.node_def:
      for slot, text in enumerate(node.input):
        head = text[:text.rfind(':') + 1]
        if head in renamed:
          node.input[slot] = renamed[head] + text[len(head):]
    for key, text in list(fdef.ret.items()):
      head = text[:text.rfind(':') + 1]
      if head in renamed:
        fdef.ret[key] = renamed[head] + text[len(head):]
  fdef.signature.name = ''
  fdef.signature.name = VALUE_PREFIX + hashlib.sha256(
      fdef.SerializeToString(deterministic=True)).hexdigest()
  made[memo_key] = fdef.signature.name
  out.append(fdef)
  return fdef.signature.name


def _called(fdef: function_pb2.FunctionDef) -> List[str]:
  """Every function name ``fdef`` mentions: node ops and function-valued attributes."""
  names: List[str] = []

  def attr_names(value) -> None:
    kind = value.WhichOneof('value')
    funcs = [value.func] if kind == 'func' else list(value.list.func) if kind == 'list' else []
    for func in funcs:
      names.append(func.name)
      for inner in func.attr.values():
        attr_names(inner)

  for node in fdef.node_def:
    names.append(node.op)
    for value in node.attr.values():
      attr_names(value)
  for value in fdef.attr.values():
    attr_names(value)
  return names


def _reachable(root: str, rewritten: Dict[str, function_pb2.FunctionDef],
               kept: Dict[str, function_pb2.FunctionDef]) -> List[function_pb2.FunctionDef]:
  """``root`` and the functions it calls (rewritten or kept as they were), callees first."""
  everything = {**kept, **rewritten}
  order: List[str] = []
  seen = set()

  def visit(name: str) -> None:
    seen.add(name)
    for callee in _called(everything[name]):
      if callee in everything and callee not in seen:
        visit(callee)
    order.append(name)

  visit(root)
  return [everything[name] for name in order]
