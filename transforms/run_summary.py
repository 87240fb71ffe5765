"""``summary.json``: the run's counts and verdict, written once every output is committed.

Jobs describe their outcomes as a PCollection of ``(key, amount)`` pairs
where ``key`` is a tuple path such as ``('failed', 'bad_json')``; the pairs
are summed per key, nested into a dict, completed by a job-specific function
(derived totals, reconciliation), judged by a :class:`StatusPolicy`
(``status`` ``ok`` or ``failed`` and a one-line ``status_reason``) and
written beside the outputs as strict JSON.

A failed run still writes every output, its summary and its report. Then,
on a remote runner, :class:`FailJobIfRunFailed` (a last step that waits for
the summary and whatever else is given, e.g. ``report.html``) raises
:class:`RunFailed` so the Dataflow job fails. The summary step itself never
raises for a failed run; a retried summary step leaves the summary the first
attempt wrote (same counts, same ``wall_time_s``). Local launches read the
summary back instead and exit non-zero.
"""
import dataclasses
import json
import logging
import time
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import apache_beam as beam

from common import paths

_LOGGER = logging.getLogger(__name__)

StatKey = Tuple[str, ...]
Finalizer = Callable[[Dict[str, Any]], Dict[str, Any]]
OK = 'ok'
FAILED = 'failed'
_VOLATILE = ('wall_time_s', )


class RunFailed(RuntimeError):
  """The run wrote its outputs but its summary says ``failed``."""

  def __init__(self, reason: str, summary_path: str):
    super().__init__(f'run failed: {reason}; see {summary_path}')
    self.reason = reason
    self.summary_path = summary_path


@dataclasses.dataclass(frozen=True)
class StatusPolicy:
  """When a run is ``failed``, from the finalized summary's counts.

  In order: counts that do not reconcile; nothing read; nothing produced;
  more than ``max_failed_fraction`` of the records read failed. Otherwise ok.
  """
  read_key: str  # e.g. 'records_read'
  done_key: str  # e.g. 'predictions_written'
  failed_key: str  # e.g. 'failed_total'
  noun: str  # 'records'
  done_verb: str  # 'predicted'
  max_failed_fraction: float

  def judge(self, summary: Mapping[str, Any]) -> Tuple[str, str]:
    """``(status, one-line reason)``."""
    read, done, failed = (summary.get(k, 0)
                          for k in (self.read_key, self.done_key, self.failed_key))
    if not summary.get('reconciled', True):
      return FAILED, (f'counts do not reconcile: {read} {self.noun} read, {done} '
                      f'{self.done_verb}, {failed} failed')
    if not read:
      return FAILED, f'no {self.noun} read'
    if not done:
      return FAILED, f'0 of {read} {self.noun} {self.done_verb}'
    if failed / read > self.max_failed_fraction:
      return FAILED, (f'{failed} of {read} {self.noun} failed ({failed / read:.1%}), more '
                      f'than --max_failed_fraction={self.max_failed_fraction:g}')
    return OK, f'{done} of {read} {self.noun} {self.done_verb}, {failed} failed'


def nest(pairs: Iterable[Tuple[StatKey, Any]]) -> Dict[str, Any]:
  """``[(('a', 'b'), 1)] -> {'a': {'b': 1}}``; keys of each level sorted."""
  tree: Dict[str, Any] = {}
  for key, amount in sorted(pairs):
    node = tree
    for part in key[:-1]:
      node = node.setdefault(part, {})
    node[key[-1]] = amount
  return tree


def encode(summary: Mapping[str, Any]) -> bytes:
  """Strict JSON (NaN or Infinity raise ValueError), indented, keys sorted."""
  return (json.dumps(summary, indent=2, sort_keys=True, allow_nan=False) + '\n').encode()


def write_once(path: str, summary: Dict[str, Any]) -> Dict[str, Any]:
  """Writes ``summary`` unless ``path`` already holds it (``wall_time_s`` aside).

  Returns what ``path`` holds afterwards, so a retried step keeps the first
  attempt's file byte for byte.
  """
  try:
    existing = json.loads(paths.read_bytes(path)) if paths.exists(path) else None
  except (OSError, ValueError):
    existing = None
  data = encode(summary)
  if isinstance(existing, dict) and _stable(existing) == _stable(json.loads(data)):
    return existing
  paths.write_bytes(path, data, mime_type='application/json')
  return summary


def _stable(summary: Mapping[str, Any]) -> Dict[str, Any]:
  return {k: v for k, v in summary.items() if k not in _VOLATILE}


