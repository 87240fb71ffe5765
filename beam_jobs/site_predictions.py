"""Per-site batch predictions: every site's rows through that site's own SavedModel.

Reads instances from files (``--input``, local or gs://: JSON-lines in AI
Platform's batch-prediction instance format, CSV, TFRecord of ``tf.Example``,
or a file list naming such files; see :mod:`beam_jobs.site_inputs`) or
BigQuery (``--input_table`` / ``--input_query``), groups them by
``--site_field``, runs ``{model_root}/{site}/[{version}/]saved_model.pb`` for
each site inside Beam's ``RunInference`` (the version pinned for the site by
``--model_versions``, else ``--model_version``, else the highest), feeding
each row as the instance config says (``--included_fields`` /
``--excluded_fields`` / ``--instance_type``), and writes under ``--output``:

  predictions/predictions-*.jsonl   (or prediction.results-* with --output_format=aiplatform)
  errors/errors-*.jsonl             one dead letter per failed input record
  summary.json                      counts; records_read == predictions_written + failed_total;
                                    status ok/failed (see --max_failed_fraction)

and, with ``--output_table`` / ``--errors_table``, the same predictions and
dead letters as BigQuery rows (``--output_table=PROJECT:DATASET``: tables
``predictions`` and ``errors`` there, as Vertex AI batch prediction lays
them out), and with ``--sites_table`` one row per site (see
``transforms.site.bigquery_output``). ``summary.json`` also records the
run's provenance: input, model root, pinned versions, code version and the
flags that shape the outputs (``beam_jobs.provenance``).

Runs on Dataflow, or locally (default) with Beam's in-process runner.
``--output`` must be new or empty (or ``--overwrite``) and outside what
``--input`` can match; unknown flags are errors (the flags are checked at launch:
:mod:`beam_jobs.site_validation`). A run that read nothing,
predicted nothing, or failed more than ``--max_failed_fraction`` of its
records exits 1 (locally) or fails the Dataflow job, after writing all of
the above.

Progress: local runs log records read, sites seen, predictions written and
failed records every ``--progress_interval_s`` seconds with ``--progress=on``
(default: when stderr is a terminal); on Dataflow, the job's counters
(``site_models``, ``dead_letters``) in the Dataflow console.
"""
import sys

if __name__ == '__main__':
  # Run as a script or with -m: the console entry answers --help before the
  # imports below (Beam, TensorFlow) and imports this module by name to run.
  from beam_jobs import cli
  sys.exit(cli.site_predictions())

# pylint: disable=wrong-import-position
import functools
import logging
import time
import uuid
from typing import Any, Dict, Optional, Sequence

import apache_beam as beam
from apache_beam.io.gcp.internal.clients import bigquery as bigquery_api
from apache_beam.options.pipeline_options import GoogleCloudOptions
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs import flags_site
from beam_jobs import progress
from beam_jobs import provenance
from beam_jobs import runtime
from beam_jobs import site_inputs
from beam_jobs.io_options import JobIOOptions
from beam_jobs.site_validation import JobPlan
from beam_jobs.site_validation import resolve_plan
from beam_jobs.site_validation import split_fields
from beam_jobs.site_validation import validate
from transforms.site import bigquery_output
from transforms.site.bigquery_output import WriteDeadLettersToBigQuery
from transforms.site.bigquery_output import WritePredictionsToBigQuery
from transforms.site.bigquery_output import WriteSiteOutcomesToBigQuery
from transforms import reporting
from transforms.dead_letters import WriteDeadLetters
from transforms.site.prediction_output import AIPLATFORM
from transforms.site.prediction_output import WriteErrorStats
from transforms.site.prediction_output import WritePredictions
from transforms.run_summary import FailJobIfRunFailed
from transforms import run_stats
from transforms.run_summary import StatusPolicy
from transforms.run_summary import WriteRunSummary
from transforms.text_lines import records_in
from transforms.site.inference import PredictPerSite
from transforms.site.grouping import GroupRowsBySite

_LOGGER = logging.getLogger(__name__)


class SitePredictionOptions(PipelineOptions):
  """Flags of the per-site prediction job (plus ``--input``/``--output``, see JobIOOptions)."""

  @classmethod
  def _add_argparse_args(cls, parser):
    # --input and --output: beam_jobs.io_options.JobIOOptions. The flags are
    # defined in beam_jobs.flags_site, which --help reads without Beam or TF.
    flags_site.add_flags(parser)


def finalize_summary(summary: Dict[str, Any]) -> Dict[str, Any]:
  """Adds totals and the reconciliation check to the summed counters."""
  failed = summary.setdefault('failed', {})
  summary['failed_total'] = sum(failed.values())
  for key in ('records_read', 'predictions_written', 'sites_seen', 'models_loaded',
              'models_fast_path'):
    summary.setdefault(key, 0)
  summary.setdefault('bigquery_rejected', 0)
  summary['model_load_ms_total'] = round(summary.get('model_load_ms_total', 0.0), 1)
  summary['reconciled'] = (summary['records_read'] == summary['predictions_written'] +
                           summary['failed_total'])
  return summary


