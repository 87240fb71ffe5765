"""Predictions, dead letters and site outcomes as BigQuery rows, written with ``WriteToBigQuery``.

Models of different sites may have different outputs, so every table has a
fixed schema and keeps the named outputs (and the instance) as JSON; query
them with ``JSON_VALUE(prediction, '$.energy_kwh[0]')``. Tables are created
if needed and appended to. Three layouts:

**A table** (``--output_table=P:D.T``, ``--errors_table=P:D.T``): rows of
:data:`PREDICTION_SCHEMA` and :data:`DEAD_LETTER_SCHEMA`, the JSON as STRING
columns (``PARSE_JSON`` reads them).

**A dataset, as Vertex AI batch prediction lays it out** (``--output_table=P:D``
or ``D``): tables ``D.predictions`` (:data:`VERTEX_PREDICTION_SCHEMA`) and
``D.errors`` (:data:`VERTEX_ERROR_SCHEMA`), the instance and prediction as
JSON columns, the key as its own column, and each error as an ``errors``
STRUCT of a ``google.rpc.Code`` number and a message. Differences from
Vertex's own layout: the instance is one JSON column (Vertex flattens it into
columns of the model's instance schema, which per-site models do not share),
and is kept next to ``key`` (Vertex writes ``key`` instead of the instance);
``key`` is STRING (its JSON text unless the value is a string); and both
tables carry our own columns ``site_id``, ``model_version`` / ``stage``,
``reason``, ``source``, ``run_id`` and a timestamp. Error codes:
``no_model`` is 5 (NOT_FOUND); ``model_load_failed``, ``inference_failed``
and ``non_finite_output`` are 13 (INTERNAL); every other reason (the record
itself is unusable) is 3 (INVALID_ARGUMENT).

**Per-site outcomes** (``--sites_table=P:D.T``): one row per site from the
same records as ``sites/sites-*.jsonl``, :data:`SITE_OUTCOME_SCHEMA`::

  site_id STRING (null: rows that never had a usable site), status STRING
  (ok | partial | failed), rows INT64, predicted INT64, failed INT64,
  failed_fraction FLOAT64, failed_by_reason ARRAY<STRUCT<reason STRING,
  count INT64>>, model_versions ARRAY<STRING>, models_loaded INT64,
  models_fast_path INT64, model_load_ms FLOAT64 (the last three null when the
  job gave no model-load facts), run_id STRING, written_at TIMESTAMP

JSON is strict (``PARSE_JSON`` reads it): a non-finite float of an instance
or dead-letter record is written as the string ``"NaN"``, ``"Infinity"`` or
``"-Infinity"``, as in the JSON-lines outputs.

Error policy: with ``STREAMING_INSERTS`` a row BigQuery refuses becomes a
``bigquery_rejected`` dead letter (the writers' output), in every layout;
with ``FILE_LOADS`` a refused load fails the job.
"""
import datetime
import math
from typing import Any, Dict, Iterator, List, Optional

import apache_beam as beam
from apache_beam.io.gcp.bigquery import BigQueryDisposition
from apache_beam.io.gcp.bigquery import WriteToBigQuery

from common.failures import INFERENCE_FAILED
from common.failures import MODEL_LOAD_FAILED
from common.failures import NON_FINITE_OUTPUT
from common.failures import NO_MODEL
from transforms import json_lines
from transforms.site.predictions import Prediction

FILE_LOADS = 'FILE_LOADS'
STREAMING_INSERTS = 'STREAMING_INSERTS'
WRITE_METHODS = (FILE_LOADS, STREAMING_INSERTS)


def _field(name: str,
           kind: str,
           mode: str = 'NULLABLE',
           description: Optional[str] = None,
           fields: Optional[List[dict]] = None) -> Dict[str, Any]:
  field: Dict[str, Any] = {'name': name, 'type': kind, 'mode': mode}
  if description:
    field['description'] = description
  if fields:
    field['fields'] = fields
  return field


_SITE = _field('site_id', 'STRING', 'REQUIRED')
_VERSION = _field('model_version', 'STRING', description='version folder used (null: unversioned)')
_RUN_ID = _field('run_id', 'STRING', 'REQUIRED')
_PREDICTED_AT = _field('predicted_at', 'TIMESTAMP', 'REQUIRED')
_FAILED_AT = _field('failed_at', 'TIMESTAMP', 'REQUIRED')
_STAGE = _field('stage', 'STRING', 'REQUIRED')
_REASON = _field('reason', 'STRING', 'REQUIRED')
_LETTER_SITE = _field('site_id', 'STRING')
_SOURCE = _field('source', 'STRING')

