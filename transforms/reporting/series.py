"""The report's time series: a few sites' predictions over time, sampled without holding them.

The sites are the worst that predicted anything, known only once every site
is counted, so the series is a second pass: the first keeps each batch's
points as float64 arrays (:func:`timed_points`), cut per site and bundle to
those that can be sampled (:class:`TimedPointsFn`), the second samples the
series sites' points (:class:`SeriesPointsFn`) in a deterministic order
(:func:`point_ranks`) and merges the samples as bottom-k
(:class:`transforms.reporting.samples.MergeBottomKPerKeyFn`).
"""
import datetime
import math
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindows

from models.site.row_results import OutputColumns
from transforms.reporting.histograms import numeric_values
from transforms.reporting.samples import MergeBottomKPerKeyFn
from transforms.reporting.samples import Ranked
from transforms.reporting.samples import smallest_ranked
from transforms.reporting.site_outcomes import site_key
from transforms.reporting.site_outcomes import worst_first
from transforms.site.predictions import batches_of

DEFAULT_SERIES_SITES = 6
DEFAULT_POINTS_PER_SITE = 500
MAX_SERIES_OUTPUTS = 3

AUTO = 'auto'
"""``time_field`` value: use the first of :data:`TIME_FIELDS` a row has."""
TIME_FIELDS = ('hour', 'timestamp', 'time', 'datetime', 'date', 'ts', 'event_time')

# (x, x is a datetime as POSIX seconds, {output name: value}, time field name)
Point = Tuple[float, bool, Dict[str, float], str]


def time_value(value: Any) -> Optional[Tuple[float, bool]]:
  """A row's time field -> ``(x, is_datetime)``; numbers as they are, ISO 8601 text as
  POSIX seconds (naive times read as UTC); None when it is neither."""
  if isinstance(value, bool):
    return None
  if isinstance(value, (int, float)):
    try:
      number = float(value)
    except OverflowError:
      return None
    return (number, False) if math.isfinite(number) else None
  if isinstance(value, str):
    try:
      parsed = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
      return None
    if parsed.tzinfo is None:
      parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp(), True
  return None


def row_time(instance: Dict[str, Any], time_field: str) -> Optional[Tuple[float, bool, str]]:
  """The row's ``(x, is_datetime, field name)`` from ``time_field`` or (``AUTO``) the
  first usable :data:`TIME_FIELDS`; None when there is none."""
  names = TIME_FIELDS if time_field == AUTO else (time_field, )
  for name in names:
    if name in instance:
      found = time_value(instance[name])
      if found is not None:
        return found + (name, )
  return None


def first_number(value: Any) -> Optional[float]:
  """The first finite number of an output value (its first element for a list)."""
  if type(value) is list and len(value) == 1:  # pylint: disable=unidiomatic-typecheck
    value = value[0]  # an output of shape [1]
  if type(value) is float:  # pylint: disable=unidiomatic-typecheck
    return value if math.isfinite(value) else None  # the usual output: one float per row
  values, _ = numeric_values(value)
  for number in values.tolist():
    if math.isfinite(number):
      return number
  return None


# A batch's timed points of one site, as arrays: (x is a datetime, time field, output
# names, x per point, the names' first numbers per point (NaN: none)).
TimedPoints = Tuple[bool, str, Tuple[str, ...], np.ndarray, np.ndarray]


def timed_points(batch, time_field: str) -> Iterable[Tuple[str, TimedPoints]]:
  """``List[Prediction] -> (site, TimedPoints)`` per site of the batch (and time field kind).

  Runs for every batch, before the series sites are known, so it keeps only
  what a point is made of, as float64 arrays (8 bytes per number): the
  second pass (:func:`series_points`) waits for the sites, and its input is
  kept until then (in memory on the local runner), so :class:`TimedPointsFn`
  cuts each site's points to about ``k`` per bundle first. A batch of one site
  whose rows all have the same numeric time field and float outputs (the
  usual chunk) is read a column at a time (:func:`_plain_timed_points`);
  anything else row by row, with the same outcome.
  """
  plain = _plain_timed_points(batch, time_field)
  if plain is None:
    yield from timed_points_by_row(batch, time_field)
  elif len(plain[1][3]):
    yield plain


def timed_points_by_row(batch, time_field: str) -> Iterable[Tuple[str, TimedPoints]]:
  """:func:`timed_points` of any batch, one row at a time."""
  groups: Dict[Tuple[str, bool, str, Tuple[str, ...]], Tuple[List[float], List[List[float]]]]
  groups = {}
  for prediction in batch:
    found = row_time(prediction.instance, time_field)
    if found is None:
      continue
    names = tuple(sorted(prediction.outputs)[:MAX_SERIES_OUTPUTS])
    numbers = [first_number(prediction.outputs[name]) for name in names]
    if all(number is None for number in numbers):
      continue
    key = (site_key(prediction.site_id), found[1], found[2], names)
    xs, rows = groups.setdefault(key, ([], []))
    xs.append(found[0])
    rows.append([math.nan if number is None else number for number in numbers])
  for (site, is_datetime, field, names), (xs, rows) in groups.items():
    yield site, (is_datetime, field, names, np.asarray(xs, dtype=np.float64),
                 np.asarray(rows, dtype=np.float64).reshape(len(rows), len(names)))


