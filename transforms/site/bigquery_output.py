"""Predictions and dead letters as BigQuery rows, written with Beam's ``WriteToBigQuery``.

Models of different sites may have different outputs, so the prediction
table has a fixed schema and keeps the named outputs (and the instance) as
JSON text; query them with ``JSON_VALUE(prediction, '$.energy_kwh[0]')``.

JSON text columns are strict JSON (``PARSE_JSON`` reads them): a non-finite
float of an instance or dead-letter record is written as the string
``"NaN"``, ``"Infinity"`` or ``"-Infinity"``, as in the JSON-lines outputs.
"""
import datetime
import math
from typing import Any, Dict, Iterator, List, Optional

import apache_beam as beam
from apache_beam.io.gcp.bigquery import BigQueryDisposition
from apache_beam.io.gcp.bigquery import WriteToBigQuery

from transforms import json_lines
from transforms.site.inference import Prediction

FILE_LOADS = 'FILE_LOADS'
STREAMING_INSERTS = 'STREAMING_INSERTS'
WRITE_METHODS = (FILE_LOADS, STREAMING_INSERTS)

PREDICTION_SCHEMA = {'fields': [
    {'name': 'site_id', 'type': 'STRING', 'mode': 'REQUIRED'},
    {'name': 'key', 'type': 'STRING', 'mode': 'NULLABLE'},
    {'name': 'prediction', 'type': 'STRING', 'mode': 'REQUIRED',
     'description': 'JSON object of the named model outputs'},
    {'name': 'instance', 'type': 'STRING', 'mode': 'REQUIRED',
     'description': 'JSON of the input row, untouched'},
    {'name': 'model_version', 'type': 'STRING', 'mode': 'NULLABLE'},
    {'name': 'run_id', 'type': 'STRING', 'mode': 'REQUIRED'},
    {'name': 'predicted_at', 'type': 'TIMESTAMP', 'mode': 'REQUIRED'},
]}

DEAD_LETTER_SCHEMA = {'fields': [
    {'name': 'stage', 'type': 'STRING', 'mode': 'REQUIRED'},
    {'name': 'reason', 'type': 'STRING', 'mode': 'REQUIRED'},
    {'name': 'message', 'type': 'STRING', 'mode': 'NULLABLE'},
    {'name': 'site_id', 'type': 'STRING', 'mode': 'NULLABLE'},
    {'name': 'source', 'type': 'STRING', 'mode': 'NULLABLE'},
    {'name': 'record', 'type': 'STRING', 'mode': 'NULLABLE',
     'description': 'JSON of the failed input record'},
    {'name': 'run_id', 'type': 'STRING', 'mode': 'REQUIRED'},
    {'name': 'failed_at', 'type': 'TIMESTAMP', 'mode': 'REQUIRED'},
]}


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat()


def _json(value: Any) -> str:
  return json_lines.dumps(value, non_finite=json_lines.AS_STRING)


def _text(value: Any) -> Optional[str]:
  """A STRING column's value: text as it is, anything else as its JSON."""
  if value is None or isinstance(value, str):
    return value
  if isinstance(value, float) and not math.isfinite(value):
    return json_lines.non_finite_text(value)
  return _json(value)


def prediction_row(prediction: Prediction, key_field: Optional[str], run_id: str) -> Dict[str, Any]:
  return {
      'site_id': prediction.site_id,
      'key': _text(prediction.instance.get(key_field)) if key_field else None,
      'prediction': _json(prediction.outputs),
      'instance': _json(prediction.instance),
      'model_version': prediction.model_version,
      'run_id': run_id,
      'predicted_at': _now(),
  }


def prediction_rows(batch: List[Prediction], key_field: Optional[str],
                    run_id: str) -> Iterator[Dict[str, Any]]:
  for prediction in batch:
    yield prediction_row(prediction, key_field, run_id)


def dead_letter_row(letter: Dict[str, Any], run_id: str) -> Dict[str, Any]:
  return {
      'stage': letter['stage'], 'reason': letter['reason'], 'message': letter['message'],
      'site_id': letter['site_id'], 'source': letter['source'],
      'record': _text(letter['record']), 'run_id': run_id, 'failed_at': _now(),
  }


def rejected_row(table: str, element) -> Dict[str, Any]:
  """A row BigQuery refused, as a dead letter (it is still in the JSON-lines output)."""
  destination, row, errors = element
  return {'stage': 'write_bigquery', 'reason': 'bigquery_rejected',
          'message': _json(errors)[:2000], 'site_id': row.get('site_id'),
          'source': str(destination or table), 'record': row}


class _WriteRows(beam.PTransform):
  """Rows -> BigQuery table; output: the rows BigQuery rejected, as dead letters."""

  def __init__(self, table: str, schema: dict, method: str):
    super().__init__()
    if method not in WRITE_METHODS:
      raise ValueError(f'method must be one of {WRITE_METHODS}, got {method!r}')
    self._table = table
    self._schema = schema
    self._method = method

  def expand(self, rows):
    result = rows | 'Write' >> WriteToBigQuery(
        self._table, schema=self._schema, method=self._method,
        create_disposition=BigQueryDisposition.CREATE_IF_NEEDED,
        write_disposition=BigQueryDisposition.WRITE_APPEND,
        insert_retry_strategy='RETRY_ON_TRANSIENT_ERROR')
    if self._method == STREAMING_INSERTS:
      rejected = result.failed_rows_with_errors
    else:
      # Load jobs fail the job rather than single rows.
      rejected = rows.pipeline | 'NoneRejected' >> beam.Create([])
    return rejected | 'AsDeadLetters' >> beam.Map(_rejected_with_table, self._table)


def _rejected_with_table(element, table):
  return rejected_row(table, element)


class WritePredictionsToBigQuery(beam.PTransform):
  """Prediction batches -> ``table`` (schema :data:`PREDICTION_SCHEMA`); output: rejected rows."""

  def __init__(self, table: str, *, run_id: str, key_field: Optional[str], method: str):
    super().__init__()
    self._table, self._run_id, self._key_field, self._method = table, run_id, key_field, method

  def expand(self, predictions):
    return (
        predictions
        | 'ToRows' >> beam.FlatMap(prediction_rows, self._key_field, self._run_id)
        | 'Write' >> _WriteRows(self._table, PREDICTION_SCHEMA, self._method))


class WriteDeadLettersToBigQuery(beam.PTransform):
  """Dead letters -> ``table`` (schema :data:`DEAD_LETTER_SCHEMA`); output: rejected rows."""

  def __init__(self, table: str, *, run_id: str, method: str):
    super().__init__()
    self._table, self._run_id, self._method = table, run_id, method

  def expand(self, letters):
    return (
        letters
        | 'ToRow' >> beam.Map(dead_letter_row, self._run_id)
        | 'Write' >> _WriteRows(self._table, DEAD_LETTER_SCHEMA, self._method))
