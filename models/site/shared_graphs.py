"""One loaded graph per architecture, shared by every site of that architecture.

Loading a SavedModel (``tf.saved_model.load``: parse, build every function,
restore) costs tens of milliseconds even for a two-layer network and most of
a site model's memory; reading a site's variables costs about one. Sites
whose signatures compute the same program (:mod:`models.site.architecture_key`)
therefore share one fully loaded :class:`SharedGraph`, and each site model
keeps only its own variable values. Before a site's rows run, its values are
assigned into the graph's variables under the graph's lock, so threads of a
worker never see two sites' weights mixed; consecutive chunks of one site
skip the assignment.

:class:`SharedGraphs` counts each graph's users (site models in the pool):
when the pool evicts the last site of an architecture, its graph goes too.
"""
import contextlib
import logging
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from models.site import variable_restore
from models.site.architecture_key import NotShareable
from models.site.architecture_key import read_architecture
from models.site.site_model import SiteModel
from models.site.site_model import load_local
from models.site.layout import ModelLocation
from common import paths

_LOGGER = logging.getLogger(__name__)

# Python objects of a site model sharing a graph (the SiteModel, its weight
# tuple, array headers), measured with tracemalloc: about 0.8 KiB.
SITE_OVERHEAD_BYTES = 1024


class SharedGraph:
  """A fully loaded SavedModel that runs any site of its architecture."""

  def __init__(self, key: str, model: SiteModel, variables) -> None:
    """
    Args:
      key: the architecture key.
      model: the site model loaded in full whose graph this becomes.
      variables: its signature's captured variables, in capture order.
    """
    self.key = key
    self.model = model
    self.num_bytes = model.num_bytes
    self._variables = tuple(variables)
    self._lock = threading.Lock()
    self._active: Optional[variable_restore.Weights] = None

  @contextlib.contextmanager
  def activated(self, weights: variable_restore.Weights):
    """Holds the graph exclusively with ``weights`` in its variables."""
    with self._lock:
      if self._active is not weights:
        self._active = None   # half-assigned weights belong to nobody
        variable_restore.assign(self._variables, weights)
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
    """The graph for ``key`` (one more user), loading it with ``load`` if absent.

    Returns:
      (graph, loaded_now). Errors from ``load`` propagate; nothing is held then.
    """
    found = self._take(key)
    if found is not None:
      return found, False
    with self._key_lock(key):
      found = self._take(key)   # another thread may have loaded it meanwhile
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
  """Loads a site model, sharing the graph of an already loaded architecture.

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
    except NotShareable as e:
      _LOGGER.debug('Site %s loads on its own: %s', location.site_id, e)
      return load_local(location, local_dir, signature_name, started)

    loaded_alone: List[SiteModel] = []

    def load_graph() -> SharedGraph:
      model = load_local(location, local_dir, signature_name, started)
      loaded_alone.append(model)
      variables = variable_restore.bound_variables(model.signature, architecture)
      return SharedGraph(architecture.key, model, variables)

    try:
      graph, loaded_now = graphs.acquire(architecture.key, load_graph)
    except NotShareable as e:
      _LOGGER.warning('Site %s loads on its own: %s', location.site_id, e)
      return loaded_alone[0]
  if loaded_now:
    _LOGGER.info('Loaded the graph of architecture %s from site %s',
                 architecture.key[:12], location.site_id)
  return SiteModel(
      location, graph.model.signature,
      num_bytes=variable_restore.weights_bytes(weights) + SITE_OVERHEAD_BYTES,
      load_ms=(time.perf_counter() - started) * 1000,
      graph=graph, weights=weights, fast_path=not loaded_now,
      inputs=graph.model.inputs, output_names=graph.model.output_names)