def _dataset_reference(spec: Optional[str], default_project: Optional[str]):
  if not spec:
    return None
  project, _, dataset = spec.rpartition(':') if ':' in spec else spec.rpartition('.')
  return bigquery_api.DatasetReference(projectId=project or default_project, datasetId=dataset)


def _read_site_rows(pipeline: beam.Pipeline,
                    options: SitePredictionOptions,
                    plan: Optional[JobPlan] = None):
  """Source -> (raw elements, :class:`transforms.site.grouping.GroupedRows`).

  Raw elements hold the input records (``records_in`` of each, summed as
  ``records_read``); the
  grouped rows' ``failed``: every failure before inference. ``plan``:
  default resolved here.
  """
  site_input = (resolve_plan(options) if plan is None else plan).site_input
  if site_input is not None:
    return site_inputs.read_files(pipeline,
                                  site_input,
                                  site_field=options.site_field,
                                  model_root=options.model_root,
                                  max_line_bytes=options.max_line_bytes,
                                  rows_per_chunk=options.rows_per_chunk,
                                  serialized_field=options.tfrecord_serialized_field)
  source = f'bigquery:{options.input_table}' if options.input_table else 'bigquery:query'
  project = options.view_as(GoogleCloudOptions).project
  rows = pipeline | 'ReadRows' >> beam.io.ReadFromBigQuery(
      table=options.input_table,
      query=options.input_query,
      use_standard_sql=True if options.input_query else None,
      selected_fields=split_fields(options.selected_fields) if options.selected_fields else None,
      row_restriction=options.row_restriction,
      temp_dataset=_dataset_reference(options.bigquery_temp_dataset, project),
      method=beam.io.ReadFromBigQuery.Method.DIRECT_READ)
  records = rows | 'Source' >> beam.Map(_with_source, source)
  grouped = records | 'GroupRowsBySite' >> GroupRowsBySite(
      options.site_field, model_root=options.model_root, rows_per_chunk=options.rows_per_chunk)
  return records, grouped


def _with_source(row: Dict[str, Any], source: str):
  return source, dict(row)


def _write_bigquery(predictions, failures, site_lines, opts: SitePredictionOptions, run_id: str):
  """Optional BigQuery sinks; returns rows BigQuery rejected (as dead letters) or None."""
  rejected = []
  method = opts.bigquery_write_method
  vertex = bool(opts.output_table) and bigquery_output.is_dataset(opts.output_table)
  tables = bigquery_output.vertex_tables(opts.output_table) if vertex else {
      'predictions': opts.output_table,
      'errors': opts.errors_table
  }
  if tables['predictions']:
    rejected.append(
        predictions
        | 'WritePredictionsToBigQuery' >> WritePredictionsToBigQuery(tables['predictions'],
                                                                     run_id=run_id,
                                                                     key_field=opts.key_field,
                                                                     method=method,
                                                                     vertex=vertex))
  if tables['errors']:
    rejected.append(failures | 'WriteDeadLettersToBigQuery' >> WriteDeadLettersToBigQuery(
        tables['errors'], run_id=run_id, method=method, vertex=vertex, key_field=opts.key_field))
  if opts.sites_table:
    rejected.append(site_lines | 'WriteSiteOutcomesToBigQuery' >> WriteSiteOutcomesToBigQuery(
        opts.sites_table, run_id=run_id, method=method))
  if not rejected:
    return None
  return rejected | 'AllRejected' >> beam.Flatten()


def new_run_id() -> str:
  return time.strftime('%Y%m%dT%H%M%SZ', time.gmtime()) + '-' + uuid.uuid4().hex[:8]


