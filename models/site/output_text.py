"""Each row's outputs object as JSON text, made a column at a time.

A chunk's predictions are written as one JSON line per row, and the
``"prediction"`` object of every line is that row's slice of the model's
output arrays. Encoding one small dict per row with ``json`` costs about
3 us on this stack; the same text made per output column costs a fraction
of that, which is a large part of the job's per-row cost. A column's
values are written by orjson in one call (0.06 us a value, against 0.6 us
for ``float.__repr__`` each): for integers, zero and floats of magnitude
from 1e-4 to below 1e16 its text is ``repr``'s (both write the shortest
digits that read back to the double, in positional notation); a float
column holding any other value is written with ``repr``, which puts
exponents where orjson does not (``1e-05`` against ``0.00001``).

:func:`rows_text` covers the outputs models serve in practice: integer and
floating-point arrays of one value or one flat list per row. The text is
what :func:`transforms.json_lines.dumps` writes for the same row's
``{name: value}`` dict (``float.__repr__`` is JSON's float text in Python;
keys in the signature's order), so a reader cannot tell which path made a
line. Anything else (strings, booleans, nested lists, non-finite values)
returns None and is encoded value by value.
"""
import json
from typing import List, Mapping, Optional

import numpy as np
import orjson

_KINDS = 'fiu'  # float, signed and unsigned integers: Python's repr is their JSON text
# Floats orjson writes as repr does: zero, and magnitudes in [_POSITIONAL_LOW, _POSITIONAL_HIGH).
_POSITIONAL_LOW, _POSITIONAL_HIGH = 1e-4, 1e16


def _writes_as_repr(column: np.ndarray) -> bool:
  """Whether orjson's text of every value of a finite column is ``repr``'s."""
  if column.dtype.kind != 'f':
    return True
  magnitude = np.abs(column, dtype=np.float64)
  return not ((magnitude >= _POSITIONAL_HIGH) | ((magnitude < _POSITIONAL_LOW) &
                                                 (magnitude != 0))).any()


def _values_text(column: np.ndarray) -> List[str]:
  """Each row's value (a number, or a flat list of numbers) as JSON text."""
  if not len(column):
    return []
  if not _writes_as_repr(column):
    if column.ndim == 1:
      return list(map(repr, column.tolist()))
    return ['[' + ','.join(map(repr, values)) + ']' for values in column.tolist()]
  return _wrapped_rows(column, '', '')


def _wrapped_rows(column: np.ndarray, head: str, tail: str) -> List[str]:
  """Each row's value text as orjson writes it (a column that :func:`_writes_as_repr`, at
  least one row), between ``head`` and ``tail``: cut from the column's one text by
  replacing the separators between rows (no Python work per row)."""
  if column.ndim == 1 or column.shape[1] == 1:  # 'a,b': one value per row, maybe in a list
    opening, closing = ('', '') if column.ndim == 1 else ('[', ']')
    text = orjson.dumps(column.ravel().tolist()).decode('ascii')[1:-1]
    between = ','
  else:  # '[a,b],[c,d]'; no number's text holds a bracket or a comma
    text = orjson.dumps(column.tolist()).decode('ascii')[2:-2]
    between, opening, closing = '],[', '[', ']'
  replacement = f'{closing}{tail}\n{head}{opening}'
  return (f'{head}{opening}' + text.replace(between, replacement) + f'{closing}{tail}').split('\n')


def rows_text(outputs: Mapping[str, np.ndarray]) -> Optional[List[str]]:
  """Each row's ``{name: value, ...}`` as compact ASCII JSON, or None.

  ``outputs``: arrays of one length (rows) by output name, in the order the
  names are written. None when an output is not an integer or float array
  of at most 8-byte items and one or two dimensions, or holds a value that
  is not finite.
  """
  columns = list(outputs.values())
  for column in columns:
    # Wider than 8 bytes (float128): no Python number holds it, tolist keeps NumPy scalars.
    if column.dtype.kind not in _KINDS or column.dtype.itemsize > 8 or column.ndim not in (1, 2):
      return None
    if column.dtype.kind == 'f' and not np.isfinite(column).all():
      return None
  prefixes = [json.dumps(name) + ':' for name in outputs]
  if len(columns) == 1 and len(columns[0]) and _writes_as_repr(columns[0]):
    return _wrapped_rows(columns[0], '{' + prefixes[0], '}')
  texts = [_values_text(column) for column in columns]
  if len(texts) == 1:
    prefix = '{' + prefixes[0]
    return [prefix + text + '}' for text in texts[0]]
  return ['{' + ','.join(map(str.__add__, prefixes, row)) + '}' for row in zip(*texts)]
