"""``summary.json``: the run's counts, written once every output is committed.

Jobs describe their outcomes as a PCollection of ``(key, amount)`` pairs
where ``key`` is a tuple path such as ``('failed', 'bad_json')``; the pairs
are summed per key, nested into a dict, completed by a job-specific function
(derived totals, reconciliation) and written beside the outputs.
"""
import json
import time
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple

import apache_beam as beam

from common import paths

StatKey = Tuple[str, ...]
Finalizer = Callable[[Dict[str, Any]], Dict[str, Any]]


def nest(pairs: Iterable[Tuple[StatKey, Any]]) -> Dict[str, Any]:
  """``[(('a', 'b'), 1)] -> {'a': {'b': 1}}``; keys of each level sorted."""
  tree: Dict[str, Any] = {}
  for key, amount in sorted(pairs):
    node = tree
    for part in key[:-1]:
      node = node.setdefault(part, {})
    node[key[-1]] = amount
  return tree


class _WriteSummaryFn(beam.DoFn):
  """Builds and writes ``summary.json``; runs once (input: a single dummy element)."""

  def __init__(self, path: str, started_at: float, finalize: Optional[Finalizer],
               extra: Mapping[str, Any]):
    self._path = path
    self._started_at = started_at
    self._finalize = finalize
    self._extra = dict(extra)

  def process(self, unused_element, stats, output_files):
    summary = nest(stats)
    summary.update(self._extra)
    if self._finalize:
      summary = self._finalize(summary)
    listed: Dict[str, list] = {}
    for name, path in output_files:
      listed.setdefault(name, []).append(path)
    summary['outputs'] = {name: sorted(files) for name, files in listed.items()}
    summary['wall_time_s'] = round(time.time() - self._started_at, 3)
    paths.write_bytes(
        self._path, (json.dumps(summary, indent=2, sort_keys=True) + '\n').encode(),
        mime_type='application/json')
    yield summary


class WriteRunSummary(beam.PTransform):
  """Writes ``<output>/summary.json`` after the given outputs are committed.

  Input: PCollection of ``(tuple key, number)`` stats.
  Output: PCollection with the one summary dict.
  """

  def __init__(self, output_dir: str, *, started_at: float,
               outputs: Mapping[str, beam.PCollection],
               finalize: Optional[Finalizer] = None,
               extra: Optional[Mapping[str, Any]] = None):
    """
    Args:
      output_dir: folder of the run's outputs.
      started_at: ``time.time()`` when the job was built, for ``wall_time_s``.
      outputs: PCollections of committed file names; the summary waits for
        them and lists them.
      finalize: module-level function adding derived fields to the summary.
      extra: constant fields to include (e.g. the run id).
    """
    super().__init__()
    self._path = paths.join(output_dir, 'summary.json')
    self._started_at = started_at
    self._outputs = dict(outputs)
    self._finalize = finalize
    self._extra = dict(extra or {})

  def expand(self, stats):
    totals = (
        stats
        | 'SumPerKey' >> beam.CombinePerKey(sum)
        | 'Collect' >> beam.combiners.ToList())
    named_files = [
        files | f'Name{name.title()}' >> beam.Map(_named, name)
        for name, files in sorted(self._outputs.items())]
    output_files = named_files | 'OutputFiles' >> beam.Flatten(
        pipeline=stats.pipeline)
    return (
        stats.pipeline
        | 'Once' >> beam.Create([None])
        | 'Write' >> beam.ParDo(
            _WriteSummaryFn(self._path, self._started_at, self._finalize, self._extra),
            stats=beam.pvalue.AsSingleton(totals),
            output_files=beam.pvalue.AsList(output_files)))


def _named(path: str, name: str) -> Tuple[str, str]:
  return name, path
