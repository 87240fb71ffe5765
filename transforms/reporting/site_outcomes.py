"""``SiteOutcomes``: one line per site with what happened to its rows and its model.

Written as ``<output>/sites/sites-*.jsonl`` (strict JSON, one object a line)::

  {"site_id": "site-0001", "status": "partial", "rows": 25, "predicted": 24,
   "failed": 1, "failed_fraction": 0.04, "failed_by_reason": {"bad_feature": 1},
   "model_versions": ["1"], "models_loaded": 1, "models_fast_path": 1,
   "model_load_ms": 5.2}

``status`` is ``ok`` (nothing failed), ``partial`` or ``failed`` (nothing
predicted): what a scheduler alerts on. Rows that never had a usable site
(unparseable lines, missing or bad site field) are counted under
``"site_id": null``, so ``rows`` summed over all lines equals the run's
``records_read``. ``models_loaded``, ``models_fast_path`` and
``model_load_ms`` are null when the job gave no model-load facts.

The counts are combined per site in the pipeline (no worker holds more than
one site's counters); only the report's bounded table
(:class:`SiteTable`) comes together on one worker.
"""
from typing import Any, Dict, Iterable, List, Optional, Tuple

import apache_beam as beam

from common import paths
from transforms import json_lines
from transforms.site.predictions import batches_of

OK = 'ok'
PARTIAL = 'partial'
FAILED = 'failed'
STATUSES = (OK, PARTIAL, FAILED)
DEFAULT_TABLE_SITES = 500

SiteKey = Optional[str]
# (kind, payload) events combined per site:
#   ('predicted', (count, model_version)), ('failed', reason), ('load', facts dict)
Event = Tuple[str, Any]


def site_key(site_id: Any) -> SiteKey:
  """The key a dead letter's or prediction's ``site_id`` is counted under."""
  if site_id is None:
    return None
  return site_id if isinstance(site_id, str) else str(site_id)


def prediction_events(batch) -> Iterable[Tuple[SiteKey, Event]]:
  """``List[Prediction] -> (site, ('predicted', (n, model_version)))``, one per site and version."""
  counts: Dict[Tuple[SiteKey, Optional[str]], int] = {}
  for part in batches_of(batch):
    key = (site_key(part.site_id), part.model_version)
    counts[key] = counts.get(key, 0) + len(part)
  for (site, version), count in counts.items():
    yield site, ('predicted', (count, version))


def failure_event(letter: Dict[str, Any]) -> Tuple[SiteKey, Event]:
  """``dead letter -> (site, ('failed', reason))``."""
  return site_key(letter.get('site_id')), ('failed', str(letter.get('reason') or 'unknown'))


def load_event(element: Tuple[Any, Dict[str, Any]]) -> Tuple[SiteKey, Event]:
  """``(site_id, {'model_version', 'fast_path', 'load_ms'}) -> (site, ('load', facts))``."""
  site_id, facts = element
  return site_key(site_id), ('load', facts)


class _Counts:
  """Mutable per-site accumulator of :class:`SiteOutcomeFn`."""
  __slots__ = ('predicted', 'failed', 'versions', 'loads', 'fast_path', 'load_ms')

  def __init__(self):
    self.predicted = 0
    self.failed: Dict[str, int] = {}
    self.versions = set()
    self.loads = 0
    self.fast_path = 0
    self.load_ms = 0.0

  def add(self, event: Event) -> None:
    kind, payload = event
    if kind == 'predicted':
      count, version = payload
      self.predicted += count
      if version is not None:
        self.versions.add(str(version))
    elif kind == 'failed':
      self.failed[payload] = self.failed.get(payload, 0) + 1
    else:
      self.loads += 1
      self.fast_path += 1 if payload.get('fast_path') else 0
      self.load_ms += float(payload.get('load_ms') or 0.0)
      if payload.get('model_version') is not None:
        self.versions.add(str(payload['model_version']))

  def merge(self, other: '_Counts') -> None:
    self.predicted += other.predicted
    for reason, count in other.failed.items():
      self.failed[reason] = self.failed.get(reason, 0) + count
    self.versions |= other.versions
    self.loads += other.loads
    self.fast_path += other.fast_path
    self.load_ms += other.load_ms


class SiteOutcomeFn(beam.CombineFn):
  """Events of one site -> a :class:`_Counts`."""

  def create_accumulator(self):
    return _Counts()

  def add_input(self, accumulator, element):
    accumulator.add(element)
    return accumulator

  def merge_accumulators(self, accumulators):
    accumulators = iter(accumulators)
    merged = next(accumulators)
    for other in accumulators:
      merged.merge(other)
    return merged

  def extract_output(self, accumulator):
    return accumulator


