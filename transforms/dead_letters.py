"""Dead letters: one JSON object per failed input record, with a machine-readable reason.

Every composite that can fail returns its failures as dicts built by
:func:`dead_letter`, and jobs write them with :class:`WriteDeadLetters`. The
schema is a contract (docs/contracts.md)::

  {"stage", "reason", "message", "site_id", "source", "record"}

Written lines are strict JSON. The record is the input as the stage that
refused it had it: the line's text for lines that did not parse, the row
object otherwise; a non-finite float in it (``NaN`` in an input line, a
BigQuery FLOAT64 NaN) is written as the string ``"NaN"``, ``"Infinity"`` or
``"-Infinity"``.
"""
from typing import Any, Dict, Optional

import apache_beam as beam

from common import paths
from common.failures import NO_RECORD
from common.failures import RecordFailure
from transforms import json_lines

FAILED = 'failed'
"""Tag of the failed output of every DoFn in this package."""

METRICS_NAMESPACE = 'dead_letters'


def encode_dead_letter(letter: Dict[str, Any]) -> str:
  """A dead letter as one strict JSON line (non-finite floats as strings)."""
  return json_lines.dumps(letter, non_finite=json_lines.AS_STRING)


def dead_letter(stage: str,
                reason: str,
                message: str,
                *,
                site_id: Optional[str] = None,
                source: Optional[str] = None,
                record: Any = None) -> Dict[str, Any]:
  """Builds a dead-letter record and counts it under ``dead_letters/<reason>``."""
  beam.metrics.Metrics.counter(METRICS_NAMESPACE, reason).inc()
  return {
      'stage': stage,
      'reason': reason,
      'message': message,
      'site_id': site_id,
      'source': source,
      'record': record,
  }


def failure_letter(failure: RecordFailure,
                   source: Optional[str],
                   *,
                   site_id: Optional[str] = None,
                   record: Any = NO_RECORD) -> Dict[str, Any]:
  """The dead letter of ``failure`` (its record, unless ``record`` is given)."""
  if record is NO_RECORD:
    record = None if failure.record is NO_RECORD else failure.record
  return dead_letter(failure.stage,
                     failure.reason,
                     failure.message,
                     site_id=site_id,
                     source=source,
                     record=record)


def failed(letter: Dict[str, Any]) -> beam.pvalue.TaggedOutput:
  """``letter`` as an element of the :data:`FAILED` output."""
  return beam.pvalue.TaggedOutput(FAILED, letter)


class WriteDeadLetters(beam.PTransform):
  """Writes dead letters as JSON-lines ``<output>/errors/<name>-*.jsonl``.

  Input: PCollection of dead-letter dicts. Output: the written file names.
  """

  def __init__(self, output_dir: str, *, name: str = 'errors'):
    super().__init__()
    self._prefix = paths.join(output_dir, 'errors', name)

  def expand(self, letters):
    return (letters
            | 'Encode' >> beam.Map(encode_dead_letter)
            | 'Write' >> beam.io.WriteToText(self._prefix, file_name_suffix='.jsonl'))
