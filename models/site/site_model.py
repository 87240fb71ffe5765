"""One site's loaded SavedModel signature, and prediction with per-row isolation.

Error policy of :meth:`SiteModel.predict`: a row the signature cannot take
(:mod:`models.site.signature_inputs`) or whose inference fails is a failed
:class:`RowResult`; so is a row for which the model outputs NaN or an
infinity (``non_finite_output``, naming the outputs): outputs are written
as strict JSON, which has no such values.
"""
import contextlib
import logging
import os
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from common.failures import INFERENCE_FAILED
from common.failures import MODEL_LOAD_FAILED
from common.failures import NON_FINITE_OUTPUT
from common.failures import PREDICT
from common.failures import RecordFailure
from models.site import output_text
from models.site.row_results import OutputColumns
from models.site.row_results import PredictedRows
from models.site.row_results import RowResult
from models.site import signature_inputs
from models.site.layout import SAVED_MODEL_FILE
from models.site.layout import ModelLocation
from common import paths
from models.site.errors import permanent_storage_errors_fail_the_site

_LOGGER = logging.getLogger(__name__)

# TF errors a bad row can raise inside the graph (a failed check, a shape the
# ops reject); anything else is a bug or an outage and propagates.
_ROW_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError,
               tf.errors.UnimplementedError, ValueError, TypeError)


class SiteModel:
  """A site's serving signature with its input specs.

  Either owns its loaded SavedModel (``owner``: the signature's variables
  live as long as it), or runs a :class:`~models.site.shared_graphs.SharedGraph`
  of its architecture with its own ``weights`` put in for each call.
  """

  def __init__(self,
               location: ModelLocation,
               signature: Any,
               *,
               num_bytes: int,
               load_ms: float,
               owner: Any = None,
               graph: Any = None,
               weights: Optional[Tuple[np.ndarray, ...]] = None,
               fast_path: bool = False,
               inputs: Optional[Dict[str, signature_inputs.InputSpec]] = None,
               output_names: Optional[List[str]] = None):
    """
    Args:
      location: where the site's SavedModel was loaded from.
      signature: the concrete signature function to call.
      num_bytes: estimated memory this site model adds to the pool.
      load_ms: time it took to make the model ready.
      owner: the loaded SavedModel object, kept alive with the signature.
      graph: the shared graph ``signature`` belongs to, or None.
      weights: with ``graph``: this site's values of its captured variables.
      fast_path: the graph was already loaded (only weights were read).
      inputs, output_names: precomputed from the signature when shared.
    """
    self.location = location
    self.num_bytes = num_bytes
    self.load_ms = load_ms
    self.graph = graph
    self.fast_path = fast_path
    self._owner = owner
    self._weights = weights
    self._signature = signature
    self.inputs = inputs if inputs is not None else signature_inputs.signature_inputs(signature)
    self.output_names = (output_names
                         if output_names is not None else sorted(signature.structured_outputs))

  @property
  def signature(self) -> Any:
    return self._signature

  @property
  def version(self) -> Optional[str]:
    return self.location.version

  def predict(self, rows: Sequence[Mapping[str, Any]]) -> Sequence[RowResult]:
    """Predicts every row it can; every row gets exactly one RowResult, in row order
    (a :class:`~models.site.row_results.PredictedRows` where all of them predicted)."""
    batches, failures = signature_inputs.batch_rows(self.inputs, rows)
    if len(batches) == 1 and not failures:
      # The usual chunk: every row in one batch, its results kept as columns.
      with self._activated():
        return self._run(batches[0])
    results = [RowResult(i, None, e.reason, e.message) for i, e in failures]
    if batches:
      with self._activated():
        for batch in batches:
          results.extend(self._run(batch))
    if failures or len(batches) > 1:
      results.sort(key=lambda r: r.index)
    return results

  def _activated(self):
    """Holds the shared graph with this site's weights in it, or nothing."""
    if self.graph is None:
      return contextlib.nullcontext()
    return self.graph.activated(self._weights)

  def _run(self, batch: signature_inputs.FeatureBatch) -> Sequence[RowResult]:
    try:
      outputs = self._call(batch.tensors, len(batch.row_indices))
    except _ROW_ERRORS as e:
      if len(batch.row_indices) == 1:
        return [RowResult(batch.row_indices[0], None, INFERENCE_FAILED, _tf_message(e))]
      # One bad row must not fail its neighbours: retry row by row.
      return [r for i in range(len(batch.row_indices)) for r in self._run(_single_row(batch, i))]
    # The arrays as they are (no dict per row): rows read as plain Python values
    # (one tolist per output) only where a step asks for them.
    per_row = OutputColumns(outputs)
    non_finite = _non_finite_rows(outputs)
    if not non_finite:
      return PredictedRows(batch.row_indices, per_row, output_text.rows_text(outputs))
    return [
        RowResult(row, per_row[pos]) if pos not in non_finite else RowResult(
            row, None, NON_FINITE_OUTPUT, non_finite[pos])
        for pos, row in enumerate(batch.row_indices)
    ]

  def _call(self, tensors: Dict[str, np.ndarray], batch_size: int) -> Dict[str, np.ndarray]:
    result = self._signature(**{n: signature_inputs.eager_tensor(v) for n, v in tensors.items()})
    outputs = {name: tensor.numpy() for name, tensor in result.items()}
    for name, value in outputs.items():
      if value.ndim == 0 or value.shape[0] != batch_size:
        raise ValueError(f'output {name!r} has shape {list(value.shape)}, not one value per row '
                         f'(batch of {batch_size})')
    return outputs


