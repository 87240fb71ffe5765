"""What prediction gives each row of a chunk: its outputs, or why it has none.

TensorFlow-free, so that the steps reading the results (``transforms.site``)
import it in processes that never load a model.
"""
import itertools
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence

import numpy as np

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


class OutputColumns(Sequence[Dict[str, Any]]):
  """A batch's outputs as the model gave them: one array per output name, first axis
  the rows. Reads as the list of each row's ``{name: value}`` with plain Python
  values (``tolist``, made once per output on first use), so that the steps
  reading every row's numbers (the report) take the arrays instead
  (:attr:`arrays`) and no dict per row is made unless a step asks for it.
  Pickles as its arrays."""
  __slots__ = ('arrays', '_values')
  __hash__ = None

  def __init__(self, arrays: Dict[str, np.ndarray]):
    """
    Raises:
      ValueError: no output, or outputs with different numbers of rows.
    """
    if len({array.shape[0] for array in arrays.values()}) != 1:
      raise ValueError('outputs of one batch need one number of rows (and at least one output)')
    self.arrays = arrays
    self._values = None

  def values(self) -> Dict[str, List[Any]]:
    """Per output name, its rows' values as plain Python (``tolist``)."""
    if self._values is None:
      self._values = {name: array.tolist() for name, array in self.arrays.items()}
    return self._values

  def __len__(self) -> int:
    return next(iter(self.arrays.values())).shape[0]

  def __iter__(self) -> Iterator[Dict[str, Any]]:
    values = self.values()
    names = list(values)
    if len(names) == 1:
      name = names[0]
      return ({name: value} for value in values[name])
    return (dict(zip(names, row)) for row in zip(*values.values()))

  def __getitem__(self, index):
    if isinstance(index, slice):
      return list(self)[index]
    return {name: column[index] for name, column in self.values().items()}

  def __eq__(self, other) -> bool:
    if isinstance(other, (OutputColumns, list, tuple)):
      return list(self) == list(other)
    return NotImplemented

  def __reduce__(self):
    return OutputColumns, (self.arrays, )

  def __repr__(self) -> str:
    return f'OutputColumns({list(self.arrays)}, {len(self)} rows)'


class PredictedRows(Sequence[RowResult]):
  """The RowResults of rows that all predicted, held by column (no object per row):
  each row's chunk index, outputs by name (a list of dicts, or the model's arrays
  as :class:`OutputColumns`), and outputs' JSON text (``texts``: None where it
  was not made). Reads as a sequence of :class:`RowResult`."""
  __slots__ = ('indices', 'outputs', 'texts')
  __hash__ = None

  def __init__(self,
               indices: List[int],
               outputs: Sequence[Dict[str, Any]],
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