def _numbers(values: List[Any]) -> Optional[np.ndarray]:
  """float64 of a column whose values are all ints or floats (not bools), else None."""
  if not all(type(v) is float or type(v) is int for v in values):  # pylint: disable=unidiomatic-typecheck
    return None
  try:
    return np.array(values, dtype=np.float64)
  except OverflowError:  # an int beyond a double
    return None


def _floats(values: List[Any]) -> Optional[List[float]]:
  """A column of outputs that are all floats, or all one-float lists (shape ``[1]``), as its
  floats (what :func:`first_number` reads of each, before the finiteness check); else None."""
  # pylint: disable=unidiomatic-typecheck
  if all(type(v) is float for v in values):
    return values
  if all(type(v) is list and len(v) == 1 and type(v[0]) is float for v in values):
    return [v[0] for v in values]
  return None


def _output_floats(outputs, name: str) -> Optional[Sequence[float]]:
  """:func:`_floats` of one output's column; an :class:`OutputColumns` float array (one
  value, or one-element rows) as it is, without making its values."""
  if isinstance(outputs, OutputColumns):
    array = outputs.arrays[name]
    if array.dtype.kind == 'f' and array.shape[1:] in ((), (1, )):
      return array.reshape(len(array))
    return _floats(outputs.values()[name])
  return _floats([o[name] for o in outputs])


def _plain_timed_points(batch, time_field: str) -> Optional[Tuple[str, TimedPoints]]:
  """:func:`timed_points` of a batch read a column at a time, or None where the batch is not
  plain: one site and model version, one set of output names whose values are floats (or
  one-float lists), and one numeric time
  field that every row has and that is the first of :data:`TIME_FIELDS` each row has
  (``AUTO``), finite in every row. Rows with no finite number are left out, as row by row."""
  parts = list(batches_of(batch))
  if len(parts) != 1:  # none, or more than one site or version
    return None
  part = parts[0]
  instances, outputs = part.instances, part.outputs
  found = row_time(instances[0], time_field)
  if found is None or found[1]:
    return None
  field = found[2]
  earlier = TIME_FIELDS[:TIME_FIELDS.index(field)] if time_field == AUTO else ()
  if isinstance(outputs, OutputColumns):
    keys = outputs.arrays.keys()  # every row has them
  else:
    keys = outputs[0].keys()
    if any(o.keys() != keys for o in outputs):
      return None
  if any(name in instance for name in earlier for instance in instances):
    return None
  try:
    xs = _numbers([instance[field] for instance in instances])
  except KeyError:
    return None
  if xs is None or not np.isfinite(xs).all():  # row by row, a later time field may serve
    return None
  names = tuple(sorted(keys)[:MAX_SERIES_OUTPUTS])
  columns = [_output_floats(outputs, name) for name in names]
  if any(column is None for column in columns):
    return None
  rows = np.array(columns, dtype=np.float64).T.reshape(len(outputs), len(names))
  rows[~np.isfinite(rows)] = np.nan
  keep = ~np.all(np.isnan(rows), axis=1)
  return site_key(part.site_id), (False, field, names, xs[keep], rows[keep])


_MIX_1 = np.uint64(0xbf58476d1ce4e5b9)
_MIX_2 = np.uint64(0x94d049bb133111eb)
_GOLDEN = np.uint64(0x9e3779b97f4a7c15)
_COLUMN_SALT = np.uint64(0xd6e8feb86659fd93)


def _mix(bits: np.ndarray) -> np.ndarray:
  """SplitMix64's finalizer on uint64s (wrapping arithmetic): a well-spread 64-bit hash."""
  bits = (bits ^ (bits >> np.uint64(30))) * _MIX_1
  bits = (bits ^ (bits >> np.uint64(27))) * _MIX_2
  return bits ^ (bits >> np.uint64(31))


