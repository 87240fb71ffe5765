"""One registered graph per architecture, shared by every site of that architecture.

``tf.saved_model.load`` rebuilds every function of a SavedModel in Python
(the signature's, the other signatures', the save and restore functions),
recreates its object graph and restores its checkpoint: tens of
milliseconds even for a two-layer network. What a site's signature runs is
much less: its canonical functions (:mod:`models.site.architecture_key`) and its
captured inputs. A :class:`SharedGraph` registers those functions once per
architecture in TensorFlow's eager context (as the loader registers the
functions it rebuilds) and calls the signature's function as a loaded
signature does: one eager call, the inputs in the signature's argument
order, then the captures. Outputs are bit for bit those of the site's own
full load.

Each site model keeps only its own variable values, bound to the graph by
structural role. The graph holds one variable per captured variable, and a
site's values are assigned under the graph's lock before its rows run
(consecutive chunks of one site skip the assignment): the graph is the
site's own program, reads of resource variables included, so its outputs
are those of the full load bit for bit.

``bind_values=True`` instead lets the graph take the values as inputs when
the signature only reads its variables (:mod:`models.site.value_binding`):
no assignment, no lock, sites of one architecture run concurrently. It is
off by default because the rewritten program is not always fused the same
way: on an AMD EPYC with AVX-512, TensorFlow's oneDNN rewrites gave a
``tanh`` layer outputs 2.4e-7 away from the full load's (``relu`` and
linear layers matched), which a job promising a site's own model's outputs
must not do. It measured within noise of the default at 10,000 sites.

:class:`SharedGraphs` counts each graph's users (site models in the pool):
when the pool evicts the last site of an architecture, the graph goes too;
its functions leave the eager context and its variables are freed once
nothing references the graph (TensorFlow counts function registrations, so
architectures sharing a function never remove it from each other).

Error policy: anything that keeps a site from sharing (unkeyable signature,
unreadable weights, a graph TensorFlow refuses) is :class:`NotShareable`;
the site is then loaded in full on its own, and only a failing full load is
a :class:`~models.site.errors.RecordFailure`.
"""
import contextlib
import functools
import logging
import threading
import time
import weakref
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import tensorflow as tf
from tensorflow.core.protobuf import struct_pb2
from tensorflow.python.eager import context as eager_context
from tensorflow.python.ops import gen_resource_variable_ops

from common.failures import RecordFailure
from models.site import signature_inputs
from models.site import variable_restore
from models.site.architecture_cache import ArchitectureCache
from models.site.architecture_key import Architecture
from models.site.architecture_key import NotShareable
from models.site.architecture_key import read_architecture
from models.site.site_model import SiteModel
from models.site.site_model import load_local
from models.site.layout import ModelLocation
from models.site.value_binding import value_program
from common import paths

_LOGGER = logging.getLogger(__name__)

# What a site model sharing a graph adds besides its weights (the SiteModel,
# its bound signature, one eager tensor per weight), measured as RSS growth
# over 1,000 Keras sites of four variables: about 5.5 KiB.
SITE_OVERHEAD_BYTES = 6 * 1024


class _Call(NamedTuple):
  """How a registered signature function is called: one per shared graph."""
  name: bytes  # the registered function
  keywords: Tuple[str, ...]  # the signature's inputs, in argument order
  specs: Tuple[tf.TensorSpec, ...]  # their specs, in that order
  output_keys: Tuple[str, ...]  # the outputs, in result order (sorted, as a dict flattens)
  input_specs: Dict[str, tf.TensorSpec]
  output_specs: Dict[str, tf.TensorSpec]


