"""What the model step hands the writers and the report: one chunk's predictions.

A :class:`PredictionBatch` holds one chunk's predictions by column (no
object per row); it reads as a sequence of :class:`Prediction`, and
:func:`batches_of` gives any such sequence as batches, so that a step
written for the columns takes lists of Prediction too (tests, other producers).
"""
import itertools
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence


class Prediction(NamedTuple):
  """One row's prediction, before formatting: ``instance`` is the row as echoed
  (:func:`models.site.instance_config.echo_of`), ``model_version`` the version
  folder that predicted it (None for the unversioned layout), ``instance_text``
  the row's JSON text where the whole row is echoed and the text may be
  written as it is (:attr:`models.site.handler.SiteChunk.texts`), else None;
  ``outputs_text`` the outputs' JSON text where the model step made it
  (:attr:`models.site.site_model.RowResult.outputs_text`), else None."""
  site_id: str
  source: str
  instance: Dict[str, Any]
  outputs: Dict[str, Any]
  model_version: Optional[str]
  instance_text: Optional[str] = None
  outputs_text: Optional[str] = None


class PredictionBatch(Sequence[Prediction]):
  """One chunk's predictions, held by column: one site and model version; per row its
  source, instance, outputs, and (each or all None) the instance's and the outputs' text.

  A sequence of :class:`Prediction` (made as they are read) for any step; the
  steps that read every row (the writers, the report) read the columns
  instead (:func:`batches_of`), so no per-row object is made between the
  model step and the output lines. Beam's default coder pickles it as its
  columns: one pickle per chunk (a NamedTuple per element would be pickled on
  its own, about 3x larger and slower).
  """
  __slots__ = ('site_id', 'model_version', 'sources', 'instances', 'outputs', 'instance_texts',
               'outputs_texts')
  __hash__ = None  # mutable columns: compared by value, never hashed

  def __init__(self,
               site_id: str,
               model_version: Optional[str],
               sources: List[str],
               instances: List[Dict[str, Any]],
               outputs: List[Dict[str, Any]],
               instance_texts: Optional[List[Optional[str]]] = None,
               outputs_texts: Optional[List[Optional[str]]] = None):
    """
    Raises:
      ValueError: the columns do not all have one length.
    """
    lengths = {
        len(column)
        for column in (sources, instances, outputs, instance_texts, outputs_texts)
        if column is not None
    }
    if len(lengths) > 1:
      raise ValueError(f'columns of different lengths: {sorted(lengths)}')
    self.site_id = site_id
    self.model_version = model_version
    self.sources = sources
    self.instances = instances
    self.outputs = outputs
    self.instance_texts = instance_texts
    self.outputs_texts = outputs_texts

  @classmethod
  def of(cls, predictions: Sequence[Prediction]) -> 'PredictionBatch':
    """The batch of ``predictions``, which share one site and model version.

    Raises:
      ValueError: empty, or predictions of more than one site or version.
    """
    if not predictions:
      raise ValueError('a batch holds at least one prediction')
    first = predictions[0]
    if any(p.site_id != first.site_id or p.model_version != first.model_version
           for p in predictions):
      raise ValueError('a batch holds predictions of one site and model version')
    return cls(first.site_id, first.model_version, [p.source for p in predictions],
               [p.instance for p in predictions], [p.outputs for p in predictions],
               [p.instance_text for p in predictions], [p.outputs_text for p in predictions])

  def __len__(self) -> int:
    return len(self.instances)

  def __iter__(self) -> Iterator[Prediction]:
    count = len(self.instances)
    return map(Prediction, itertools.repeat(self.site_id,
                                            count), self.sources, self.instances, self.outputs,
               itertools.repeat(self.model_version,
                                count), self.instance_texts or itertools.repeat(None, count),
               self.outputs_texts or itertools.repeat(None, count))

  def __getitem__(self, index):
    if isinstance(index, slice):
      return list(self)[index]
    texts = self.instance_texts
    outputs_texts = self.outputs_texts
    return Prediction(self.site_id, self.sources[index], self.instances[index], self.outputs[index],
                      self.model_version, None if texts is None else texts[index],
                      None if outputs_texts is None else outputs_texts[index])

  def _columns(self) -> tuple:
    return (self.site_id, self.model_version, self.sources, self.instances, self.outputs,
            self.instance_texts, self.outputs_texts)

  def __eq__(self, other) -> bool:
    if isinstance(other, PredictionBatch):
      return list(self) == list(other)
    if isinstance(other, (list, tuple)):
      return list(self) == list(other)
    return NotImplemented

  def __reduce__(self):
    return PredictionBatch, self._columns()

  def __repr__(self) -> str:
    return (f'PredictionBatch(site_id={self.site_id!r}, model_version={self.model_version!r}, '
            f'{len(self)} predictions)')


def batches_of(predictions: Iterable[Prediction]) -> Iterator[PredictionBatch]:
  """``predictions`` as :class:`PredictionBatch` es: a batch is itself; any other sequence
  of Prediction (tests, other producers) is cut into runs of one site and version, in order."""
  if isinstance(predictions, PredictionBatch):
    yield predictions
    return
  for _, run in itertools.groupby(predictions, key=lambda p: (p.site_id, p.model_version)):
    yield PredictionBatch.of(list(run))
