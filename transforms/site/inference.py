"""``PredictPerSite``: run each site's model on that site's chunks in RunInference.

Usable from any pipeline::

    from transforms.site.grouping import GroupRowsBySite
    from transforms.site.inference import PredictPerSite
    grouped = records | GroupRowsBySite('site_id')
    result = grouped.chunks | PredictPerSite(model_root='gs://bucket/models')
    result.prediction_batches, result.failed, result.stats   # plus grouped.failed, grouped.stats
"""
from typing import Mapping, NamedTuple, Optional

import apache_beam as beam
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.base import RunInference

from models.site.handler import SiteChunk
from models.site.handler import SiteModelHandler
from models.site.row_results import PredictedRows
from models.site.instance_config import InstanceConfig
from models.site.instance_config import echo_of
from models.site.pool_bounds import DEFAULT_MAX_BYTES
from models.site.pool_bounds import DEFAULT_MAX_MODELS
from transforms.dead_letters import dead_letter
from transforms.dead_letters import failed
from transforms.site.predictions import PredictionBatch


class SiteInferenceResult(NamedTuple):
  prediction_batches: beam.PCollection  # PredictionBatch (List[Prediction]), one per chunk
  failed: beam.PCollection  # dead-letter dicts
  stats: beam.PCollection  # (key tuple, number) for summary.json
  model_loads: beam.PCollection  # (site_id, {model_version, fast_path, load_ms})


class SplitOutcomesFn(beam.DoFn):
  """``PredictionResult(chunk, ChunkOutcome)`` -> a PredictionBatch, dead letters, stats.

  Every row of the chunk ends in exactly one of the first two outputs; the
  predictions of a chunk travel as one list (none when every row failed).
  Dead letters are stage ``predict``, except ``bad_site`` (an id the model
  lookup refused before any I/O, e.g. too long for the model root), which
  is stage ``key_by_site`` as when the packing step refuses it. A dead
  letter's record is the whole row; a prediction's instance is the row as
  ``instance_config`` echoes it.
  """

  def __init__(self, instance_config: Optional[InstanceConfig] = None):
    self._config = (instance_config if instance_config is not None
                    and not instance_config.feeds_whole_row else None)

  def process(self, result: PredictionResult):
    chunk, outcome = result.example, result.inference
    if outcome.model_loaded:
      yield beam.pvalue.TaggedOutput('model_loads', (chunk.site_id, {
          'model_version': outcome.model_version,
          'fast_path': outcome.model_fast_path,
          'load_ms': round(outcome.model_load_ms, 1)
      }))
      yield beam.pvalue.TaggedOutput('stats', (('models_loaded', ), 1))
      yield beam.pvalue.TaggedOutput('stats',
                                     (('model_load_ms_total', ), round(outcome.model_load_ms, 1)))
      if outcome.model_fast_path:
        yield beam.pvalue.TaggedOutput('stats', (('models_fast_path', ), 1))
    rows = outcome.rows
    if isinstance(rows, PredictedRows) and len(rows) == len(chunk.rows):
      # Every row predicted, in order (the usual chunk): columns in, columns out.
      yield self._batch(chunk, outcome.model_version, chunk.sources, chunk.rows, chunk.texts,
                        rows.outputs, rows.texts)
      return
    predicted = [r for r in rows if r.outputs is not None]
    if len(predicted) < len(rows):
      for row_result in rows:
        if row_result.outputs is None:
          yield failed(
              dead_letter(row_result.stage,
                          row_result.reason,
                          row_result.message,
                          site_id=chunk.site_id,
                          source=chunk.sources[row_result.index],
                          record=chunk.rows[row_result.index]))
    if not predicted:
      return
    positions = [r.index for r in predicted]
    sources = [chunk.sources[i] for i in positions]
    instances = [chunk.rows[i] for i in positions]
    texts = None if chunk.texts is None else [chunk.texts[i] for i in positions]
    outputs_texts = [r.outputs_text for r in predicted]
    yield self._batch(chunk, outcome.model_version, sources, instances, texts,
                      [r.outputs for r in predicted],
                      None if all(text is None for text in outputs_texts) else outputs_texts)

  def _batch(self, chunk: SiteChunk, model_version, sources, instances, texts, outputs,
             outputs_texts) -> PredictionBatch:
    if self._config is not None:
      instances = [echo_of(row, self._config) for row in instances]
      texts = None
    return PredictionBatch(chunk.site_id, model_version, sources, instances, outputs, texts,
                           outputs_texts)


class PredictPerSite(beam.PTransform):
  """:class:`SiteChunk` elements -> :class:`SiteInferenceResult`.

  Runs every chunk (made by :class:`transforms.site.grouping.GroupRowsBySite`)
  through ``RunInference`` with :class:`SiteModelHandler` (a lazily filled,
  bounded per-worker pool of site models). Predictions come out as one list
  per chunk.

  Args:
    model_root, signature, model_version: where and what each site's model is.
    model_versions: per-site version pins (``site_id -> version``, see
      :mod:`models.site.version_manifest`); sites not listed take
      ``model_version`` or the highest. A pinned version that does not exist
      fails that site's rows with ``no_model``.
    instance_config: what each row feeds and echoes (None: the whole row).
    text_values: rows hold text (CSV) typed by each site's signature dtypes.
    max_models_per_worker, max_model_bytes_per_worker: per-worker pool bounds.
  """

  def __init__(self,
               *,
               model_root: str,
               signature: str = 'serving_default',
               model_version: Optional[str] = None,
               model_versions: Optional[Mapping[str, str]] = None,
               instance_config: Optional[InstanceConfig] = None,
               text_values: bool = False,
               max_models_per_worker: int = DEFAULT_MAX_MODELS,
               max_model_bytes_per_worker: int = DEFAULT_MAX_BYTES):
    super().__init__()
    self._instance_config = instance_config
    self._handler = SiteModelHandler(model_root=model_root,
                                     signature=signature,
                                     model_version=model_version,
                                     max_models=max_models_per_worker,
                                     max_bytes=max_model_bytes_per_worker,
                                     model_versions=model_versions,
                                     instance_config=instance_config,
                                     text_values=text_values)

  def expand(self, chunks):
    outcomes = (chunks
                | 'RunSiteModels' >> RunInference(self._handler)
                |
                'SplitOutcomes' >> beam.ParDo(SplitOutcomesFn(self._instance_config)).with_outputs(
                    'failed', 'stats', 'model_loads', main='predictions'))
    return SiteInferenceResult(outcomes.predictions, outcomes.failed, outcomes.stats,
                               outcomes.model_loads)