def point_ranks(xs: np.ndarray, rows: np.ndarray) -> np.ndarray:
  """A stable 63-bit hash per point of ``(x, first numbers)`` (float64 arrays; NaN: none),
  the same in every process: the series' sampling order (ties by the point's repr).
  Non-negative int64s: Beam's coders take ints up to 2**63 - 1."""
  with np.errstate(over='ignore'):
    ranks = _mix(np.ascontiguousarray(xs, dtype=np.float64).view(np.uint64) ^ _GOLDEN)
    columns = np.ascontiguousarray(rows, dtype=np.float64).reshape(len(xs), -1)
    for column in columns.T:
      bits = np.where(np.isnan(column), np.nan, column).view(np.uint64)  # one NaN
      # Salted and added, not xor-ed with the same mix of the same constant: x ^ G and
      # y + G agree for many round numbers (no carries), which cancelled to rank 0.
      ranks = _mix(ranks + _mix(bits ^ _COLUMN_SALT))
  return (ranks >> np.uint64(1)).astype(np.int64)


def series_points(element: Tuple[str, TimedPoints], sites: Sequence[Optional[str]],
                  k: int) -> Iterable[Tuple[str, List[Ranked]]]:
  """``(site, TimedPoints) -> (site, [(rank, repr, point)])``: the ``k`` first points of a
  site of ``sites`` in :func:`point_ranks` order (ties by repr); a point is
  ``(x, is_datetime, {output name: first number}, time field)``. Only those
  ``k`` (and ties) are made into Python points."""
  site, (is_datetime, field, names, xs, rows) = element
  if site not in set(sites) or not len(xs):
    return
  yield site, _first_points(is_datetime, field, names, xs, rows, k)


