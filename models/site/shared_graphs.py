"""One registered graph per architecture, shared by every site of that architecture.

``tf.saved_model.load`` rebuilds every function of a SavedModel in Python
(the signature's, the other signatures', the save and restore functions),
recreates its object graph and restores its checkpoint: tens of
milliseconds even for a two-layer network. What a site's signature runs is
much less: its canonical functions (:mod:`models.site.architecture_key`) and its
captured inputs. A :class:`SharedGraph` registers those functions once per
architecture in TensorFlow's eager context (the way the loader registers the
functions it rebuilds), keeps one variable per captured variable, and calls
the signature's function the way a loaded signature does (one eager call
with the inputs in the signature's argument order, then the captures), so
outputs are bit for bit those of the site's own full load.

Each site model keeps only its own variable values, bound to the graph's
variables by structural role. Before a site's rows run, its values are
assigned under the graph's lock, so threads of a worker never see two sites'
weights mixed; consecutive chunks of one site skip the assignment.

:class:`SharedGraphs` counts each graph's users (site models in the pool):
when the pool evicts the last site of an architecture, the graph goes too;
its functions leave the eager context and its variables are freed once
nothing references the graph (TensorFlow counts function registrations, so
architectures sharing a function never remove it from each other).

Error policy: anything that keeps a site from sharing (unkeyable signature,
unreadable weights, a graph TensorFlow refuses) is :class:`NotShareable`;
the site is then loaded in full on its own, and only a failing full load is
a :class:`~models.site.errors.SiteModelError`.
"""
import contextlib
import logging
import threading
import time
import uuid
import weakref
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from models.site import variable_restore
from models.site.architecture_key import NotShareable
from models.site.architecture_key import read_architecture
from models.site.site_model import SiteModel
from models.site.site_model import load_local
from models.site.layout import ModelLocation
from common import paths
import tensorflow as tf
from tensorflow.core.protobuf import struct_pb2
from tensorflow.python.eager import context as eager_context
from tensorflow.python.ops import gen_resource_variable_ops
from tensorflow.python.saved_model import nested_structure_coder
from models.site import signature_inputs
from models.site.architecture_key import Architecture

_LOGGER = logging.getLogger(__name__)

# Python objects of a site model sharing a graph (the SiteModel, its weight
# tuple, array headers), measured with tracemalloc: about 0.8 KiB.
SITE_OVERHEAD_BYTES = 1024


class BoundSignature:
  """The signature callable of a shared graph: ``(**inputs) -> {output key: tensor}``.

  Checks inputs as a loaded signature does (every keyword, dtype, shape
  compatible with its spec) and raises ``TypeError`` otherwise.
  """

  def __init__(self, function_name: str, keywords: Sequence[str],
               specs: Dict[str, tf.TensorSpec], output_specs: Dict[str, tf.TensorSpec],
               captures: Sequence[tf.Tensor]):
    self._name = function_name.encode()
    self._keywords = tuple(keywords)
    self._specs = [specs[k] for k in self._keywords]
    self._output_keys = tuple(sorted(output_specs))   # the flat order of a dict
    self._output_specs = dict(output_specs)
    self._captures = list(captures)
    self._input_specs = dict(specs)

  @property
  def structured_input_signature(self):
    return (), dict(self._input_specs)

  @property
  def structured_outputs(self):
    return dict(self._output_specs)

  def __call__(self, **inputs) -> Dict[str, tf.Tensor]:
    if len(inputs) != len(self._keywords) or any(k not in inputs for k in self._keywords):
      raise TypeError(f'expected inputs {list(self._keywords)}, got {sorted(inputs)}')
    flat = []
    for keyword, spec in zip(self._keywords, self._specs):
      value = inputs[keyword]
      if not isinstance(value, tf.Tensor):
        value = tf.convert_to_tensor(value, spec.dtype)
      if value.dtype != spec.dtype or not spec.shape.is_compatible_with(value.shape):
        raise TypeError(f'input {keyword!r} is {value.dtype.name}{value.shape}, '
                        f'the signature takes {spec.dtype.name}{spec.shape}')
      flat.append(value)
    outputs = eager_context.context().call_function(
        self._name, flat + self._captures, len(self._output_keys))
    return dict(zip(self._output_keys, outputs))