PREDICTION_SCHEMA = {
    'fields': [
        _SITE,
        _field('key', 'STRING'),
        _field('prediction', 'STRING', 'REQUIRED', 'JSON object of the named model outputs'),
        _field('instance', 'STRING', 'REQUIRED', 'JSON of the input row, untouched'), _VERSION,
        _RUN_ID, _PREDICTED_AT
    ]
}

DEAD_LETTER_SCHEMA = {
    'fields': [
        _STAGE, _REASON,
        _field('message', 'STRING'), _LETTER_SITE, _SOURCE,
        _field('record', 'STRING', description='JSON of the failed input record'), _RUN_ID,
        _FAILED_AT
    ]
}

VERTEX_PREDICTIONS_TABLE = 'predictions'
VERTEX_ERRORS_TABLE = 'errors'

VERTEX_PREDICTION_SCHEMA = {
    'fields': [
        _field('key', 'STRING', description='value of the key field (--key_field)'),
        _field('instance', 'JSON', 'REQUIRED', 'the input row'),
        _field('prediction', 'JSON', 'REQUIRED', 'object of the named model outputs'), _SITE,
        _VERSION, _RUN_ID, _PREDICTED_AT
    ]
}

VERTEX_ERROR_SCHEMA = {
    'fields': [
        _field('key', 'STRING'),
        _field('instance',
               'JSON',
               description='the failed record (a line that did not parse: '
               'its text)'),
        _field('errors',
               'RECORD',
               fields=[
                   _field('code', 'INT64', description='google.rpc.Code'),
                   _field('message', 'STRING')
               ]), _STAGE, _REASON, _LETTER_SITE, _SOURCE, _RUN_ID, _FAILED_AT
    ]
}

SITE_OUTCOME_SCHEMA = {
    'fields': [
        _field('site_id', 'STRING', description='null: rows that never had a usable site'),
        _field('status', 'STRING', 'REQUIRED', 'ok, partial or failed'),
        _field('rows', 'INT64', 'REQUIRED'),
        _field('predicted', 'INT64', 'REQUIRED'),
        _field('failed', 'INT64', 'REQUIRED'),
        _field('failed_fraction', 'FLOAT64', 'REQUIRED'),
        _field(
            'failed_by_reason',
            'RECORD',
            'REPEATED',
            fields=[_field('reason', 'STRING', 'REQUIRED'),
                    _field('count', 'INT64', 'REQUIRED')]),
        _field('model_versions', 'STRING', 'REPEATED'),
        _field('models_loaded', 'INT64'),
        _field('models_fast_path', 'INT64'),
        _field('model_load_ms', 'FLOAT64'), _RUN_ID,
        _field('written_at', 'TIMESTAMP', 'REQUIRED')
    ]
}

# google.rpc.Code numbers of the Vertex-style errors table.
INVALID_ARGUMENT = 3
NOT_FOUND = 5
INTERNAL = 13
_ERROR_CODES = {
    NO_MODEL: NOT_FOUND,
    MODEL_LOAD_FAILED: INTERNAL,
    INFERENCE_FAILED: INTERNAL,
    NON_FINITE_OUTPUT: INTERNAL
}


def is_dataset(spec: str) -> bool:
  """True for ``PROJECT:DATASET`` or ``DATASET`` (no ``.TABLE`` after the project)."""
  return '.' not in spec.rpartition(':')[2]


def vertex_tables(dataset: str) -> Dict[str, str]:
  """``{'predictions': 'P:D.predictions', 'errors': 'P:D.errors'}`` of a dataset spec."""
  return {name: f'{dataset}.{name}' for name in (VERTEX_PREDICTIONS_TABLE, VERTEX_ERRORS_TABLE)}


def error_code(reason: str) -> int:
  """The ``google.rpc.Code`` of a dead-letter reason (module docstring)."""
  return _ERROR_CODES.get(reason, INVALID_ARGUMENT)


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
  """A :data:`PREDICTION_SCHEMA` or :data:`VERTEX_PREDICTION_SCHEMA` row (the
  same values: outputs and instance as JSON text, which BigQuery takes for a
  JSON column too). The outputs' text is the one the model step made, where
  it made one (the same text :func:`_json` gives)."""
  return {
      'site_id': prediction.site_id,
      'key': _text(prediction.instance.get(key_field)) if key_field else None,
      'prediction': prediction.outputs_text or _json(prediction.outputs),
      'instance': _json(prediction.instance),
      'model_version': prediction.model_version,
      'run_id': run_id,
      'predicted_at': _now(),
  }


def prediction_rows(batch: List[Prediction], key_field: Optional[str],
                    run_id: str) -> Iterator[Dict[str, Any]]:
  for prediction in batch:
    yield prediction_row(prediction, key_field, run_id)