def build_summary(stats: Iterable[Tuple[StatKey, Any]],
                  output_files: Iterable[Tuple[str, str]],
                  *,
                  finalize: Optional[Finalizer] = None,
                  extra: Optional[Mapping[str, Any]] = None,
                  policy: Optional[StatusPolicy] = None) -> Dict[str, Any]:
  """The summary dict, before ``wall_time_s``: summed stats nested, ``extra``
  added, ``finalize`` applied, judged by ``policy`` (``status``,
  ``status_reason``, ``max_failed_fraction``), and ``outputs`` listing the
  ``(output name, file)`` pairs, each name's files sorted.
  """
  summary = nest(stats)
  summary.update(extra or {})
  if finalize:
    summary = finalize(summary)
  if policy:
    summary['status'], summary['status_reason'] = policy.judge(summary)
    summary['max_failed_fraction'] = policy.max_failed_fraction
  listed: Dict[str, list] = {}
  for name, path in output_files:
    listed.setdefault(name, []).append(path)
  summary['outputs'] = {name: sorted(files) for name, files in listed.items()}
  return summary


class _WriteSummaryFn(beam.DoFn):
  """Builds, judges and writes ``summary.json``; runs once (input: a single dummy element).

  Yields the summary, whatever its status; storage errors raise (the runner
  retries).
  """

  def __init__(self, path: str, started_at: float, finalize: Optional[Finalizer],
               extra: Mapping[str, Any], policy: Optional[StatusPolicy]):
    self._path = path
    self._started_at = started_at
    self._finalize = finalize
    self._extra = dict(extra)
    self._policy = policy

  def process(self, unused_element, stats, output_files):
    summary = build_summary(stats,
                            output_files,
                            finalize=self._finalize,
                            extra=self._extra,
                            policy=self._policy)
    summary['wall_time_s'] = round(time.time() - self._started_at, 3)
    summary = write_once(self._path, summary)
    if summary.get('status', OK) != OK:
      _LOGGER.error('Run failed: %s (%s)', summary['status_reason'], self._path)
    yield summary


def fail_if_failed(summary: Mapping[str, Any], unused_after, *,
                   summary_path: str) -> Mapping[str, Any]:
  """Raises RunFailed when ``summary`` says ``failed``; returns it otherwise."""
  if summary.get('status', OK) != OK:
    raise RunFailed(summary.get('status_reason', 'see the summary'), summary_path)
  return summary


class WriteRunSummary(beam.PTransform):
  """Writes ``<output>/summary.json`` after the given outputs are committed.

  Input: PCollection of ``(tuple key, number)`` stats.
  Output: PCollection with the one summary dict, also when the run failed
  (apply :class:`FailJobIfRunFailed` to it to fail the job).
  """

  def __init__(self,
               output_dir: str,
               *,
               started_at: float,
               outputs: Mapping[str, beam.PCollection],
               finalize: Optional[Finalizer] = None,
               extra: Optional[Mapping[str, Any]] = None,
               policy: Optional[StatusPolicy] = None):
    """
    Args:
      output_dir: folder of the run's outputs.
      started_at: ``time.time()`` when the job was built, for ``wall_time_s``.
      outputs: PCollections of committed file names; the summary waits for
        them and lists them.
      finalize: module-level function adding derived fields to the summary.
      extra: constant fields to include (e.g. the run id).
      policy: adds ``status``/``status_reason``; None leaves them out.
    """
    super().__init__()
    self._path = paths.join(output_dir, 'summary.json')
    self._started_at = started_at
    self._outputs = dict(outputs)
    self._finalize = finalize
    self._extra = dict(extra or {})
    self._policy = policy

  def expand(self, stats):
    totals = (stats | 'SumPerKey' >> beam.CombinePerKey(sum) | 'Collect' >> beam.combiners.ToList())
    named_files = [
        files | f'Name{name.title()}' >> beam.Map(_named, name)
        for name, files in sorted(self._outputs.items())
    ]
    output_files = named_files | 'OutputFiles' >> beam.Flatten(pipeline=stats.pipeline)
    return (stats.pipeline
            | 'Once' >> beam.Create([None])
            | 'Write' >> beam.ParDo(_WriteSummaryFn(self._path, self._started_at, self._finalize,
                                                    self._extra, self._policy),
                                    stats=beam.pvalue.AsSingleton(totals),
                                    output_files=beam.pvalue.AsList(output_files)))


def _named(path: str, name: str) -> Tuple[str, str]:
  return name, path


class FailJobIfRunFailed(beam.PTransform):
  """The summary (one dict) -> the same summary; raises RunFailed if it says ``failed``.

  The job's last step on remote runners: it runs once every PCollection in
  ``after`` is complete (e.g. the written ``report.html`` path), so a failed
  Dataflow job still leaves its outputs, summary and report. Local runs
  leave it out and exit non-zero from the summary they read back.
  """

  def __init__(self, output_dir: str, *, after: Sequence[beam.PCollection] = ()):
    super().__init__()
    self._summary_path = paths.join(output_dir, 'summary.json')
    self._after = list(after)

  def expand(self, summary):
    after = (self._after or [summary]) | 'After' >> beam.Flatten(pipeline=summary.pipeline)
    return summary | 'FailIfFailed' >> beam.Map(
        fail_if_failed, beam.pvalue.AsList(after), summary_path=self._summary_path)