def _first_candidates(xs: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
  """Indices, in order, of the points whose rank is at most the ``k``-th smallest (ties
  kept), with at most ``k`` copies of any one point (:func:`_at_most_k_copies`)."""
  ranks = point_ranks(xs, rows)
  if len(ranks) <= k:
    return np.arange(len(ranks))
  chosen = np.flatnonzero(ranks <= np.partition(ranks, k - 1)[k - 1])
  if len(chosen) == k:  # no tie at the k-th rank: the usual case
    return chosen
  return chosen[_at_most_k_copies(xs[chosen], rows[chosen], k)]


def _at_most_k_copies(xs: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
  """Indices, in order, keeping the first ``k`` copies of each point (equal x and numbers,
  NaN equal to NaN). Copies have one rank and one repr, so a sample of ``k`` takes at
  most ``k`` of them, whichever they are: dropping the rest changes no sample, and keeps
  a site whose rows repeat one point (one date, a constant output) at about ``k``
  points instead of all of them."""
  columns = np.where(np.isnan(rows), np.nan, rows).reshape(len(xs), -1)  # one NaN
  keys = np.column_stack([
      xs.astype(np.float64).view(np.uint64),
      np.ascontiguousarray(columns, dtype=np.float64).view(np.uint64)
  ])
  _, group = np.unique(keys, axis=0, return_inverse=True)
  group = group.reshape(-1)
  order = np.argsort(group, kind='stable')
  sorted_groups = group[order]
  starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
  copy_number = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
  return np.sort(order[copy_number < k])


def _first_points(is_datetime: bool, field: str, names: Tuple[str, ...], xs: np.ndarray,
                  rows: np.ndarray, k: int) -> List[Ranked]:
  chosen = _first_candidates(xs, rows, k)
  ranks = point_ranks(xs[chosen], rows[chosen])
  kept = []
  for rank, x, row in zip(ranks.tolist(), xs[chosen].tolist(), rows[chosen].tolist()):
    point = (x, is_datetime, {
        name: number
        for name, number in zip(names, row) if not math.isnan(number)
    }, field)
    kept.append((rank, repr(point), point))
  return smallest_ranked(kept, k)


_Key = Tuple[str, bool, str, Tuple[str, ...]]  # site, x is a datetime, time field, output names


class _FirstCandidates:
  """A bundle's points per key (site, x kind, time field, output names), trimmed to their
  ``k`` first ranks (ties kept: :func:`_first_candidates`) whenever a key holds more than
  ``buffer_factor * k``: whatever ``k`` points any later step samples of the key are
  among them."""

  def __init__(self, k: int, buffer_factor: int):
    self._k = k
    self._limit = buffer_factor * k
    self._buffers: Dict[_Key, Tuple[List[np.ndarray], List[np.ndarray], List[int]]] = {}

  def add(self, site: str, points: TimedPoints) -> None:
    is_datetime, field, names, xs, rows = points
    xs_parts, rows_parts, size = self._buffers.setdefault((site, is_datetime, field, names),
                                                          ([], [], [0]))
    xs_parts.append(xs)
    rows_parts.append(rows)
    size[0] += len(xs)
    if size[0] > self._limit:
      all_xs, all_rows = np.concatenate(xs_parts), np.concatenate(rows_parts)
      chosen = _first_candidates(all_xs, all_rows, self._k)
      xs_parts[:], rows_parts[:] = [all_xs[chosen]], [all_rows[chosen]]
      size[0] = len(chosen)

  def drain(self) -> Iterator[Tuple[_Key, np.ndarray, np.ndarray]]:
    """Each key's points (in the order keys came), emptying the buffer key by key."""
    for key in list(self._buffers):
      xs_parts, rows_parts, _ = self._buffers.pop(key)
      yield key, np.concatenate(xs_parts), np.concatenate(rows_parts)


class TimedPointsFn(beam.DoFn):
  """:func:`timed_points` of a bundle's batches, each site's points cut to its ``k`` first
  (and ties) in the bundle's end: the first pass keeps at most about ``k`` points per
  site and bundle until the series sites are known, whatever the site's rows."""

  BUFFER_FACTOR = 16

  def __init__(self, k: int, time_field: str):
    self._k = k
    self._time_field = time_field
    self._candidates = None

  def start_bundle(self):
    self._candidates = _FirstCandidates(self._k, self.BUFFER_FACTOR)

  def process(self, batch):
    for site, points in timed_points(batch, self._time_field):
      self._candidates.add(site, points)

  def finish_bundle(self):
    for (site, is_datetime, field, names), xs, rows in self._candidates.drain():
      chosen = _first_candidates(xs, rows, self._k)
      yield GlobalWindows.windowed_value(
          (site, (is_datetime, field, names, xs[chosen], rows[chosen])))


class SeriesPointsFn(beam.DoFn):
  """:func:`series_points` of a bundle's elements at once: the arrays of each site (and
  time field kind) are gathered and reduced to their ``k`` first points in the bundle's
  end, so a site of many batches makes ``k`` Python points per bundle, not per batch.
  What is buffered stays under ``BUFFER_FACTOR * k`` points per key (trimmed to the
  candidates as it grows)."""

  BUFFER_FACTOR = 16

  def __init__(self, k: int):
    self._k = k
    self._candidates = None

  def start_bundle(self):
    self._candidates = _FirstCandidates(self._k, self.BUFFER_FACTOR)

  def process(self, element: Tuple[str, TimedPoints], sites: Sequence[Optional[str]]):
    site, points = element
    if site in set(sites) and len(points[3]):
      self._candidates.add(site, points)

  def finish_bundle(self):
    for (site, is_datetime, field, names), xs, rows in self._candidates.drain():
      yield GlobalWindows.windowed_value(
          (site, _first_points(is_datetime, field, names, xs, rows, self._k)))


def _has_predictions(line: Dict[str, Any]) -> bool:
  return line['site_id'] is not None and line['predicted'] > 0


def _site_ids(lines: List[Dict[str, Any]]) -> List[str]:
  return [line['site_id'] for line in sorted(lines, key=worst_first)]


def _series(by_site: Dict[str, List[Point]], sites: List[str]) -> List[Dict[str, Any]]:
  out = []
  for site in sites:
    points = sorted(by_site.get(site, []), key=lambda p: p[0])
    if points:
      out.append({
          'site_id': site,
          'datetime': all(p[1] for p in points),
          'time_field': points[0][3],
          'x': [p[0] for p in points],
          'values': [p[2] for p in points]
      })
  return out


class SampleSeries(beam.PTransform):
  """``List[Prediction]`` batches -> one ``[{'site_id', 'datetime', 'time_field', 'x', 'values'}]``.

  The sites are the ``max_sites`` worst (:func:`worst_first`) of the site
  lines that have predictions; each gets a sample of at most
  ``points_per_site`` predictions that have a time, sorted by time, with the
  first number of up to three outputs. ``time_field=None`` turns it off (``[]``).
  """

  def __init__(self,
               *,
               site_lines: beam.PCollection,
               time_field: Optional[str] = AUTO,
               max_sites: int = DEFAULT_SERIES_SITES,
               points_per_site: int = DEFAULT_POINTS_PER_SITE):
    super().__init__()
    self._site_lines = site_lines
    self._time_field = time_field
    self._max_sites = max_sites
    self._points_per_site = points_per_site

  def expand(self, batches):
    if self._time_field is None:
      return batches.pipeline | 'NoSeries' >> beam.Create([[]])
    sites = (self._site_lines
             | 'WithPredictions' >> beam.Filter(_has_predictions)
             |
             'SeriesSites' >> beam.combiners.Top.Of(self._max_sites, key=worst_first, reverse=True)
             | 'SiteIds' >> beam.Map(_site_ids))
    return (batches
            | 'TimedPoints' >> beam.ParDo(TimedPointsFn(self._points_per_site, self._time_field))
            | 'Points' >> beam.ParDo(SeriesPointsFn(self._points_per_site),
                                     sites=beam.pvalue.AsSingleton(sites))
            | 'Sample' >> beam.CombineGlobally(MergeBottomKPerKeyFn(self._points_per_site))
            | 'Series' >> beam.Map(_series, sites=beam.pvalue.AsSingleton(sites)))
