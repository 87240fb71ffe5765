"""Per-site batch predictions: every site's rows through that site's own SavedModel.

Reads instances from JSON-lines files (``--input``, local or gs://, AI Platform
batch-prediction instance format: one JSON object per line) or BigQuery
(``--input_table`` / ``--input_query``), groups them by ``--site_field``, runs
``{model_root}/{site}/[{version}/]saved_model.pb`` for each site inside Beam's
``RunInference``, and writes under ``--output``:

  predictions/predictions-*.jsonl   (or prediction.results-* with --output_format=aiplatform)
  errors/errors-*.jsonl             one dead letter per failed input record
  summary.json                      counts; records_read == predictions_written + failed_total

Runs on Dataflow, or locally (default) with Beam's in-process runner.
"""
import logging
import re
import sys
import time
from typing import Any, Dict, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs import runtime
from beam_jobs.usage import UsageError
from beam_jobs.usage import require
from beam_jobs.usage import require_exists
from beam_jobs.usage import require_matches
from models.site_model_pool import DEFAULT_MAX_BYTES
from models.site_model_pool import DEFAULT_MAX_MODELS
from transforms.dead_letters import FAILED
from transforms.dead_letters import WriteDeadLetters
from transforms.instances import KeyBySite
from transforms.instances import ParseJsonLine
from transforms.prediction_output import AIPLATFORM
from transforms.prediction_output import JSONL
from transforms.prediction_output import OUTPUT_FORMATS
from transforms.prediction_output import WriteErrorStats
from transforms.prediction_output import WritePredictions
from transforms.run_summary import WriteRunSummary
from transforms.site_inference import DEFAULT_ROWS_PER_CHUNK
from transforms.site_inference import PredictPerSite

_LOGGER = logging.getLogger(__name__)

TABLE_SPEC = re.compile(r'^(?:[a-z][-a-z0-9.:]{4,61}[a-z0-9][:.])?[A-Za-z0-9_]+\.[-A-Za-z0-9_$]+$')


class SitePredictionOptions(PipelineOptions):
  """Flags of the per-site prediction job."""

  @classmethod
  def _add_argparse_args(cls, parser):
    source = parser.add_argument_group('input (exactly one)')
    source.add_argument(
        '--input', help='JSON-lines file or glob, local or gs://; one instance object per line.')
    source.add_argument(
        '--input_table',
        help='BigQuery table PROJECT:DATASET.TABLE (or DATASET.TABLE) read with DIRECT_READ.')
    source.add_argument('--input_query', help='BigQuery standard SQL query to read instances from.')
    parser.add_argument(
        '--site_field', default='site_id',
        help='Field naming the site of each row (default: site_id).')
    parser.add_argument(
        '--key_field', default=None,
        help='Optional field copied to each prediction line as "key".')
    parser.add_argument(
        '--model_root', required=False,
        help='Folder (local or gs://) with {site}/{version}/saved_model.pb or {site}/saved_model.pb.')
    parser.add_argument(
        '--model_version', default=None,
        help='Integer version folder to use for every site (default: highest present).')
    parser.add_argument(
        '--signature', default='serving_default',
        help='SavedModel signature to call (default: serving_default).')
    parser.add_argument(
        '--output', help='Output folder (local or gs://) for predictions, errors and summary.json.')
    parser.add_argument(
        '--output_format', default=JSONL, choices=OUTPUT_FORMATS,
        help='jsonl: our prediction lines (default); aiplatform: legacy batch '
             'prediction files prediction.results-* and prediction.errors_stats-*.')
    parser.add_argument(
        '--rows_per_chunk', type=int, default=DEFAULT_ROWS_PER_CHUNK,
        help=f'Most rows of one site per model call (default: {DEFAULT_ROWS_PER_CHUNK}).')
    parser.add_argument(
        '--max_models_per_worker', type=int, default=DEFAULT_MAX_MODELS,
        help=f'Most site models one worker process keeps loaded (default: {DEFAULT_MAX_MODELS}).')
    parser.add_argument(
        '--max_model_mb_per_worker', type=int, default=DEFAULT_MAX_BYTES >> 20,
        help='Most estimated MiB of site models one worker process keeps loaded '
             f'(default: {DEFAULT_MAX_BYTES >> 20}).')


