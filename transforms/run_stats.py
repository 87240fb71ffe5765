"""The statistics a run's ``summary.json`` is made of, gathered from the PCollections a job names.

A job lists what it counts, one labelled entry per PCollection::

  stats = pipeline | 'RunStats' >> RunStats({
      'CountRead': (lines, Count('records_read')),
      'CountWritten': (prediction_batches, CountItems('predictions_written')),
      'CountFailed': (dead_letters, StatsOf(by_reason)),
      'InferenceStats': (inference_stats, AsIs()),
  })

and gets the one PCollection of ``((key, ...), amount)`` pairs that
:class:`transforms.run_summary.WriteRunSummary` sums. The counters:

- :class:`Count`: how many elements, counted per bundle (``Count.Globally``):
  one pair ``((key,), n)`` however many elements there are;
- :class:`CountItems`: how many items the elements hold (``size(element)``,
  ``len`` by default), likewise;
- :class:`StatsOf`: ``stats_of(element) -> ((key, ...), n)`` pairs per
  element, for breakdowns (by reason, by site); a module-level function;
- :class:`AsIs`: the PCollection already holds such pairs.

Each entry is a step ``RunStats/<label>`` (local progress lines tap it by
that label: :mod:`beam_jobs.progress`). Nothing here raises on data.
"""
from typing import Any, Callable, Dict, Iterable, Mapping, NamedTuple, Tuple, Union

import apache_beam as beam

from transforms.run_summary import StatKey

Stat = Tuple[StatKey, Any]  # amounts are counts or sums of floats (e.g. load ms)


class Count(NamedTuple):
  """``((key,), number of elements)``."""
  key: str


class CountItems(NamedTuple):
  """``((key,), sum of size(element))``: items of list elements, or what ``size`` counts."""
  key: str
  size: Callable[[Any], int] = len


class StatsOf(NamedTuple):
  """The pairs ``stats_of(element)`` gives, for every element."""
  stats_of: Callable[[Any], Iterable[Stat]]


class AsIs(NamedTuple):
  """Elements that are already ``((key, ...), n)`` pairs."""


Counter = Union[Count, CountItems, StatsOf, AsIs]


def by_reason(letter: Mapping[str, Any]) -> Iterable[Stat]:
  """A dead letter -> ``(('failed', reason), 1)``."""
  yield ('failed', letter['reason']), 1


# No type hints on the functions below: Beam picks coders from them, and an int
# hint would encode a float amount as an integer.
def _as_stat(amount, key):
  return (key, ), amount


def _same(pair):
  return pair


class _Counted(beam.PTransform):
  """One PCollection through one counter -> its stat pairs."""

  def __init__(self, counter: Counter):
    super().__init__()
    self._counter = counter

  def expand(self, pcoll):
    counter = self._counter
    if isinstance(counter, Count):
      counted = pcoll | 'Count' >> beam.combiners.Count.Globally()
    elif isinstance(counter, CountItems):
      counted = (pcoll | 'Sizes' >> beam.Map(counter.size) | 'Count' >> beam.CombineGlobally(sum))
    elif isinstance(counter, StatsOf):
      return pcoll | 'Stats' >> beam.FlatMap(counter.stats_of)
    elif isinstance(counter, AsIs):
      return pcoll | 'Stats' >> beam.Map(_same)
    else:
      raise TypeError(f'not a counter: {counter!r}')
    return counted | 'AsStat' >> beam.Map(_as_stat, counter.key)


class RunStats(beam.PTransform):
  """pipeline -> every named PCollection's stat pairs, in one PCollection."""

  def __init__(self, sources: Dict[str, Tuple[beam.PCollection, Counter]]):
    super().__init__()
    if not sources:
      raise ValueError('RunStats needs at least one PCollection to count')
    self._sources = sources

  def expand(self, pbegin):
    del pbegin
    counted = [
        pcoll | label >> _Counted(counter) for label, (pcoll, counter) in self._sources.items()
    ]
    return counted | 'AllStats' >> beam.Flatten()