def outcome_line(element: Tuple[SiteKey, _Counts], with_loads: bool) -> Dict[str, Any]:
  """``(site, counts) ->`` the site's line (see the module docstring)."""
  site, counts = element
  failed = sum(counts.failed.values())
  rows = counts.predicted + failed
  if not failed:
    status = OK
  elif not counts.predicted:
    status = FAILED
  else:
    status = PARTIAL
  return {
      'site_id': site,
      'status': status,
      'rows': rows,
      'predicted': counts.predicted,
      'failed': failed,
      'failed_fraction': round(failed / rows, 6) if rows else 0.0,
      'failed_by_reason': dict(sorted(counts.failed.items())),
      'model_versions': sorted(counts.versions),
      'models_loaded': counts.loads if with_loads else None,
      'models_fast_path': counts.fast_path if with_loads else None,
      'model_load_ms': round(counts.load_ms, 1) if with_loads else None,
  }


def worst_first(line: Dict[str, Any]) -> Tuple[float, int, int, str]:
  """Sort key: highest failed fraction, then most failed, then most rows, then site id."""
  site = line['site_id']
  return (-line['failed_fraction'], -line['failed'], -line['rows'], '' if site is None else site)


class SiteOutcomes(beam.PTransform):
  """``List[Prediction]`` batches (+ dead letters, model loads) -> one line dict per site.

  Input: the prediction batches of ``PredictPerSite``. ``failed``: every
  dead letter of the run (dicts with ``site_id`` and ``reason``).
  ``model_loads``: optional ``(site_id, {'model_version': str|None,
  'fast_path': bool, 'load_ms': float})`` per model load; without it the
  model-load fields are null. Never fails on odd values: a non-string site
  id is counted under its ``str``, a missing reason under ``unknown``.
  """

  def __init__(self, *, failed: beam.PCollection, model_loads: Optional[beam.PCollection] = None):
    super().__init__()
    self._failed = failed
    self._model_loads = model_loads

  def expand(self, prediction_batches):
    events = [
        prediction_batches | 'PredictedEvents' >> beam.FlatMap(prediction_events),
        self._failed | 'FailedEvents' >> beam.Map(failure_event),
    ]
    if self._model_loads is not None:
      events.append(self._model_loads | 'LoadEvents' >> beam.Map(load_event))
    return (events
            | 'AllEvents' >> beam.Flatten()
            | 'CombinePerSite' >> beam.CombinePerKey(SiteOutcomeFn())
            | 'ToLine' >> beam.Map(outcome_line, self._model_loads is not None))


class WriteSiteOutcomes(beam.PTransform):
  """Site line dicts -> ``<output>/sites/sites-*.jsonl``; returns the written file names."""

  def __init__(self, output_dir: str):
    super().__init__()
    self._prefix = paths.join(output_dir, 'sites', 'sites')

  def expand(self, lines):
    return (lines
            | 'Encode' >> beam.Map(json_lines.dumps)
            | 'Write' >> beam.io.WriteToText(self._prefix, file_name_suffix='.jsonl'))


def _new_totals() -> Dict[str, int]:
  return dict.fromkeys(('lines', 'sites') + STATUSES + ('rows', 'predicted', 'failed_rows'), 0)


class SiteTableFn(beam.CombineFn):
  """Site lines -> ``{'totals': {...}, 'worst': [line]}``: counts over every line, and
  the ``max_sites`` worst lines (:func:`worst_first`).

  ``totals`` holds ``lines``, ``sites``, one count per status, ``rows``,
  ``predicted`` and ``failed_rows``; the line of rows without a site
  (``site_id`` null) adds to ``lines`` and the row counts, not to the site
  counts. Accumulators hold at most ``2 * max_sites`` lines.
  """

  def __init__(self, max_sites: int = DEFAULT_TABLE_SITES):
    if max_sites < 1:
      raise ValueError(f'max_sites must be >= 1, got {max_sites}')
    self._max_sites = max_sites

  def create_accumulator(self):
    return {'totals': _new_totals(), 'worst': []}

  def add_input(self, accumulator, line):
    totals = accumulator['totals']
    totals['lines'] += 1
    if line['site_id'] is not None:
      totals['sites'] += 1
      totals[line['status']] += 1
    totals['rows'] += line['rows']
    totals['predicted'] += line['predicted']
    totals['failed_rows'] += line['failed']
    accumulator['worst'].append(line)
    if len(accumulator['worst']) >= 2 * self._max_sites:
      accumulator['worst'] = self._trim(accumulator['worst'])
    return accumulator

  def merge_accumulators(self, accumulators):
    merged = self.create_accumulator()
    for accumulator in accumulators:
      for key, value in accumulator['totals'].items():
        merged['totals'][key] += value
      merged['worst'] = self._trim(merged['worst'] + accumulator['worst'])
    return merged

  def extract_output(self, accumulator):
    return {'totals': accumulator['totals'], 'worst': self._trim(accumulator['worst'])}

  def _trim(self, lines: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return sorted(lines, key=worst_first)[:self._max_sites]


class SiteTable(beam.PTransform):
  """Site lines -> one :class:`SiteTableFn` output (``{'totals', 'worst'}``)."""

  def __init__(self, *, max_sites: int = DEFAULT_TABLE_SITES):
    super().__init__()
    self._max_sites = max_sites

  def expand(self, lines):
    return lines | 'Table' >> beam.CombineGlobally(SiteTableFn(self._max_sites))