class BoundSignature:
  """A site's signature on a shared graph: ``(**inputs) -> {output key: tensor}``.

  Calls the registered function with the inputs in argument order, then
  the captures (this site's values, or the graph's variables, and
  constants), as a loaded signature does. Inputs are checked as a loaded
  signature checks them (every keyword, dtype, shape compatible with its
  spec); ``TypeError`` otherwise.
  """

  __slots__ = ('_call', '_captures')

  def __init__(self, call: _Call, captures: Sequence[tf.Tensor]):
    self._call = call
    self._captures = list(captures)

  @property
  def structured_input_signature(self):
    return (), dict(self._call.input_specs)

  @property
  def structured_outputs(self):
    return dict(self._call.output_specs)

  def __call__(self, **inputs) -> Dict[str, tf.Tensor]:
    call = self._call
    if len(inputs) != len(call.keywords) or any(k not in inputs for k in call.keywords):
      raise TypeError(f'expected inputs {list(call.keywords)}, got {sorted(inputs)}')
    flat = []
    for keyword, spec in zip(call.keywords, call.specs):
      value = inputs[keyword]
      if not isinstance(value, tf.Tensor):
        value = tf.convert_to_tensor(value, spec.dtype)
      if value.dtype != spec.dtype or not spec.shape.is_compatible_with(value.shape):
        raise TypeError(f'input {keyword!r} is {value.dtype.name}{value.shape}, '
                        f'the signature takes {spec.dtype.name}{spec.shape}')
      flat.append(value)
    outputs = eager_context.context().call_function(call.name, flat + self._captures,
                                                    len(call.output_keys))
    return dict(zip(call.output_keys, outputs))


def _tensor_specs(value) -> Dict[str, tf.TensorSpec]:
  """A ``dict_value`` of ``tensor_spec_value``s as TensorSpecs by key.

  Raises:
    NotShareable: any other structure (nested, composite, not a mapping).
  """
  if value.WhichOneof('kind') != 'dict_value':
    raise NotShareable('the signature does not map names to tensors')
  specs = {}
  for key, field in value.dict_value.fields.items():
    if field.WhichOneof('kind') != 'tensor_spec_value':
      raise NotShareable(f'signature value {key!r} is not a plain tensor')
    spec = field.tensor_spec_value
    shape = None if spec.shape.unknown_rank else [
        None if d.size < 0 else d.size for d in spec.shape.dim
    ]
    specs[key] = tf.TensorSpec(shape, tf.dtypes.as_dtype(spec.dtype), spec.name or None)
  return specs


def _signature_specs(program) -> Tuple[Dict[str, tf.TensorSpec], Dict[str, tf.TensorSpec]]:
  """The signature's input specs (keyword arguments only) and output specs."""
  inputs = struct_pb2.StructuredValue.FromString(program.input_signature)
  if (inputs.WhichOneof('kind') != 'tuple_value' or len(inputs.tuple_value.values) != 2
      or inputs.tuple_value.values[0].WhichOneof('kind') != 'tuple_value'
      or inputs.tuple_value.values[0].tuple_value.values):
    raise NotShareable('the signature takes positional arguments')
  specs = _tensor_specs(inputs.tuple_value.values[1])
  outputs = _tensor_specs(struct_pb2.StructuredValue.FromString(program.output_signature))
  if set(specs) != set(program.argument_keywords):
    raise NotShareable('the signature\'s keywords are not its inputs')
  return specs, outputs


def _release(function_names: Sequence[str], handles: Sequence[tf.Tensor]) -> None:
  """Frees a graph's functions and variables (when nothing references the graph)."""
  ctx = eager_context.context()
  for name in reversed(function_names):
    try:
      ctx.remove_function(name)
    except Exception:  # pylint: disable=broad-except
      _LOGGER.debug('Function %s was already removed', name)
  for handle in handles:
    try:
      gen_resource_variable_ops.destroy_resource_op(handle, ignore_lookup_error=True)
    except Exception:  # pylint: disable=broad-except
      _LOGGER.debug('Variable resource was already freed')