def _decode(data: bytes):
  return nested_structure_coder.decode_proto(struct_pb2.StructuredValue.FromString(data))


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
  """An architecture's functions, registered once, and one variable per captured variable."""

  def __init__(self, architecture: Architecture, weights: variable_restore.Weights) -> None:
    """Registers the program and creates its variables holding ``weights``.

    Raises:
      NotShareable: the signature's structure is not a flat mapping of
        tensors, or TensorFlow refuses the functions.
    """
    program = architecture.program
    self.key = architecture.key
    self.roles = tuple(v.role for v in architecture.variables)
    unused, specs = _decode(program.input_signature)
    output_specs = _decode(program.output_signature)
    if (unused != () or not isinstance(specs, dict) or set(specs) != set(program.argument_keywords)
        or not isinstance(output_specs, dict)
        or not all(isinstance(s, tf.TensorSpec) for s in (*specs.values(), *output_specs.values()))):
      raise NotShareable('the signature does not map names to tensors')
    root = next(f for f in program.functions if f.signature.name == program.function_name)
    if len(output_specs) != len(root.signature.output_arg):
      raise NotShareable('the signature function does not return one tensor per output')

    ctx = eager_context.context()
    registered: List[str] = []
    handles: List[tf.Tensor] = []
    self._finalizer = weakref.finalize(self, _release, registered, handles)
    try:
      for function in program.functions:
        ctx.add_function_def(function)
        registered.append(function.signature.name)
      captures: List[Optional[tf.Tensor]] = [None] * program.num_captures
      for constant in program.constants:
        captures[constant.position] = tf.constant(tf.make_ndarray(constant.value))
      for variable, value in zip(architecture.variables, weights):
        handle = gen_resource_variable_ops.var_handle_op(
            dtype=tf.dtypes.as_dtype(variable.dtype), shape=variable.shape,
            shared_name=f'site_graph_{uuid.uuid4().hex}')
        handles.append(handle)
        captures[variable.position] = handle
      variable_restore.assign(handles, weights)
    except (tf.errors.OpError, ValueError, TypeError) as e:
      self._finalizer()
      raise NotShareable(f'TensorFlow refused the shared graph: {e}') from e
    self._handles = tuple(handles)
    self._lock = threading.Lock()
    self._active: Optional[variable_restore.Weights] = weights
    self.signature = BoundSignature(program.function_name, program.argument_keywords, specs,
                                    output_specs, captures)
    self.inputs = signature_inputs.signature_inputs(self.signature)
    self.output_names = sorted(output_specs)
    self.num_bytes = (variable_restore.weights_bytes(weights)
                      + sum(f.ByteSize() for f in program.functions))

  @contextlib.contextmanager
  def activated(self, weights: variable_restore.Weights):
    """Holds the graph exclusively with ``weights`` in its variables."""
    with self._lock:
      if self._active is not weights:
        self._active = None   # half-assigned weights belong to nobody
        variable_restore.assign(self._handles, weights)
        self._active = weights
      yield


class SharedGraphs:
  """Thread-safe registry of shared graphs by architecture key, with user counts."""

  def __init__(self) -> None:
    self._lock = threading.Lock()
    self._graphs: Dict[str, List] = {}     # key -> [graph, users]
    self._key_locks: Dict[str, threading.Lock] = {}
    self._bytes = 0

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
      found = self._take(key)   # another thread may have made it meanwhile
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
    SiteModelError: as :func:`load_site_model`.
  """
  started = time.perf_counter()
  with paths.localize_tree(location.path) as local_dir:
    try:
      architecture = read_architecture(local_dir, signature_name)
      weights = variable_restore.read_weights(local_dir, architecture)
      graph, made_now = graphs.acquire(
          architecture.key, lambda: SharedGraph(architecture, weights))
    except NotShareable as e:
      _LOGGER.debug('Site %s loads on its own: %s', location.site_id, e)
      return load_local(location, local_dir, signature_name, started)
  if made_now:
    _LOGGER.info('Registered the graph of architecture %s from site %s',
                 architecture.key[:12], location.site_id)
  else:
    try:
      weights = variable_restore.by_roles(architecture, weights, graph.roles)
    except NotShareable as e:
      graphs.release(graph)
      _LOGGER.warning('Site %s loads on its own: %s', location.site_id, e)
      with paths.localize_tree(location.path) as local_dir:
        return load_local(location, local_dir, signature_name, started)
  return SiteModel(
      location, graph.signature,
      num_bytes=variable_restore.weights_bytes(weights) + SITE_OVERHEAD_BYTES,
      load_ms=(time.perf_counter() - started) * 1000,
      graph=graph, weights=weights, fast_path=not made_now,
      inputs=graph.inputs, output_names=graph.output_names)