def validate(options: SitePredictionOptions) -> None:
  """Raises UsageError for anything the user must fix before the job runs."""
  sources = [flag for flag in ('input', 'input_table', 'input_query')
             if getattr(options, flag)]
  if len(sources) != 1:
    raise UsageError('input', 'give exactly one of --input, --input_table, --input_query'
                     + (f' (got {", ".join("--" + s for s in sources)})' if sources else ''))
  if options.input:
    require_matches('input', options.input)
  if options.input_table and not TABLE_SPEC.match(options.input_table):
    raise UsageError('input_table', f'{options.input_table!r} is not PROJECT:DATASET.TABLE')
  require('model_root', options.model_root)
  require_exists('model_root', options.model_root)
  if options.model_version is not None and not options.model_version.isdigit():
    raise UsageError('model_version', f'{options.model_version!r} is not an integer version')
  require('output', options.output)
  for flag in ('rows_per_chunk', 'max_models_per_worker', 'max_model_mb_per_worker'):
    if getattr(options, flag) < 1:
      raise UsageError(flag, f'must be at least 1, got {getattr(options, flag)}')
  if not options.site_field:
    raise UsageError('site_field', 'must not be empty')


def finalize_summary(summary: Dict[str, Any]) -> Dict[str, Any]:
  """Adds totals and the reconciliation check to the summed counters."""
  failed = summary.setdefault('failed', {})
  summary['failed_total'] = sum(failed.values())
  for key in ('records_read', 'predictions_written', 'sites_seen', 'models_loaded',
              'models_fast_path'):
    summary.setdefault(key, 0)
  summary['model_load_ms_total'] = round(summary.get('model_load_ms_total', 0.0), 1)
  summary['reconciled'] = (
      summary['records_read'] == summary['predictions_written'] + summary['failed_total'])
  return summary


def _read_records(pipeline: beam.Pipeline, options: SitePredictionOptions):
  """Source -> (records, parse failures). Records are (source, row dict)."""
  if options.input:
    lines = pipeline | 'ReadLines' >> beam.io.ReadFromTextWithFilename(options.input)
    parsed = lines | 'ParseInstance' >> beam.ParDo(ParseJsonLine()).with_outputs(
        FAILED, main='records')
    return lines, parsed.records, parsed[FAILED]
  source = options.input_table or 'query'
  rows = pipeline | 'ReadRows' >> beam.io.ReadFromBigQuery(
      table=options.input_table, query=options.input_query,
      use_standard_sql=True, method=beam.io.ReadFromBigQuery.Method.DIRECT_READ)
  records = rows | 'Source' >> beam.Map(_with_source, source)
  empty = pipeline | 'NoParseFailures' >> beam.Create([])
  return rows, records, empty


def _with_source(row: Dict[str, Any], source: str):
  return source, dict(row)


def _stat(unused_element, key):
  return (key,), 1


def _failure_stat(letter: Dict[str, Any]):
  return ('failed', letter['reason']), 1


def build_pipeline(pipeline: beam.Pipeline, options: PipelineOptions,
                   started_at: Optional[float] = None) -> None:
  """Adds the whole job to ``pipeline`` (tests pass a TestPipeline)."""
  opts = options.view_as(SitePredictionOptions)
  started_at = time.time() if started_at is None else started_at

  raw, records, parse_failed = _read_records(pipeline, opts)
  keyed = records | 'KeyBySite' >> beam.ParDo(KeyBySite(opts.site_field)).with_outputs(
      FAILED, main='keyed')
  inference = keyed.keyed | 'PredictPerSite' >> PredictPerSite(
      model_root=opts.model_root, signature=opts.signature,
      model_version=opts.model_version, rows_per_chunk=opts.rows_per_chunk,
      max_models_per_worker=opts.max_models_per_worker,
      max_model_bytes_per_worker=opts.max_model_mb_per_worker << 20)
  failures = ((parse_failed, keyed[FAILED], inference.failed)
              | 'AllFailures' >> beam.Flatten())

  outputs = {
      'predictions': inference.predictions | 'WritePredictions' >> WritePredictions(
          opts.output, output_format=opts.output_format, key_field=opts.key_field),
      'errors': failures | 'WriteDeadLetters' >> WriteDeadLetters(opts.output),
  }
  if opts.output_format == AIPLATFORM:
    outputs['errors_stats'] = failures | 'WriteErrorStats' >> WriteErrorStats(opts.output)

  stats = (
      raw | 'CountRead' >> beam.Map(_stat, 'records_read'),
      inference.predictions | 'CountWritten' >> beam.Map(_stat, 'predictions_written'),
      failures | 'CountFailed' >> beam.Map(_failure_stat),
      inference.stats,
  ) | 'AllStats' >> beam.Flatten()
  _ = stats | 'WriteSummary' >> WriteRunSummary(
      opts.output, started_at=started_at, outputs=outputs, finalize=finalize_summary)


def run(argv: Optional[Sequence[str]] = None):
  """Validates the flags, builds and runs the job; local runs wait and print the summary."""
  options = PipelineOptions(argv)
  opts = options.view_as(SitePredictionOptions)
  validate(opts)
  return runtime.launch(options, build_pipeline, output_dir=opts.output)


def main(argv: Optional[Sequence[str]] = None) -> int:
  return runtime.main(run, argv)


if __name__ == '__main__':
  sys.exit(main())
