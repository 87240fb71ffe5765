"""Exact histograms of each model output across all sites, in two combining passes.

Each prediction batch is first reduced to its numeric columns
(:func:`numeric_columns`: per output, its numbers as one float64 array).
Pass 1 (:class:`OutputRangesFn`) finds, per output name, the number of
numeric values and their min and max; pass 2 counts each batch's numbers
into ``DEFAULT_BINS`` equal bins between them (numpy's ``histogram``, last
bin closed) and sums the counts. Pass 2 waits for pass 1, so its input is
kept until then (in memory on the local runner): that is the columns, 8
bytes per number, never the predictions with their instances.

Values: a number (bools as 0/1) is one value; an output that is a list
(of any depth) contributes every element, so an output of shape ``[k]``
adds ``k`` values per row. Strings, nulls and other non-numbers are counted
as ``non_numeric``, NaN and infinities as ``non_finite``; neither is binned.
So for each output: ``sum(counts) + non_finite == values`` and
``values + non_numeric`` is the number of elements seen.
"""
import math
from typing import Any, Dict, Iterable, List, Sequence, Tuple

import apache_beam as beam
import numpy as np

from models.site.row_results import OutputColumns
from transforms.site.predictions import batches_of

DEFAULT_BINS = 30
DEFAULT_MAX_OUTPUTS = 12

Range = Dict[str, Any]  # rows, values, non_finite, non_numeric, min, max
Columns = Dict[str, Tuple[int, np.ndarray, int]]  # name -> (rows, numbers, non-numeric)


def numeric_values(value: Any) -> Tuple[np.ndarray, int]:
  """``value -> (float64 array of its numbers, count of non-numeric elements)``."""
  if isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
    try:
      return np.array([float(value)]), 0
    except OverflowError:  # an int beyond float range
      return np.array([math.inf if value > 0 else -math.inf]), 0
  if isinstance(value, (list, tuple, np.ndarray)):
    try:
      array = np.asarray(value)
    except ValueError:  # ragged
      array = None
    if array is not None and array.dtype.kind in 'biuf':
      return array.astype(np.float64).ravel(), 0
    numbers: List[float] = []
    other = 0
    for item in value:
      values, bad = numeric_values(item)
      numbers.extend(values.tolist())
      other += bad
    return np.array(numbers, dtype=np.float64), other
  return np.empty(0), 1


def batch_values(values: List[Any]) -> Tuple[np.ndarray, int]:
  """:func:`numeric_values` of many values at once: their numbers concatenated.

  One array conversion when every value is a number, or every value a list
  of the same shape of numbers (the usual batch of one output); else value
  by value.
  """
  try:
    array = np.asarray(values)
  except (ValueError, OverflowError):  # ragged, or an int beyond any dtype
    array = None
  if array is not None and array.dtype.kind in 'biuf':
    return array.astype(np.float64).ravel(), 0
  parts, other = [], 0
  for value in values:
    numbers, bad = numeric_values(value)
    parts.append(numbers)
    other += bad
  return (np.concatenate(parts) if parts else np.empty(0)), other


def _columns(batch) -> Dict[str, List[Sequence[Any]]]:
  """``List[Prediction] -> {output name: its values in batch order, in pieces}``: a piece
  is a list of values, or the model's array of numbers (:class:`OutputColumns`)."""
  columns: Dict[str, List[Sequence[Any]]] = {}
  for part in batches_of(batch):
    outputs = part.outputs
    if isinstance(outputs, OutputColumns):
      for name, array in outputs.arrays.items():
        piece = array if array.dtype.kind in 'biuf' else outputs.values()[name]
        columns.setdefault(name, []).append(piece)
      continue
    lists: Dict[str, List[Any]] = {}
    for row in outputs:
      for name, value in row.items():
        column = lists.get(name)
        if column is None:
          column = lists[name] = []
          columns.setdefault(name, []).append(column)
        column.append(value)
  return columns


def numeric_columns(batch) -> Columns:
  """``List[Prediction] ->`` per output name: (rows that have it, its numbers as float64,
  how many of its elements are not numbers); what both passes need of a batch."""
  columns = {}
  for name, pieces in _columns(batch).items():
    parts = [batch_values(piece) for piece in pieces]
    numbers = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
    columns[name] = (sum(len(piece) for piece in pieces), numbers, sum(p[1] for p in parts))
  return columns


def _empty_range() -> Range:
  return {
      'rows': 0,
      'values': 0,
      'non_finite': 0,
      'non_numeric': 0,
      'min': math.inf,
      'max': -math.inf
  }


