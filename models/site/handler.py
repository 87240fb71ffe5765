"""Beam ``ModelHandler`` running each site's SavedModel on that site's chunk of rows.

Beam's own TF handlers cannot load plain SavedModel folders on this stack
(they go through ``tf.keras.models.load_model``) and hold one model per
transform; its ``KeyedModelHandler`` needs every key at construction. Here
the "model" handed to ``RunInference`` is a :class:`SiteModelPool`, and each
element is a :class:`SiteChunk`: rows of one site. What each row feeds is
decided here, once the site's signature is known
(:mod:`models.site.row_feed`: the instance config, and typing of text rows).
"""
import sys
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, NamedTuple, Optional
from typing import Sequence

from apache_beam.ml.inference.base import ModelHandler
from apache_beam.ml.inference.base import PredictionResult

from common import heap
from common import tensorflow_import
from common.failures import RecordFailure
from models.site.instance_config import InstanceConfig
from models.site.pool_bounds import DEFAULT_MAX_BYTES
from models.site.pool_bounds import DEFAULT_MAX_MODELS

# This module imports no TensorFlow: a pipeline that holds a SiteModelHandler is built
# without it, and only the processes that load models import it (import_model_modules).
if TYPE_CHECKING:
  from models.site.pool import SiteModelPool


class SiteChunk(NamedTuple):
  """Rows of one site, in input order; ``sources`` (file or table per row)
  ride along for dead letters and are not used for inference. ``num_bytes``:
  the rows' JSON size when known (Beam's byte metrics), else estimated.
  ``texts``: each row's JSON text where the outputs may echo it as it is
  (:func:`transforms.json_lines.writes_verbatim`), else None."""
  site_id: str
  rows: List[Dict[str, Any]]
  sources: Optional[List[str]] = None
  num_bytes: Optional[int] = None
  texts: Optional[List[str]] = None


class ChunkOutcome(NamedTuple):
  """What happened to a chunk: one RowResult per row, plus model facts."""
  model_version: Optional[str]
  rows: List[Any]  # models.site.site_model.RowResult, one per row
  model_loaded: bool = False
  model_load_ms: float = 0.0
  model_fast_path: bool = False  # loaded now, sharing an already loaded graph


class SiteModelHandler(ModelHandler[SiteChunk, PredictionResult, Any]):
  """``SiteChunk -> PredictionResult(example=chunk, inference=ChunkOutcome)``.

  Error policy: a site without a usable model fails all its rows (reason
  from :class:`RecordFailure`) and no other site's; a row the signature
  cannot take (or cannot feed: :mod:`models.site.row_feed`), or whose
  inference fails, fails alone. Transient errors
  (reading a remote model folder) propagate so the runner retries.
  """

  def __init__(self,
               *,
               model_root: str,
               signature: str = 'serving_default',
               model_version: Optional[str] = None,
               max_models: int = DEFAULT_MAX_MODELS,
               max_bytes: int = DEFAULT_MAX_BYTES,
               share_graphs: bool = True,
               chunks_per_batch: int = 1,
               model_versions: Optional[Mapping[str, str]] = None,
               instance_config: Optional[InstanceConfig] = None,
               text_values: bool = False):
    """
    Args:
      model_root: folder (local or gs://) with one subfolder per site.
      signature: signature name to call in every site's SavedModel.
      model_version: pin this integer version folder instead of the highest.
      model_versions: per-site pins ``site_id -> version`` that win over
        ``model_version`` (a missing pinned version is ``no_model``).
      max_models: most site models one worker process keeps loaded.
      max_bytes: most estimated model bytes one worker process keeps loaded.
      share_graphs: sites of one architecture share one loaded graph and
        keep only their weights (see :mod:`models.site.shared_graphs`).
      chunks_per_batch: chunks handed to one ``run_inference`` call; chunks
        are already site batches, so 1 keeps per-call latency low.
      instance_config: what each row feeds (None: the whole row, by name).
      text_values: rows hold text to type by the signature's dtypes (CSV).
    """
    super().__init__(min_batch_size=1, max_batch_size=chunks_per_batch)
    self._model_root = model_root
    self._signature = signature
    self._model_version = model_version
    self._max_models = max_models
    self._max_bytes = max_bytes
    self._share_graphs = share_graphs
    self._model_versions = dict(model_versions) if model_versions else None
    self._instance_config = instance_config
    self._text_values = text_values

  def load_model(self) -> 'SiteModelPool':
    pool, _ = import_model_modules()
    # Once per worker process, after its imports: the collector leaves
    # them alone while rows stream through (common.heap).
    heap.freeze_set_up_objects()
    # No I/O: site models load lazily, on the first chunk of each site.
    return pool.SiteModelPool(model_root=self._model_root,
                              signature=self._signature,
                              model_version=self._model_version,
                              max_models=self._max_models,
                              max_bytes=self._max_bytes,
                              share_graphs=self._share_graphs,
                              model_versions=self._model_versions)

  def run_inference(self,
                    batch: Sequence[SiteChunk],
                    model: 'SiteModelPool',
                    inference_args: Optional[Dict[str, Any]] = None) -> Iterable[PredictionResult]:
    return [
        PredictionResult(chunk,
                         predict_chunk(model,
                                       chunk,
                                       config=self._instance_config,
                                       text_values=self._text_values),
                         model_id=chunk.site_id) for chunk in batch
    ]

  def get_num_bytes(self, batch: Sequence[SiteChunk]) -> int:
    return sum(chunk.num_bytes if chunk.num_bytes is not None else _estimated_bytes(chunk)
               for chunk in batch)

  def get_metrics_namespace(self) -> str:
    return 'site_predictions'

  def share_model_across_processes(self) -> bool:
    return False


def _estimated_bytes(chunk: SiteChunk) -> int:
  return sum(sys.getsizeof(row) + sum(map(sys.getsizeof, row.values())) for row in chunk.rows)


def import_model_modules():
  """``(models.site.pool, models.site.row_feed)``: the modules that import TensorFlow,
  imported here first without Keras (:mod:`common.tensorflow_import`). Called where
  models load, and by the console launcher of a run whose workers run in its process."""
  tensorflow_import.import_without_keras()
  from models.site import pool, row_feed  # pylint: disable=import-outside-toplevel
  return pool, row_feed


def predict_chunk(pool: 'SiteModelPool',
                  chunk: SiteChunk,
                  *,
                  config: Optional[InstanceConfig] = None,
                  text_values: bool = False) -> ChunkOutcome:
  """Runs one chunk; site-level failures become one RowResult per row.

  ``config`` and ``text_values``: see :func:`models.site.row_feed.predict_rows`.
  """
  try:
    model, loaded_now = pool.get(chunk.site_id)
  except RecordFailure as e:
    from models.site.site_model import RowResult  # pylint: disable=import-outside-toplevel
    return ChunkOutcome(
        None, [RowResult(i, None, e.reason, e.message, e.stage) for i in range(len(chunk.rows))])
  if text_values or (config is not None and not config.feeds_whole_row):
    _, row_feed = import_model_modules()
    results = row_feed.predict_rows(model, chunk.rows, config=config, text_values=text_values)
  else:
    results = model.predict(chunk.rows)
  return ChunkOutcome(model.version, results, loaded_now, model.load_ms if loaded_now else 0.0,
                      loaded_now and model.fast_path)
