"""A library function's canonical form, told apart from names: templates and their matching.

Exports of one architecture differ in names only, yet canonicalizing every
site's functions again (:func:`~models.site.canonical_function.canonicalize`
renames every node, input and argument, renumbers, sorts and hashes) is most
of the key work of a site on the fast path. A :class:`Template` of a
function canonicalized before (and of each function it calls) keeps what
that canonical form is made of apart from names:

- the function's **erased** bytes: the ``FunctionDef`` with the names that
  canonicalization replaces cleared (node names and inputs, argument and
  output names, ``ret``, ``control_ret``, control outputs, the signature's
  name, the names of the functions node attributes name) and the argument
  hints stripped as canonicalization strips them; everything else byte for
  byte, unknown fields included (what canonicalization merely drops, like
  descriptions and debug info, too: that only asks more of a match);
- its **edges** (:func:`~models.site.canonical_function.edges`): which node
  output or argument feeds each input and output, by position, and the
  reference texts that spell them in that export (:func:`_references`);
- per function-valued node attribute, what canonicalization makes of each
  function named there: the callee's own template, or the name itself
  (a name that is no library function, or an attribute it does not rename).

A function matches a template (:class:`Matching`) when its erased bytes and
its edges are equal and what its attributes name matches (callees
recursively). Then its canonical form *is* the template's: canonicalization
builds every byte of it from the erased fields (copied), the edges (node
numbers, hence names, inputs and outputs) and the callees' canonical names.
Only the call map is the export's own (its callees' names), so roles and
bindings come out as after a full canonicalization, and the key is the same.

Only functions canonicalization treats by those rules alone have templates
(:func:`make_template` says None for the others, which are then always
canonicalized in full): colocation attributes (``_class`` values name
nodes), ops that are library functions, functions named in the function's
own attributes or nested in a renamed callee's attributes. Any difference,
error or doubt is no match, and the caller canonicalizes in full, which
decides.
"""
from typing import Callable, Container, Dict, List, Mapping, NamedTuple, Optional, Tuple

from tensorflow.core.framework import function_pb2

from models.site.canonical_function import CALL_OPS
from models.site.canonical_function import CanonicalFunction
from models.site.canonical_function import Edges
from models.site.canonical_function import NotShareable
from models.site.canonical_function import edges
from models.site.canonical_function import func_attr_names
from models.site.canonical_function import numbering
from models.site.canonical_function import strip_argument_hints

# A fresh, modifiable copy of an export's library function, by name.
Copier = Callable[[str], function_pb2.FunctionDef]


class Named(NamedTuple):
  """A function named in an attribute that canonicalization keeps as it is."""
  name: str
  renamed: bool  # an attribute canonicalization renames (the name is no library function)


class Template(NamedTuple):
  """What a canonical function is made of apart from names (module docstring)."""
  canonical: CanonicalFunction  # the export it was made from: its calls name its callees
  erased: bytes
  edges: Tuple  # _matter of the function's edges
  references: Optional[Tuple]  # _references, None where names are not plain
  number: Tuple[int, ...]  # canonical number of each node, by position
  ops: frozenset  # no library function may be called so
  # Node position -> (func_attr_names of its op; per function-valued attribute,
  # per function named there, its Template or Named; the renamed attributes
  # in canonicalization's order, None where that is the export's map order).
  attrs: Dict[int, Tuple[Optional[Tuple[str, ...]], Dict[str, Tuple], Optional[Tuple[str, ...]]]]
  arg_types: Tuple[int, ...]  # the function's argument dtypes
  roles: Dict[int, str]  # argument position -> role, for resource arguments
  num_bytes: int


def _functions_in(value) -> list:
  """The NameAttrLists an AttrValue holds at its top (empty: it names no function)."""
  kind = value.WhichOneof('value')
  if kind == 'func':
    return [value.func]
  return list(value.list.func) if kind == 'list' else []


def _nested(funcs) -> bool:
  """Whether functions are named inside these NameAttrLists' attributes."""
  return any(
      _functions_in(v) or _nested(_functions_in(v)) for func in funcs for v in func.attr.values())


def _function_attrs(node) -> Dict[str, list]:
  """A node's function-valued attributes: their NameAttrLists, by attribute."""
  found = {}
  for key, value in node.attr.items():
    funcs = _functions_in(value)
    if funcs:
      found[key] = funcs
  return found