class OutputRangesFn(beam.CombineFn):
  """:func:`numeric_columns` of batches -> ``{output name: Range}``; ``min``/``max`` are
  None for an output without a finite number."""

  def create_accumulator(self) -> Dict[str, Range]:
    return {}

  def add_input(self, accumulator, columns: Columns):
    for name, (rows, numbers, other) in columns.items():
      stats = accumulator.get(name)
      if stats is None:
        stats = accumulator[name] = _empty_range()
      finite = numbers[np.isfinite(numbers)]
      stats['rows'] += rows
      stats['values'] += numbers.size
      stats['non_finite'] += numbers.size - finite.size
      stats['non_numeric'] += other
      if finite.size:
        stats['min'] = min(stats['min'], float(finite.min()))
        stats['max'] = max(stats['max'], float(finite.max()))
    return accumulator

  def merge_accumulators(self, accumulators):
    merged: Dict[str, Range] = {}
    for accumulator in accumulators:
      for name, stats in accumulator.items():
        into = merged.setdefault(name, _empty_range())
        for key in ('rows', 'values', 'non_finite', 'non_numeric'):
          into[key] += stats[key]
        into['min'] = min(into['min'], stats['min'])
        into['max'] = max(into['max'], stats['max'])
    return merged

  def extract_output(self, accumulator):
    out = {}
    for name, stats in accumulator.items():
      stats = dict(stats)
      if stats['min'] > stats['max']:
        stats['min'] = stats['max'] = None
      out[name] = stats
    return out


def bin_edges(low: float, high: float, bins: int) -> np.ndarray:
  """``bins + 1`` edges from ``low`` to ``high``; a single unit-wide bin when they are equal."""
  if low == high:
    return np.array([low - 0.5, high + 0.5])
  return np.linspace(low, high, bins + 1)


def chosen_ranges(ranges: Dict[str, Range], max_outputs: int, bins: int) -> Dict[str, List[float]]:
  """The edges of the ``max_outputs`` outputs with the most rows (that have numbers)."""
  usable = [(name, r) for name, r in ranges.items() if r['min'] is not None]
  usable.sort(key=lambda item: (-item[1]['rows'], item[0]))
  return {name: bin_edges(r['min'], r['max'], bins).tolist() for name, r in usable[:max_outputs]}


def batch_counts(columns: Columns, edges: Dict[str, List[float]]) -> Dict[str, List[int]]:
  """A batch's :func:`numeric_columns` -> ``{output name: counts per bin}`` for the
  outputs in ``edges``."""
  counts = {}
  for name, (_, values, _) in columns.items():
    if name not in edges:
      continue
    values = values[np.isfinite(values)]
    hist, _ = np.histogram(values, bins=np.asarray(edges[name]))
    counts[name] = hist.tolist()
  return counts


def sum_counts(parts: Iterable[Dict[str, List[int]]]) -> Dict[str, List[int]]:
  """Adds up per-batch ``{name: counts}`` (a combining function: associative, commutative)."""
  total: Dict[str, np.ndarray] = {}
  for part in parts:
    for name, counts in part.items():
      if name in total:
        total[name] = total[name] + np.asarray(counts, dtype=np.int64)
      else:
        total[name] = np.asarray(counts, dtype=np.int64)
  return {name: counts.tolist() for name, counts in total.items()}


def histograms(counts: Dict[str, List[int]], ranges: Dict[str, Range],
               edges: Dict[str, List[float]]) -> Dict[str, Dict[str, Any]]:
  """The report's histograms: ``{name: Range + {'edges', 'counts'}}``, names sorted.

  Outputs without any finite number are listed too, with empty ``edges`` and
  ``counts`` (so the page can say they exist and hold no numbers).
  """
  out = {}
  for name in sorted(ranges):
    if name in edges:
      entry = dict(ranges[name])
      entry['edges'] = edges[name]
      entry['counts'] = counts.get(name, [0] * (len(edges[name]) - 1))
      out[name] = entry
    elif ranges[name]['min'] is None:
      out[name] = dict(ranges[name], edges=[], counts=[])
  return out


class OutputHistograms(beam.PTransform):
  """``List[Prediction]`` batches -> one ``{output name: histogram dict}`` (see module docstring).

  At most ``max_outputs`` outputs with numbers (those in the most rows);
  outputs with no finite number come with empty counts. Empty input gives ``{}``.
  """

  def __init__(self, *, bins: int = DEFAULT_BINS, max_outputs: int = DEFAULT_MAX_OUTPUTS):
    super().__init__()
    if bins < 1 or max_outputs < 1:
      raise ValueError(f'bins and max_outputs must be >= 1, got {bins}, {max_outputs}')
    self._bins = bins
    self._max_outputs = max_outputs

  def expand(self, batches):
    columns = batches | 'NumericColumns' >> beam.Map(numeric_columns)
    ranges = columns | 'Ranges' >> beam.CombineGlobally(OutputRangesFn())
    edges = beam.pvalue.AsSingleton(
        ranges | 'Edges' >> beam.Map(chosen_ranges, self._max_outputs, self._bins))
    return (
        columns
        | 'CountBatch' >> beam.Map(batch_counts, edges=edges)
        | 'SumCounts' >> beam.CombineGlobally(sum_counts)
        | 'Histograms' >> beam.Map(histograms, ranges=beam.pvalue.AsSingleton(ranges), edges=edges))


def values_in(histogram: Dict[str, Any]) -> int:
  """Numbers binned in ``histogram`` (equals ``values - non_finite``)."""
  return int(sum(histogram['counts']))