class SharedGraph:
  """An architecture's functions, registered once; sites bind their values by role.

  When every captured variable is only read (:mod:`models.site.value_binding`),
  each site passes its own values as inputs (:meth:`bind`): nothing is
  assigned, nothing is locked. Otherwise the graph holds one variable per
  captured variable and :meth:`activated` assigns a site's values under the
  graph's lock.
  """

  def __init__(self,
               architecture: Architecture,
               weights: variable_restore.Weights,
               *,
               bind_values: bool = False) -> None:
    """Registers the program (with variables holding ``weights`` if it needs them).

    ``bind_values``: take the values as inputs where the program allows (see
    the module docstring) instead of holding variables.

    Raises:
      NotShareable: the signature's structure is not a flat mapping of
        tensors, or TensorFlow refuses the functions.
    """
    program = architecture.program
    self.key = architecture.key
    self.roles = tuple(v.role for v in architecture.variables)
    self._positions = tuple(v.position for v in architecture.variables)
    specs, output_specs = _signature_specs(program)
    root = next(f for f in program.functions if f.signature.name == program.function_name)
    if len(output_specs) != len(root.signature.output_arg):
      raise NotShareable('the signature function does not return one tensor per output')
    values = value_program(program, architecture.variables) if bind_values else None
    self.binds_values = values is not None
    functions = values.functions if values else program.functions
    name = values.function_name if values else program.function_name

    ctx = eager_context.context()
    registered: List[str] = []
    handles: List[tf.Tensor] = []
    self._finalizer = weakref.finalize(self, _release, registered, handles)
    self._finalizer.atexit = False  # the eager context goes with the process anyway
    try:
      for function in functions:
        ctx.add_function_def(function)
        registered.append(function.signature.name)
      captures: List[Optional[tf.Tensor]] = [None] * program.num_captures
      for constant in program.constants:
        captures[constant.position] = tf.constant(tf.make_ndarray(constant.value))
      if not self.binds_values:
        for variable in architecture.variables:
          # The anonymous name keeps TensorFlow's kernel cache from growing per variable.
          handle = gen_resource_variable_ops.var_handle_op(
              dtype=tf.dtypes.as_dtype(variable.dtype),
              shape=variable.shape,
              shared_name=eager_context.anonymous_name())
          handles.append(handle)
          captures[variable.position] = handle
        variable_restore.assign(handles, weights)
    except (tf.errors.OpError, ValueError, TypeError) as e:
      self._finalizer()
      raise NotShareable(f'TensorFlow refused the shared graph: {e}') from e
    self.function_names = tuple(registered)
    self._handles = tuple(handles)
    self._captures = tuple(captures)
    self._lock = threading.Lock()
    self._active: Optional[variable_restore.Weights] = None if self.binds_values else weights
    keywords = tuple(program.argument_keywords)
    self._call = _Call(name.encode(), keywords, tuple(specs[k] for k in keywords),
                       tuple(sorted(output_specs)), specs, output_specs)
    self._shared_signature = BoundSignature(self._call, captures)
    self.inputs = signature_inputs.signature_inputs(self._shared_signature)
    self.output_names = sorted(output_specs)
    self.num_bytes = (variable_restore.weights_bytes(weights) + sum(f.ByteSize()
                                                                    for f in functions))

  def bind(self, weights: variable_restore.Weights) -> BoundSignature:
    """The signature a site with ``weights`` (in this graph's role order) calls."""
    if not self.binds_values:
      return self._shared_signature
    captures = list(self._captures)
    for position, value in zip(self._positions, weights):
      captures[position] = signature_inputs.eager_tensor(value)
    return BoundSignature(self._call, captures)

  def activated(self, weights: Optional[variable_restore.Weights]):
    """Holds the graph for a site with ``weights``: nothing to do when values are bound."""
    if self.binds_values:
      return contextlib.nullcontext()
    return self._variables_holding(weights)

  @contextlib.contextmanager
  def _variables_holding(self, weights: variable_restore.Weights):
    """Holds the graph exclusively with ``weights`` in its variables."""
    with self._lock:
      if self._active is not weights:
        self._active = None  # half-assigned weights belong to nobody
        variable_restore.assign(self._handles, weights)
        self._active = weights
      yield


