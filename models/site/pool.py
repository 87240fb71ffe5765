"""A per-process, memory-bounded pool of site models, loaded on first use.

This is the "model" Beam's ``RunInference`` holds for the per-site job: one
pool per worker process (shared by its threads), so nothing per-site happens
at pipeline construction and any number of sites can pass through a worker.

Sites of one architecture share one registered graph and keep only their
own weights (:mod:`models.site.shared_graphs`): the first site of an
architecture registers the signature's canonical functions, every further
one only reads its variables (the "fast path"); neither runs
``tf.saved_model.load``. Sites that cannot share are loaded in full.

Bounds, per worker process: ``max_models`` site models, and ``max_bytes`` of
estimated model memory: the sum over site models (weights plus 6 KiB
for a site sharing a graph; variables plus ``saved_model.pb`` size for a site
loaded on its own) plus every shared graph still used by a site in the pool
(its variables plus the size of its function definitions). Beyond either bound the least
recently used site models are evicted; a shared graph goes with the last site
using it. Permanent failures (no model, corrupt model) are remembered so a
site's later chunks fail fast without new I/O.
"""
import collections
import functools
import logging
import threading
from typing import Callable, Dict, Mapping, NamedTuple, Optional

from apache_beam.metrics import Metrics

from common.failures import RecordFailure
from models.site.shared_graphs import SharedGraphs
from models.site.shared_graphs import load_sharing_graphs
from models.site.site_model import SiteModel
from models.site.site_model import load_site_model
from models.site.layout import ModelLocation
from models.site.layout import locate
from models.site.version_manifest import pinned_version
from models.site.pool_bounds import DEFAULT_MAX_BYTES
from models.site.pool_bounds import DEFAULT_MAX_MODELS

_LOGGER = logging.getLogger(__name__)

METRICS_NAMESPACE = 'site_models'
_MAX_REMEMBERED_FAILURES = 100_000

Loader = Callable[[ModelLocation, str], SiteModel]


class Acquired(NamedTuple):
  """A pool hit or load: the model and whether this call loaded it."""
  model: SiteModel
  loaded_now: bool


class SiteModelPool:
  """Thread-safe LRU cache of :class:`SiteModel` by site id."""

  def __init__(self,
               *,
               model_root: str,
               signature: str,
               model_version: Optional[str] = None,
               max_models: int = DEFAULT_MAX_MODELS,
               max_bytes: int = DEFAULT_MAX_BYTES,
               share_graphs: bool = True,
               bind_values: bool = False,
               loader: Optional[Loader] = None,
               model_versions: Optional[Mapping[str, str]] = None):
    """
    Args:
      model_root: folder (local or gs://) with one subfolder per site.
      signature: signature name to call in every site's SavedModel.
      model_version: pin this integer version folder instead of the highest.
      model_versions: per-site pins (``site_id -> version``, a
        :mod:`models.site.version_manifest`) that win over ``model_version``;
        a pinned version that does not exist is the site's ``no_model``.
      max_models: most site models kept.
      max_bytes: most estimated bytes of site models and shared graphs kept.
      share_graphs: share one loaded graph among sites of one architecture.
      bind_values: shared graphs take site values as inputs where they can
        (:mod:`models.site.shared_graphs`; off: exact numerics first).
      loader: replaces the loading function (tests).
    """
    if max_models < 1:
      raise ValueError(f'max_models must be >= 1, got {max_models}')
    self._model_root = model_root
    self._signature = signature
    self._model_version = model_version
    self._model_versions = dict(model_versions) if model_versions else None
    self._max_models = max_models
    self._max_bytes = max_bytes
    self._graphs = SharedGraphs(bind_values=bind_values)
    if loader is None:
      loader = (functools.partial(load_sharing_graphs, graphs=self._graphs)
                if share_graphs else load_site_model)
    self._loader = loader
    self._models: 'collections.OrderedDict[str, SiteModel]' = collections.OrderedDict()
    self._failures: 'collections.OrderedDict[str, RecordFailure]' = collections.OrderedDict()
    self._bytes = 0
    self._lock = threading.Lock()
    self._site_locks: Dict[str, threading.Lock] = {}
    self._loads = Metrics.counter(METRICS_NAMESPACE, 'models_loaded')
    self._fast_loads = Metrics.counter(METRICS_NAMESPACE, 'models_fast_path')
    self._load_failures = Metrics.counter(METRICS_NAMESPACE, 'model_load_failures')
    self._evictions = Metrics.counter(METRICS_NAMESPACE, 'models_evicted')
    self._load_ms = Metrics.distribution(METRICS_NAMESPACE, 'model_load_ms')

  @property
  def size(self) -> int:
    return len(self._models)

  @property
  def num_bytes(self) -> int:
    """Estimated bytes of the site models and the shared graphs they use."""
    return self._bytes + self._graphs.num_bytes

  @property
  def num_graphs(self) -> int:
    """Shared graphs in use by the pool's site models."""
    return self._graphs.size

  def get(self, site_id: str) -> Acquired:
    """The site's model, loading it if needed.

    Raises:
      RecordFailure: the site has no usable model (remembered).
    """
    hit = self._lookup(site_id)
    if hit is not None:
      return Acquired(hit, False)
    with self._site_lock(site_id):
      # Another thread may have loaded it while we waited.
      hit = self._lookup(site_id)
      if hit is not None:
        return Acquired(hit, False)
      try:
        version = pinned_version(site_id, self._model_versions, self._model_version)
        model = self._loader(locate(self._model_root, site_id, version), self._signature)
      except RecordFailure as e:
        self._load_failures.inc()
        self._remember_failure(site_id, e)
        raise
      self._loads.inc()
      if model.fast_path:
        self._fast_loads.inc()
      self._load_ms.update(int(model.load_ms))
      self._insert(site_id, model)
      return Acquired(model, True)

  def _lookup(self, site_id: str) -> Optional[SiteModel]:
    with self._lock:
      failure = self._failures.get(site_id)
      if failure is not None:
        raise failure
      model = self._models.get(site_id)
      if model is not None:
        self._models.move_to_end(site_id)
      return model

  def _site_lock(self, site_id: str) -> threading.Lock:
    with self._lock:
      return self._site_locks.setdefault(site_id, threading.Lock())

  def _remember_failure(self, site_id: str, error: RecordFailure) -> None:
    with self._lock:
      self._failures[site_id] = error
      while len(self._failures) > _MAX_REMEMBERED_FAILURES:
        self._failures.popitem(last=False)
      self._site_locks.pop(site_id, None)

  def _insert(self, site_id: str, model: SiteModel) -> None:
    with self._lock:
      self._models[site_id] = model
      self._bytes += model.num_bytes
      # Evict least recently used, but never the model just loaded.
      while len(self._models) > 1 and (len(self._models) > self._max_models
                                       or self.num_bytes > self._max_bytes):
        _, evicted = self._models.popitem(last=False)
        self._bytes -= evicted.num_bytes
        if getattr(evicted, 'graph', None) is not None:
          self._graphs.release(evicted.graph)
        self._evictions.inc()
      self._site_locks.pop(site_id, None)
