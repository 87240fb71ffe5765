"""Deleting or moving processed inputs, only once the run's outputs are committed.

Safety rules (what makes a crash at any point lose no image):

- Only images whose detections line (and annotated copy, when one is due)
  was produced reach this transform; dead-lettered inputs never do.
- The clean-up step reads a *committed* signal as a side input (the summary
  dict, which ``WriteRunSummary`` emits only after the detections, dead
  letters and annotated images are all written). A batch runner computes a
  side input completely before the consuming step starts, so nothing is
  deleted before every output exists. If the summary does not reconcile
  (``images_read != images_ok + images_failed``), nothing is deleted.
- A move is copy, then delete: a crash between the two leaves both copies.
- Retries are idempotent: an input already gone counts as done.
"""
import logging
import os
import re
from typing import Iterable, List, Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from common import paths

_LOGGER = logging.getLogger(__name__)
METRICS_NAMESPACE = 'input_cleanup'
MAX_BATCH = 100
_GLOB_CHAR = re.compile(r'([*?\[])')


def literal_pattern(path: str) -> str:
  """``path`` as a Beam match pattern matching only itself.

  ``FileSystems.delete`` matches its arguments as globs; a file literally
  named ``a*.jpg`` must not take ``ab.jpg`` with it.
  """
  return _GLOB_CHAR.sub(r'[\1]', path)


def delete_files(uris: Sequence[str]) -> None:
  """Deletes ``uris``; files already gone are fine, other failures raise."""
  if not uris:
    return
  try:
    FileSystems.delete([literal_pattern(u) for u in uris])
  except BeamIOError:
    remaining = [u for u in uris if FileSystems.exists(u)]
    if remaining:
      raise


def move_files(uris: Sequence[str], targets: Sequence[str]) -> None:
  """Copies each file to its target, then deletes the originals."""
  pending_src: List[str] = []
  pending_dst: List[str] = []
  for src, dst in zip(uris, targets):
    if FileSystems.exists(src):
      pending_src.append(src)
      pending_dst.append(dst)
    elif not FileSystems.exists(dst):  # neither here nor there: do not hide it
      raise FileNotFoundError(f'{src} is gone and was not moved to {dst}')
  if not pending_src:
    return
  for dst in pending_dst:
    if paths.is_local(dst):
      os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
  FileSystems.copy(pending_src, pending_dst)
  delete_files(pending_src)


class _CleanUpFn(beam.DoFn):
  """[uri] (a batch) -> nothing; deletes or moves the batch's files.

  Side input ``committed``: the run summary, available only once every
  output is committed. Error policy: storage errors raise (the runner
  retries; the operations are idempotent); a summary that does not
  reconcile skips every deletion and counts ``inputs_kept_unreconciled``.
  """

  def __init__(self, input_root: str, move_to: Optional[str]):
    self._input_root = input_root
    self._move_to = move_to
    self._deleted = beam.metrics.Metrics.counter(METRICS_NAMESPACE, 'inputs_deleted')
    self._moved = beam.metrics.Metrics.counter(METRICS_NAMESPACE, 'inputs_moved')
    self._kept = beam.metrics.Metrics.counter(METRICS_NAMESPACE, 'inputs_kept_unreconciled')

  def process(self, uris: Sequence[str], committed: dict) -> Iterable[str]:
    if not committed.get('reconciled'):
      _LOGGER.error('The run summary does not reconcile; keeping %d processed inputs', len(uris))
      self._kept.inc(len(uris))
      return
    if self._move_to is None:
      delete_files(uris)
      self._deleted.inc(len(uris))
    else:
      targets = [
          paths.join(self._move_to,
                     *paths.relative_to(u, self._input_root).split('/')) for u in uris
      ]
      move_files(uris, targets)
      self._moved.inc(len(uris))
    yield from uris


class CleanUpInputs(beam.PTransform):
  """Input URIs (str) of fully processed images -> the URIs cleaned up.

  Deletes them, or with ``move_to`` moves them to ``move_to/<path below the
  input root>``, after ``committed`` (a one-element PCollection produced
  only once every output is committed, e.g. ``WriteRunSummary``'s output).
  """

  def __init__(self,
               committed: beam.PCollection,
               *,
               input_root: str,
               move_to: Optional[str] = None):
    super().__init__()
    self._committed = committed
    self._input_root = input_root
    self._move_to = move_to

  def expand(self, uris):
    return (uris
            | 'Batch' >> beam.BatchElements(min_batch_size=1, max_batch_size=MAX_BATCH)
            | 'DeleteOrMove' >> beam.ParDo(_CleanUpFn(self._input_root, self._move_to),
                                           committed=beam.pvalue.AsSingleton(self._committed)))