def _renamed_order(node, named, found: Mapping[str, list]) -> List[str]:
  """The attributes of ``found`` canonicalization renames, in the order it renames them."""
  return [key for key in (node.attr if named is None else named) if key in found]


def _matter(wiring: Edges) -> Tuple:
  """What canonicalization takes from edges: control inputs and outputs only as sets."""
  return (wiring.sources, wiring.tails, [frozenset(c) for c in wiring.control], wiring.rets,
          frozenset(wiring.control_rets))


def _plain(names: List[str], num_nodes: int) -> bool:
  """Whether node names ``names[:num_nodes]`` and argument names (the rest) read one way.

  Unique, non-empty, and free of ``:`` and ``^``: then a reference text is
  ``name:output:index``, ``^name`` or an argument's name, and names one thing.
  """
  if len(set(names[:num_nodes])) != num_nodes or len(set(
      names[num_nodes:])) != len(names) - num_nodes or '' in names:
    return False
  joined = '/'.join(names)
  return ':' not in joined and '^' not in joined


def _references(fdef, nodes, names: List[str]) -> Optional[Tuple]:
  """Inputs per node and outputs as (prefix, position in ``names``, suffix); control outputs.

  ``names``: node names, then argument names. None where they are not plain.
  """
  if not _plain(names, len(nodes)):
    return None
  index = {name: i for i, name in enumerate(names[:len(nodes)])}

  def reference(text):
    if text[0] == '^':
      return ('^', index[text[1:]], '')
    head, colon, tail = text.partition(':')
    if colon:
      return ('', index[head], colon + tail)
    return ('', len(nodes) + names[len(nodes):].index(text), '')

  inputs = tuple(tuple(reference(text) for text in node.input) for node in nodes)
  outputs = tuple(reference(fdef.ret[arg.name]) for arg in fdef.signature.output_arg)
  return inputs, outputs, frozenset(index[t] for t in fdef.control_ret.values())


def _same_references(fdef, nodes, names: List[str], references: Tuple) -> bool:
  """Whether ``fdef``'s reference texts are ``references`` spelled with its own ``names``.

  Then its edges are the template's: each text reads one way only, to the
  same position. False: not known to be so (its edges are compared instead).
  """
  if not _plain(names, len(nodes)):
    return False
  inputs, outputs, control_outputs = references
  if [node.input[:] for node in nodes] != [[p + names[j] + t for p, j, t in refs]
                                           for refs in inputs]:
    return False
  ret = fdef.ret
  output_names = [arg.name for arg in fdef.signature.output_arg]
  if set(ret) != set(output_names) or [ret[name] for name in output_names
                                       ] != [p + names[j] + t for p, j, t in outputs]:
    return False
  control_ret = fdef.control_ret
  return {control_ret[key] for key in control_ret} == {names[i] for i in control_outputs}


def _erase(fdef: function_pb2.FunctionDef, nodes, args, funcs) -> bytes:
  """``fdef`` without the names canonicalization replaces, serialized; modifies ``fdef``.

  ``funcs``: the NameAttrLists of its function-valued node attributes. What
  canonicalization drops without deriving anything from it (descriptions,
  debug info) stays: equal erased bytes then only ask more of two functions.
  """
  for func in funcs:
    func.ClearField('name')
  for node in nodes:
    node.ClearField('name')
    node.ClearField('input')
  for arg in args:
    arg.ClearField('name')
  for arg in fdef.signature.output_arg:
    arg.ClearField('name')
  signature = fdef.signature
  signature.ClearField('name')
  signature.ClearField('control_output')
  fdef.ClearField('ret')
  fdef.ClearField('control_ret')
  strip_argument_hints(fdef)
  return fdef.SerializeToString(deterministic=True)


