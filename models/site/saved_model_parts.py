"""The parts of ``saved_model.pb`` a signature's architecture needs, parsed only when used.

A Keras export's ``saved_model.pb`` is mostly what serving a signature does
not run: the top-level graph's nodes, the save and restore functions, the
other signatures' wrappers. Parsing all of it is about half of the key work
of a small model. :func:`read_parts` parses the file with message types
that keep every skipped part as raw bytes (protobuf's wire format lets a
message be read with a schema that declares fewer fields): it reads the
object graph, notes each signature's name (its SignatureDef stays in
bytes) and each library function's name, and parses a function (or a
top-level node, for a captured constant) only when asked for it. What it returns holds exactly the bytes of the file, so
the architecture computed from it is the one a full parse gives.
"""
import functools
from typing import Callable, Container, Dict, Iterator, Mapping, NamedTuple, Optional, Sequence

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from tensorflow.core.framework import function_pb2
from tensorflow.core.framework import node_def_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_object_graph_pb2

_PACKAGE = 'site_models.saved_model_parts'
# name: [(field name, number, repeated, type (a message name, or 'bytes'/'string'))]
# Field numbers are those of tensorflow/core/protobuf/saved_model.proto,
# meta_graph.proto, framework/graph.proto, function.proto and op_def.proto.
_MESSAGES = {
    'SavedModel': [('meta_graphs', 2, True, 'MetaGraph')],
    'MetaGraph': [('graph_def', 2, False, 'Graph'), ('signature_def', 5, True, 'bytes'),
                  ('object_graph_def', 7, False, 'bytes')],
    'Graph': [('node', 1, True, 'bytes'), ('library', 2, False, 'Library')],
    'Node': [('name', 1, False, 'string')],
    'Library': [('function', 1, True, 'bytes')],
    'Function': [('signature', 1, False, 'Name')],
    'Name': [('name', 1, False, 'string')],
    'Entry': [('key', 1, False, 'string')],
}


@functools.lru_cache(maxsize=None)
def _message_classes() -> Dict[str, type]:
  """The skimming message types (built once per process, in a pool of their own)."""
  file = descriptor_pb2.FileDescriptorProto(name='site_models/saved_model_parts.proto',
                                            package=_PACKAGE,
                                            syntax='proto3')
  for name, fields in _MESSAGES.items():
    message = file.message_type.add(name=name)
    for field_name, number, repeated, kind in fields:
      field = message.field.add(
          name=field_name,
          number=number,
          label=(descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
                 if repeated else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL))
      if kind in ('bytes', 'string'):
        field.type = getattr(descriptor_pb2.FieldDescriptorProto, f'TYPE_{kind.upper()}')
      else:
        field.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
        field.type_name = f'.{_PACKAGE}.{kind}'
  pool = descriptor_pool.DescriptorPool()
  pool.Add(file)
  return {
      name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f'{_PACKAGE}.{name}'))
      for name in _MESSAGES
  }


class LazyLibrary(Mapping):
  """Library functions by name; each parsed on first access."""

  def __init__(self, raw: Dict[str, bytes]):
    self._raw = raw
    self._parsed: Dict[str, function_pb2.FunctionDef] = {}

  def __getitem__(self, name: str) -> function_pb2.FunctionDef:
    found = self._parsed.get(name)
    if found is None:
      found = self._parsed[name] = function_pb2.FunctionDef.FromString(self._raw[name])
    return found

  @property
  def raw(self) -> Mapping[str, bytes]:
    """Each function's bytes, by name."""
    return self._raw

  def copy_of(self, name: str) -> function_pb2.FunctionDef:
    """A fresh, modifiable copy of function ``name`` (parsed again from its bytes)."""
    return function_pb2.FunctionDef.FromString(self._raw[name])

  def __contains__(self, name) -> bool:
    return name in self._raw

  def __iter__(self) -> Iterator[str]:
    return iter(self._raw)

  def __len__(self) -> int:
    return len(self._raw)


class Parts(NamedTuple):
  """What :mod:`models.site.architecture_key` reads of a one-meta-graph SavedModel."""
  num_meta_graphs: int
  # Per signature name: its serialized ``SignatureDefEntry`` (name and SignatureDef).
  signature_entries: Mapping[str, bytes]
  object_graph_def: saved_object_graph_pb2.SavedObjectGraph
  library: Mapping[str, function_pb2.FunctionDef]
  graph_node: Callable[[str], Optional[node_def_pb2.NodeDef]]  # the top-level node named so


def read_parts(data: bytes) -> Parts:
  """The parts of a serialized ``SavedModel`` (its first meta graph; see :class:`Parts`).

  Raises:
    google.protobuf.message.DecodeError: the bytes are not a SavedModel.
  """
  classes = _message_classes()
  saved_model = classes['SavedModel'].FromString(data)
  if len(saved_model.meta_graphs) != 1:
    return Parts(len(saved_model.meta_graphs), {}, saved_object_graph_pb2.SavedObjectGraph(), {},
                 lambda name: None)
  meta = saved_model.meta_graphs[0]
  entry_head = classes['Entry']
  signatures = {entry_head.FromString(entry).key: entry for entry in meta.signature_def}
  function_head = classes['Function']
  raw = {}
  for function in meta.graph_def.library.function:
    raw[function_head.FromString(function).signature.name] = function
  return Parts(1, signatures,
               saved_object_graph_pb2.SavedObjectGraph.FromString(meta.object_graph_def),
               LazyLibrary(raw), functools.partial(_graph_node, meta.graph_def.node,
                                                   classes['Node']))


def _graph_node(nodes: Sequence[bytes], head: type, name: str) -> Optional[node_def_pb2.NodeDef]:
  """The first top-level node called ``name`` (only its name is read of the others)."""
  for node in nodes:
    if head.FromString(node).name == name:
      return node_def_pb2.NodeDef.FromString(node)
  return None


def copier(
    library: Mapping[str, function_pb2.FunctionDef]) -> Callable[[str], function_pb2.FunctionDef]:
  """Fresh, modifiable copies of ``library``'s functions, by name."""
  if isinstance(library, LazyLibrary):
    return library.copy_of

  def copy(name: str) -> function_pb2.FunctionDef:
    fresh = function_pb2.FunctionDef()
    fresh.CopyFrom(library[name])
    return fresh

  return copy


def function_names(library: Mapping[str, function_pb2.FunctionDef]) -> Container[str]:
  """``library``'s function names, for fast membership tests (nothing is parsed)."""
  return library.raw if isinstance(library, LazyLibrary) else library


def parts_of(saved_model) -> Parts:
  """:class:`Parts` of an already parsed ``SavedModel`` proto."""
  if len(saved_model.meta_graphs) != 1:
    return Parts(len(saved_model.meta_graphs), {}, saved_object_graph_pb2.SavedObjectGraph(), {},
                 lambda name: None)
  meta_graph = saved_model.meta_graphs[0]
  entries = {}
  for key, signature_def in meta_graph.signature_def.items():
    entry = meta_graph_pb2.MetaGraphDef.SignatureDefEntry(key=key)
    entry.value.CopyFrom(signature_def)
    entries[key] = entry.SerializeToString(deterministic=True)
  return Parts(1, entries, meta_graph.object_graph_def,
               {f.signature.name: f
                for f in meta_graph.graph_def.library.function}, lambda name: next(
                    (n for n in meta_graph.graph_def.node if n.name == name), None))