def vertex_error_row(letter: Dict[str, Any], key_field: Optional[str],
                     run_id: str) -> Dict[str, Any]:
  """A :data:`VERTEX_ERROR_SCHEMA` row; ``key`` when the record is an object holding it."""
  record = letter['record']
  key = record.get(key_field) if key_field and isinstance(record, dict) else None
  return {
      'key': _text(key),
      'instance': None if record is None else _json(record),
      'errors': {
          'code': error_code(letter['reason']),
          'message': letter['message']
      },
      'stage': letter['stage'],
      'reason': letter['reason'],
      'site_id': _text(letter['site_id']),
      'source': letter['source'],
      'run_id': run_id,
      'failed_at': _now(),
  }


def site_outcome_row(line: Dict[str, Any], run_id: str) -> Dict[str, Any]:
  """A :data:`SITE_OUTCOME_SCHEMA` row from a ``sites/`` line dict."""
  row = dict(line)
  row['failed_by_reason'] = [{
      'reason': reason,
      'count': count
  } for reason, count in sorted(line['failed_by_reason'].items())]
  row['run_id'] = run_id
  row['written_at'] = _now()
  return row


def dead_letter_row(letter: Dict[str, Any], run_id: str) -> Dict[str, Any]:
  """A :data:`DEAD_LETTER_SCHEMA` row: the record as text (its JSON unless it is text)."""
  return {
      'stage': letter['stage'],
      'reason': letter['reason'],
      'message': letter['message'],
      'site_id': letter['site_id'],
      'source': letter['source'],
      'record': _text(letter['record']),
      'run_id': run_id,
      'failed_at': _now(),
  }


def rejected_row(table: str, element) -> Dict[str, Any]:
  """A row BigQuery refused, as a dead letter (it is still in the JSON-lines output)."""
  destination, row, errors = element
  return {
      'stage': 'write_bigquery',
      'reason': 'bigquery_rejected',
      'message': _json(errors)[:2000],
      'site_id': row.get('site_id'),
      'source': str(destination or table),
      'record': row
  }


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
        self._table,
        schema=self._schema,
        method=self._method,
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
  """Prediction batches -> ``table``; output: rejected rows (as dead letters).

  Schema :data:`PREDICTION_SCHEMA`, or with ``vertex`` (``table`` is then the
  dataset's ``predictions`` table) :data:`VERTEX_PREDICTION_SCHEMA`.
  """

  def __init__(self,
               table: str,
               *,
               run_id: str,
               key_field: Optional[str],
               method: str,
               vertex: bool = False):
    super().__init__()
    self._table, self._run_id, self._key_field, self._method = table, run_id, key_field, method
    self._schema = VERTEX_PREDICTION_SCHEMA if vertex else PREDICTION_SCHEMA

  def expand(self, predictions):
    return (predictions
            | 'ToRows' >> beam.FlatMap(prediction_rows, self._key_field, self._run_id)
            | 'Write' >> _WriteRows(self._table, self._schema, self._method))


class WriteDeadLettersToBigQuery(beam.PTransform):
  """Dead letters -> ``table``; output: rejected rows (as dead letters).

  Schema :data:`DEAD_LETTER_SCHEMA`, or with ``vertex`` (``table`` is then
  the dataset's ``errors`` table) :data:`VERTEX_ERROR_SCHEMA`, whose ``key``
  comes from the record's ``key_field``.
  """

  def __init__(self,
               table: str,
               *,
               run_id: str,
               method: str,
               vertex: bool = False,
               key_field: Optional[str] = None):
    super().__init__()
    self._table, self._run_id, self._method = table, run_id, method
    self._vertex, self._key_field = vertex, key_field

  def expand(self, letters):
    if self._vertex:
      rows = letters | 'ToRow' >> beam.Map(vertex_error_row, self._key_field, self._run_id)
    else:
      rows = letters | 'ToRow' >> beam.Map(dead_letter_row, self._run_id)
    schema = VERTEX_ERROR_SCHEMA if self._vertex else DEAD_LETTER_SCHEMA
    return rows | 'Write' >> _WriteRows(self._table, schema, self._method)


class WriteSiteOutcomesToBigQuery(beam.PTransform):
  """Site line dicts (``reporting.SiteOutcomes``) -> ``table`` (:data:`SITE_OUTCOME_SCHEMA`);
  output: rejected rows (as dead letters)."""

  def __init__(self, table: str, *, run_id: str, method: str):
    super().__init__()
    self._table, self._run_id, self._method = table, run_id, method

  def expand(self, lines):
    return (lines
            | 'ToRow' >> beam.Map(site_outcome_row, self._run_id)
            | 'Write' >> _WriteRows(self._table, SITE_OUTCOME_SCHEMA, self._method))