def _non_finite_rows(outputs: Dict[str, np.ndarray]) -> Dict[int, str]:
  """Batch positions whose outputs hold NaN or infinities -> a message naming them."""
  bad: Dict[int, List[str]] = {}
  for name, value in sorted(outputs.items()):
    if value.dtype.kind not in 'fc' and value.dtype.name != 'bfloat16':
      continue
    finite = np.isfinite(value).reshape(value.shape[0], -1)
    if finite.all():
      continue
    for pos in np.flatnonzero(~finite.all(axis=1)).tolist():
      first = value[pos].ravel()[~finite[pos]][0]
      bad.setdefault(pos, []).append(f'{name!r} ({first})')
  return {pos: 'model output is not finite: ' + ', '.join(names) for pos, names in bad.items()}


def _single_row(batch: signature_inputs.FeatureBatch, pos: int) -> signature_inputs.FeatureBatch:
  return signature_inputs.FeatureBatch([batch.row_indices[pos]], {
      n: v[pos:pos + 1]
      for n, v in batch.tensors.items()
  })


def _tf_message(error: Exception) -> str:
  message = getattr(error, 'message', None) or str(error)
  return message.strip().splitlines()[0][:500]


def variables_bytes(signature: Any) -> int:
  return int(sum(v.shape.num_elements() * v.dtype.size for v in signature.variables))


def load_site_model(location: ModelLocation, signature_name: str) -> SiteModel:
  """Loads ``location`` with ``tf.saved_model.load`` (remote folders copied locally first).

  Raises:
    RecordFailure: ``model_load_failed`` when the folder is not a loadable
      SavedModel or lacks the signature, or copying it fails in a way
      retrying cannot fix (:func:`is_permanent_storage_error`). Other I/O
      errors while copying a remote folder propagate, so the runner retries them.
  """
  started = time.perf_counter()
  with permanent_storage_errors_fail_the_site(f'cannot read SavedModel {location.path}'):
    with paths.localize_tree(location.path) as local_dir:
      return load_local(location, local_dir, signature_name, started)


def load_local(location: ModelLocation, local_dir: str, signature_name: str,
               started: float) -> SiteModel:
  """:func:`load_site_model` of a local copy; ``started`` is a ``perf_counter``."""
  try:
    loaded = tf.saved_model.load(local_dir)
  except Exception as e:  # pylint: disable=broad-except
    # A local read of a corrupt or incompatible SavedModel: permanent.
    raise RecordFailure(PREDICT, MODEL_LOAD_FAILED,
                        f'cannot load SavedModel {location.path}: {_tf_message(e)}') from e
  graph_bytes = os.path.getsize(os.path.join(local_dir, SAVED_MODEL_FILE))
  signature = loaded.signatures.get(signature_name)
  if signature is None:
    raise RecordFailure(
        PREDICT, MODEL_LOAD_FAILED, f'{location.path} has no signature {signature_name!r} '
        f'(it has: {", ".join(sorted(loaded.signatures)) or "none"})')
  load_ms = (time.perf_counter() - started) * 1000
  return SiteModel(location,
                   signature,
                   num_bytes=variables_bytes(signature) + graph_bytes,
                   load_ms=load_ms,
                   owner=loaded)
