"""What prediction gives each row of a chunk: its outputs, or why it has none.

TensorFlow-free, so that the steps reading the results (``transforms.site``)
import it in processes that never load a model.
"""
import itertools
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

from common.failures import PREDICT


class RowResult(NamedTuple):
  """Outcome of one row: outputs by name, or a reason and message (and the stage refusing it).

  ``outputs_text``: the outputs as the JSON text they are written as
  (:func:`models.site.output_text.rows_text`), where it was made with them.
  """
  index: int
  outputs: Optional[Dict[str, Any]]
  reason: Optional[str] = None
  message: Optional[str] = None
  stage: str = PREDICT
  outputs_text: Optional[str] = None


class PredictedRows(Sequence[RowResult]):
  """The RowResults of rows that all predicted, held by column (no object per row):
  each row's chunk index, outputs by name, and outputs' JSON text (``texts``: None
  where it was not made). Reads as a sequence of :class:`RowResult`."""
  __slots__ = ('indices', 'outputs', 'texts')
  __hash__ = None

  def __init__(self,
               indices: List[int],
               outputs: List[Dict[str, Any]],
               texts: Optional[List[str]] = None):
    """
    Raises:
      ValueError: the columns do not all have one length.
    """
    if len(indices) != len(outputs) or (texts is not None and len(texts) != len(indices)):
      raise ValueError('columns of different lengths')
    self.indices = indices
    self.outputs = outputs
    self.texts = texts

  def __len__(self) -> int:
    return len(self.indices)

  def __iter__(self):
    count = len(self.indices)
    return map(RowResult, self.indices, self.outputs, itertools.repeat(None, count),
               itertools.repeat(None, count), itertools.repeat(PREDICT, count), self.texts
               or itertools.repeat(None, count))

  def __getitem__(self, index):
    if isinstance(index, slice):
      return list(self)[index]
    return RowResult(self.indices[index], self.outputs[index], None, None, PREDICT,
                     None if self.texts is None else self.texts[index])

  def __eq__(self, other) -> bool:
    if isinstance(other, (PredictedRows, list, tuple)):
      return list(self) == list(other)
    return NotImplemented

  def __repr__(self) -> str:
    return f'PredictedRows({len(self)} rows)'