class SharedGraphs:
  """Thread-safe registry of shared graphs by architecture key, with user counts."""

  def __init__(self, *, bind_values: bool = False) -> None:
    self.bind_values = bind_values  # for the graphs it makes (SharedGraph)
    self._lock = threading.Lock()
    self._graphs: Dict[str, List] = {}  # key -> [graph, users]
    self._key_locks: Dict[str, threading.Lock] = {}
    self._bytes = 0
    self.architectures = ArchitectureCache()

  @property
  def size(self) -> int:
    return len(self._graphs)

  @property
  def num_bytes(self) -> int:
    return self._bytes

  def acquire(self, key: str, load: Callable[[], SharedGraph]) -> Tuple[SharedGraph, bool]:
    """The graph for ``key`` (one more user), made with ``load`` if absent.

    Returns:
      (graph, made_now). Errors from ``load`` propagate; nothing is held then.
    """
    found = self._take(key)
    if found is not None:
      return found, False
    with self._key_lock(key):
      found = self._take(key)  # another thread may have made it meanwhile
      if found is not None:
        return found, False
      graph = load()
      with self._lock:
        self._graphs[key] = [graph, 1]
        self._bytes += graph.num_bytes
        self._key_locks.pop(key, None)
      return graph, True

  def release(self, graph: SharedGraph) -> None:
    """One user fewer; the last one drops the graph."""
    with self._lock:
      entry = self._graphs.get(graph.key)
      if entry is None or entry[0] is not graph:
        return
      entry[1] -= 1
      if entry[1] == 0:
        del self._graphs[graph.key]
        self._bytes -= graph.num_bytes

  def users(self, key: str) -> int:
    with self._lock:
      entry = self._graphs.get(key)
      return entry[1] if entry else 0

  def _take(self, key: str) -> Optional[SharedGraph]:
    with self._lock:
      entry = self._graphs.get(key)
      if entry is None:
        return None
      entry[1] += 1
      return entry[0]

  def _key_lock(self, key: str) -> threading.Lock:
    with self._lock:
      return self._key_locks.setdefault(key, threading.Lock())


def load_sharing_graphs(location: ModelLocation, signature_name: str,
                        graphs: SharedGraphs) -> SiteModel:
  """Loads a site model on the shared graph of its architecture (made if absent).

  Sites whose architecture cannot be keyed, or whose weights cannot be read
  by identity, are loaded in full on their own (as :func:`load_site_model`).
  The returned model holds one user of its ``graph``; whoever drops the
  model must :meth:`SharedGraphs.release` it.

  Raises:
    RecordFailure: as :func:`load_site_model`.
  """
  started = time.perf_counter()
  # Local folders are read in place: their architectures are remembered by file identity.
  if paths.is_local(location.path):
    read = graphs.architectures.read
  else:
    read = functools.partial(read_architecture, known=graphs.architectures.known)
  with paths.localize_tree(location.path) as local_dir:
    try:
      architecture = read(local_dir, signature_name)
      weights = variable_restore.read_weights(local_dir, architecture)
      graph, made_now = graphs.acquire(
          architecture.key,
          lambda: SharedGraph(architecture, weights, bind_values=graphs.bind_values))
    except NotShareable as e:
      _LOGGER.debug('Site %s loads on its own: %s', location.site_id, e)
      return load_local(location, local_dir, signature_name, started)
  if made_now:
    _LOGGER.info('Registered the graph of architecture %s from site %s', architecture.key[:12],
                 location.site_id)
  else:
    try:
      weights = variable_restore.by_roles(architecture, weights, graph.roles)
    except NotShareable as e:
      graphs.release(graph)
      _LOGGER.warning('Site %s loads on its own: %s', location.site_id, e)
      with paths.localize_tree(location.path) as local_dir:
        return load_local(location, local_dir, signature_name, started)
  return SiteModel(location,
                   graph.bind(weights),
                   num_bytes=variable_restore.weights_bytes(weights) + SITE_OVERHEAD_BYTES,
                   load_ms=(time.perf_counter() - started) * 1000,
                   graph=graph,
                   weights=None if graph.binds_values else _as_tensors(weights),
                   fast_path=not made_now,
                   inputs=graph.inputs,
                   output_names=graph.output_names)


def _as_tensors(weights: variable_restore.Weights) -> Tuple[tf.Tensor, ...]:
  """The weights as tensors, made once per site: assigning a tensor into a
  variable takes less than half the time of assigning its NumPy array (which
  is converted on every assignment, once per chunk)."""
  return tuple(map(signature_inputs.eager_tensor, weights))