def build_pipeline(pipeline: beam.Pipeline,
                   options: PipelineOptions,
                   started_at: Optional[float] = None,
                   *,
                   fail_job: Optional[bool] = None,
                   plan: Optional[JobPlan] = None) -> None:
  """Adds the whole job to ``pipeline`` (tests pass a TestPipeline).

  ``fail_job``: end with a step that fails the job when the summary says
  ``failed`` (after the summary and report are written); default: on remote
  runners. ``plan``: what :func:`validate` returned (default: resolved here,
  raising UsageError).
  """
  opts = options.view_as(SitePredictionOptions)
  plan = resolve_plan(opts) if plan is None else plan
  io = options.view_as(JobIOOptions)
  output = io.output
  started_at = time.time() if started_at is None else started_at
  run_id = opts.run_id or new_run_id()  # the options stay as given

  raw, grouped = _read_site_rows(pipeline, opts, plan)
  inference = grouped.chunks | 'PredictPerSite' >> PredictPerSite(
      model_root=opts.model_root,
      signature=opts.signature,
      model_version=opts.model_version,
      model_versions=plan.model_versions,
      instance_config=plan.instance_config,
      text_values=plan.site_input is not None and plan.site_input.text_values,
      max_models_per_worker=opts.max_models_per_worker,
      max_model_bytes_per_worker=opts.max_model_mb_per_worker << 20)
  inference = inference._replace(stats=(grouped.stats, inference.stats)
                                 | 'GroupAndModelStats' >> beam.Flatten())
  failures = ((grouped.failed, inference.failed) | 'AllFailures' >> beam.Flatten())

  site_lines = inference.prediction_batches | 'SiteOutcomes' >> reporting.SiteOutcomes(
      failed=failures, model_loads=inference.model_loads)
  outputs = {
      'sites': site_lines | 'WriteSiteOutcomes' >> reporting.WriteSiteOutcomes(output),
      'predictions': inference.prediction_batches | 'WritePredictions' >> WritePredictions(
          output, output_format=opts.output_format, key_field=opts.key_field),
      'errors': failures | 'WriteDeadLetters' >> WriteDeadLetters(output),
  }
  if opts.output_format == AIPLATFORM:
    outputs['errors_stats'] = failures | 'WriteErrorStats' >> WriteErrorStats(output)
  rejected = _write_bigquery(inference.prediction_batches, failures, site_lines, opts, run_id)
  if rejected is not None:
    outputs['bigquery_rejected'] = rejected | 'WriteRejected' >> WriteDeadLetters(
        output, name='bigquery_rejected')

  counted = {
      'CountRead': (raw, run_stats.CountItems('records_read', size=records_in)),
      'CountWritten': (inference.prediction_batches, run_stats.CountItems('predictions_written')),
      'CountFailed': (failures, run_stats.StatsOf(run_stats.by_reason)),
      'InferenceStats': (inference.stats, run_stats.AsIs()),
  }
  if rejected is not None:
    counted['CountRejected'] = (rejected, run_stats.Count('bigquery_rejected'))
  stats = pipeline | 'RunStats' >> run_stats.RunStats(counted)
  summary = stats | 'WriteSummary' >> WriteRunSummary(
      output,
      started_at=started_at,
      outputs=outputs,
      finalize=finalize_summary,
      extra={
          'run_id': run_id,
          'provenance': provenance.site_job(
              opts, input_path=io.input, max_failed_fraction=io.max_failed_fraction)
      },
      policy=status_policy(io.max_failed_fraction))
  report = summary | 'WriteRunReport' >> reporting.WriteSiteReport(
      output,
      prediction_batches=inference.prediction_batches,
      failed=failures,
      site_lines=site_lines)
  if fail_job is None:
    fail_job = not runtime.is_local(options)
  if fail_job:
    _ = summary | 'FailJobIfRunFailed' >> FailJobIfRunFailed(output, after=[report])


def status_policy(max_failed_fraction: float) -> StatusPolicy:
  """ok unless nothing was read or predicted, or too many records failed."""
  return StatusPolicy(read_key='records_read',
                      done_key='predictions_written',
                      failed_key='failed_total',
                      noun='records',
                      done_verb='predicted',
                      max_failed_fraction=max_failed_fraction)


PROGRESS = progress.Plan(
    taps=(progress.Tap('RunStats/CountRead',
                       functools.partial(progress.size, measure=records_in, field='records_read')),
          progress.Tap('RunStats/CountWritten',
                       functools.partial(progress.size, field='predictions_written')),
          progress.Tap('WriteDeadLetters', functools.partial(progress.each, field='failed')),
          progress.Tap('WriteSummary', functools.partial(progress.stats, fields=('sites_seen', )))),
    fields=(progress.Field('records_read', 'records read',
                           'records'), progress.Field('sites_seen', 'sites seen'),
            progress.Field('predictions_written', 'predictions written',
                           'predictions'), progress.Field('failed', 'failed')))
"""Progress lines of local runs: what the steps that make summary.json count, as it comes."""


def run(argv: Optional[Sequence[str]] = None):
  """Validates the flags, builds and runs the job; local runs wait and print the summary.

  Raises UsageError before running anything; RunFailed after a local run
  whose summary says it failed.
  """
  options = runtime.parse_options(sys.argv[1:] if argv is None else argv)
  opts = options.view_as(SitePredictionOptions)
  plan = validate(opts)
  return runtime.launch(options,
                        functools.partial(build_pipeline, plan=plan),
                        output_dir=options.view_as(JobIOOptions).output,
                        progress_plan=PROGRESS)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """The console script's run (``beam_jobs.cli.site_predictions`` answers --help first)."""
  return runtime.main(run,
                      argv,
                      prog='site-predictions',
                      description=__doc__,
                      options_classes=(SitePredictionOptions, ))