def make_template(name: str,
                  library: Container[str],
                  copy: Copier,
                  canonical: Mapping[str, CanonicalFunction],
                  roles: Optional[Dict[int, str]] = None) -> Optional[Template]:
  """The template of library function ``name``, canonical as ``canonical[name]``; or None.

  None for a function canonicalization treats by more than names and edges
  (module docstring), itself or through a callee.
  """
  fdef = copy(name)
  if any(_functions_in(v) or _nested(_functions_in(v)) for v in fdef.attr.values()):
    return None
  nodes = list(fdef.node_def)
  args = list(fdef.signature.input_arg)
  ops = [node.op for node in nodes]
  if any(op in library for op in ops) or any('_class' in node.attr for node in nodes):
    return None
  attrs, funcs = {}, []
  for position, node in enumerate(nodes):
    found = _function_attrs(node)
    if not found:
      continue
    named = func_attr_names(node.op)
    renamed = set(_renamed_order(node, named, found))
    expected = {}
    for key, key_funcs in found.items():
      if key in renamed and _nested(key_funcs):
        return None
      kinds = []
      for func in key_funcs:
        if key in renamed and func.name in library:
          inner = make_template(func.name, library, copy, canonical)
          if inner is None:
            return None
          kinds.append(inner)
        else:
          kinds.append(Named(func.name, key in renamed))
      expected[key] = tuple(kinds)
      funcs.extend(key_funcs)
    order = None if named is None else tuple(_renamed_order(node, named, found))
    attrs[position] = (named, expected, order)
  _, _, wiring = edges(fdef)
  number = tuple(numbering(wiring, ops))
  references = _references(fdef, nodes, [n.name for n in nodes] + [a.name for a in args])
  erased = _erase(fdef, nodes, args, funcs)
  size = len(erased) + canonical[name].definition.ByteSize() + sum(
      t.num_bytes for _, expected, _ in attrs.values() for kinds in expected.values()
      for t in kinds if isinstance(t, Template))
  return Template(canonical[name], erased, _matter(wiring), references, number, frozenset(ops),
                  attrs, tuple(a.type for a in args), dict(roles or {}), size)


class Matching:
  """An export's functions matched to templates, from its signature function down.

  ``done`` ends as ``_canonical_library`` of the export would (its names, its
  callees before their callers), when :meth:`function` matches.
  """

  def __init__(self, library: Container[str], copy: Copier):
    self.library = library
    self.copy = copy
    self.done: Dict[str, CanonicalFunction] = {}
    self.active = set()

  def function(self,
               name: str,
               template: Template,
               fdef: Optional[function_pb2.FunctionDef] = None) -> Optional[CanonicalFunction]:
    """``name``'s canonical function if it matches ``template``, else None.

    ``fdef``: a fresh copy of the function made already (modified here).
    """
    if name in self.done:
      found = self.done[name]
      return found if found.name == template.canonical.name else None
    if name in self.active:
      return None  # a call cycle: canonicalization refuses it
    self.active.add(name)
    try:
      found = self._match(self.copy(name) if fdef is None else fdef, template)
    finally:
      self.active.discard(name)
    if found is not None:
      self.done[name] = found
    return found

  def _match(self, fdef: function_pb2.FunctionDef,
             template: Template) -> Optional[CanonicalFunction]:
    nodes = fdef.node_def[:]
    if len(nodes) != len(template.number) or not template.ops.isdisjoint(self.library):
      return None
    args = fdef.signature.input_arg[:]
    names = [node.name for node in nodes] + [arg.name for arg in args]
    if template.references is None or not _same_references(fdef, nodes, names, template.references):
      try:
        _, _, wiring = edges(fdef)
      except NotShareable:
        return None
      if _matter(wiring) != template.edges:
        return None
    calls, funcs, callees = {}, [], []
    for position, (named, expected, order) in template.attrs.items():
      node = nodes[position]
      attrs = node.attr
      if func_attr_names(node.op) != named:
        return None
      found = {}
      for key, kinds in expected.items():
        key_funcs = _functions_in(attrs[key]) if key in attrs else ()
        if len(key_funcs) != len(kinds):
          return None
        for func, kind in zip(key_funcs, kinds):
          if kind.__class__ is Named and (func.name != kind.name or
                                          (kind.renamed and func.name in self.library)):
            return None
        found[key] = key_funcs
        funcs.extend(key_funcs)
      # Function-valued attributes the template has not are left in the
      # erased bytes, where the template has none: they differ there.
      for key in (order if order is not None else _renamed_order(node, named, found)):
        if node.op in CALL_OPS and key == 'f':
          calls[template.number[position]] = attrs[key].func.name
        callees.extend(zip([f.name for f in found[key]], expected[key]))
    if _erase(fdef, nodes, args, funcs) != template.erased:
      return None
    for name, kind in callees:  # in canonicalization's order
      if kind.__class__ is Template and (name not in self.library
                                         or self.function(name, kind) is None):
        return None
    canonical = template.canonical
    return CanonicalFunction(canonical.name, canonical.definition, canonical.arg_uses, calls)
