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
``--input`` can match; unknown flags are errors. A run that read nothing,
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
import re
import time
import uuid
from typing import Any, Dict, NamedTuple, Optional, Sequence

import apache_beam as beam
from apache_beam.io.gcp.internal.clients import bigquery as bigquery_api
from apache_beam.options.pipeline_options import GoogleCloudOptions
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs import flags_site
from beam_jobs import output_folder
from beam_jobs import progress
from beam_jobs import provenance
from beam_jobs import runtime
from beam_jobs import site_inputs
from beam_jobs.io_options import JobIOOptions
from beam_jobs.usage import UsageError
from beam_jobs.usage import require
from beam_jobs.usage import require_exists
from beam_jobs.usage import require_fraction
from beam_jobs.usage import require_matches
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
from models.site import instance_config
from models.site.version_manifest import load_manifest
from transforms.site.inference import PredictPerSite
from transforms.site.grouping import GroupRowsBySite

_LOGGER = logging.getLogger(__name__)

TABLE_SPEC = re.compile(r'^(?:[a-z][-a-z0-9.:]{4,61}[a-z0-9][:.])?[A-Za-z0-9_]+\.[-A-Za-z0-9_$]+$')
DATASET_SPEC = re.compile(r'^(?:[a-z][-a-z0-9.:]{4,61}[a-z0-9][:.])?[A-Za-z0-9_]+$')


class SitePredictionOptions(PipelineOptions):
  """Flags of the per-site prediction job (plus ``--input``/``--output``, see JobIOOptions)."""

  @classmethod
  def _add_argparse_args(cls, parser):
    # --input and --output: beam_jobs.io_options.JobIOOptions. The flags are
    # defined in beam_jobs.flags_site, which --help reads without Beam or TF.
    flags_site.add_flags(parser)


class JobPlan(NamedTuple):
  """What the flags resolve to at launch (files read, pins, instance config)."""
  site_input: Optional[site_inputs.SiteInput]   # None: BigQuery input
  model_versions: Optional[Dict[str, str]]       # --model_versions manifest
  instance_config: instance_config.InstanceConfig


def validate(options: SitePredictionOptions) -> JobPlan:
  """Raises UsageError for anything the user must fix before the job runs.

  Returns:
    The :class:`JobPlan` the flags give (the file list expanded, the
    manifest read), for :func:`build_pipeline`.
  """
  io = options.view_as(JobIOOptions)
  sources = [flag for flag, value in (('input', io.input), ('input_table', options.input_table),
                                      ('input_query', options.input_query)) if value]
  if len(sources) != 1:
    raise UsageError('input', 'give exactly one of --input, --input_table, --input_query'
                     + (f' (got {", ".join("--" + s for s in sources)})' if sources else ''))
  if io.input:
    require_matches('input', io.input)
  for flag in ('input_table', 'errors_table', 'sites_table'):
    value = getattr(options, flag)
    if value is not None and not TABLE_SPEC.match(value):
      raise UsageError(flag, f'{value!r} is not PROJECT:DATASET.TABLE')
  validate_output_table(options)
  if (options.selected_fields or options.row_restriction) and not options.input_table:
    raise UsageError('selected_fields' if options.selected_fields else 'row_restriction',
                     'only applies with --input_table')
  if options.selected_fields and options.site_field not in _fields(options.selected_fields):
    raise UsageError('selected_fields',
                     f'must include the site field {options.site_field!r}')
  if options.bigquery_temp_dataset and not DATASET_SPEC.match(options.bigquery_temp_dataset):
    raise UsageError('bigquery_temp_dataset',
                     f'{options.bigquery_temp_dataset!r} is not PROJECT:DATASET')
  require('model_root', options.model_root)
  require_exists('model_root', options.model_root)
  if options.model_version is not None and not options.model_version.isdigit():
    raise UsageError('model_version', f'{options.model_version!r} is not an integer version')
  require('output', io.output)
  if io.input:
    output_folder.require_outside('output', io.output, 'input', io.input)
  require_fraction('max_failed_fraction', io.max_failed_fraction)
  for flag in ('rows_per_chunk', 'max_models_per_worker', 'max_model_mb_per_worker',
               'max_line_bytes'):
    if getattr(options, flag) < 1:
      raise UsageError(flag, f'must be at least 1, got {getattr(options, flag)}')
  if not options.site_field:
    raise UsageError('site_field', 'must not be empty')
  if options.key_field is not None and not options.key_field:
    # --key_field= would otherwise pass no key through, silently.
    raise UsageError('key_field', 'must not be empty (leave the flag out for no key)')
  return resolve_plan(options)


def resolve_plan(options: SitePredictionOptions) -> JobPlan:
  """The :class:`JobPlan` of the input, manifest and instance-config flags.

  Raises:
    UsageError: one of those flags is wrong (the file list names a missing
      file, the manifest is malformed, ...).
  """
  io = options.view_as(JobIOOptions)
  site_input = site_inputs.resolve_input(options, io.input, io.output)
  problem = instance_config.flag_problem(
      included_fields=options.included_fields, excluded_fields=options.excluded_fields,
      instance_type=options.instance_type)
  if problem is not None:
    raise UsageError(*problem)
  config = instance_config.config_from_flags(
      site_field=options.site_field, key_field=options.key_field,
      included_fields=options.included_fields, excluded_fields=options.excluded_fields,
      instance_type=options.instance_type)
  manifest = None
  if options.model_versions is not None:
    require_exists('model_versions', options.model_versions)
    try:
      manifest = load_manifest(options.model_versions)
    except ValueError as e:
      raise UsageError('model_versions', str(e)) from e
    except Exception as e:  # pylint: disable=broad-except
      raise UsageError('model_versions', f'cannot read {options.model_versions!r}: '
                                         f'{type(e).__name__}: {e}') from e
  return JobPlan(site_input, manifest, config)


def validate_output_table(options: SitePredictionOptions) -> None:
  """``--output_table``: a table, or a dataset (then not with ``--errors_table``)."""
  value = options.output_table
  if value is None:
    return
  if bigquery_output.is_dataset(value):
    if not DATASET_SPEC.match(value):
      raise UsageError('output_table', f'{value!r} is not PROJECT:DATASET.TABLE or PROJECT:DATASET')
    if options.errors_table:
      raise UsageError('errors_table', f'not with a dataset --output_table (dead letters go to '
                       f'{bigquery_output.vertex_tables(value)["errors"]})')
  elif not TABLE_SPEC.match(value):
    raise UsageError('output_table', f'{value!r} is not PROJECT:DATASET.TABLE or PROJECT:DATASET')


def finalize_summary(summary: Dict[str, Any]) -> Dict[str, Any]:
  """Adds totals and the reconciliation check to the summed counters."""
  failed = summary.setdefault('failed', {})
  summary['failed_total'] = sum(failed.values())
  for key in ('records_read', 'predictions_written', 'sites_seen', 'models_loaded',
              'models_fast_path'):
    summary.setdefault(key, 0)
  summary.setdefault('bigquery_rejected', 0)
  summary['model_load_ms_total'] = round(summary.get('model_load_ms_total', 0.0), 1)
  summary['reconciled'] = (
      summary['records_read'] == summary['predictions_written'] + summary['failed_total'])
  return summary


def _fields(selected_fields: str):
  return [f.strip() for f in selected_fields.split(',') if f.strip()]


def _dataset_reference(spec: Optional[str], default_project: Optional[str]):
  if not spec:
    return None
  project, _, dataset = spec.rpartition(':') if ':' in spec else spec.rpartition('.')
  return bigquery_api.DatasetReference(projectId=project or default_project, datasetId=dataset)


def _read_site_rows(pipeline: beam.Pipeline, options: SitePredictionOptions,
                    plan: Optional[JobPlan] = None):
  """Source -> (raw elements, :class:`transforms.site.grouping.GroupedRows`).

  Raw elements hold the input records (``records_in`` of each, summed as
  ``records_read``); the
  grouped rows' ``failed``: every failure before inference. ``plan``:
  default resolved here.
  """
  site_input = (resolve_plan(options) if plan is None else plan).site_input
  if site_input is not None:
    return site_inputs.read_files(
        pipeline, site_input, site_field=options.site_field, model_root=options.model_root,
        max_line_bytes=options.max_line_bytes, rows_per_chunk=options.rows_per_chunk,
        serialized_field=options.tfrecord_serialized_field)
  source = f'bigquery:{options.input_table}' if options.input_table else 'bigquery:query'
  project = options.view_as(GoogleCloudOptions).project
  rows = pipeline | 'ReadRows' >> beam.io.ReadFromBigQuery(
      table=options.input_table, query=options.input_query,
      use_standard_sql=True if options.input_query else None,
      selected_fields=_fields(options.selected_fields) if options.selected_fields else None,
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
      'predictions': opts.output_table, 'errors': opts.errors_table}
  if tables['predictions']:
    rejected.append(predictions | 'WritePredictionsToBigQuery' >> WritePredictionsToBigQuery(
        tables['predictions'], run_id=run_id, key_field=opts.key_field, method=method,
        vertex=vertex))
  if tables['errors']:
    rejected.append(failures | 'WriteDeadLettersToBigQuery' >> WriteDeadLettersToBigQuery(
        tables['errors'], run_id=run_id, method=method, vertex=vertex,
        key_field=opts.key_field))
  if opts.sites_table:
    rejected.append(site_lines | 'WriteSiteOutcomesToBigQuery' >> WriteSiteOutcomesToBigQuery(
        opts.sites_table, run_id=run_id, method=method))
  if not rejected:
    return None
  return rejected | 'AllRejected' >> beam.Flatten()


def new_run_id() -> str:
  return time.strftime('%Y%m%dT%H%M%SZ', time.gmtime()) + '-' + uuid.uuid4().hex[:8]


def build_pipeline(pipeline: beam.Pipeline, options: PipelineOptions,
                   started_at: Optional[float] = None, *, fail_job: Optional[bool] = None,
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
  run_id = opts.run_id or new_run_id()     # the options stay as given

  raw, grouped = _read_site_rows(pipeline, opts, plan)
  inference = grouped.chunks | 'PredictPerSite' >> PredictPerSite(
      model_root=opts.model_root, signature=opts.signature,
      model_version=opts.model_version, model_versions=plan.model_versions,
      instance_config=plan.instance_config,
      text_values=plan.site_input is not None and plan.site_input.text_values,
      max_models_per_worker=opts.max_models_per_worker,
      max_model_bytes_per_worker=opts.max_model_mb_per_worker << 20)
  inference = inference._replace(
      stats=(grouped.stats, inference.stats) | 'GroupAndModelStats' >> beam.Flatten())
  failures = ((grouped.failed, inference.failed)
              | 'AllFailures' >> beam.Flatten())

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
  rejected = _write_bigquery(inference.prediction_batches, failures, site_lines, opts,
                             run_id)
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
      output, started_at=started_at, outputs=outputs, finalize=finalize_summary,
      extra={'run_id': run_id, 'provenance': provenance.site_job(
          opts, input_path=io.input, max_failed_fraction=io.max_failed_fraction)},
      policy=status_policy(io.max_failed_fraction))
  report = summary | 'WriteRunReport' >> reporting.WriteSiteReport(
      output, prediction_batches=inference.prediction_batches, failed=failures,
      site_lines=site_lines)
  if fail_job is None:
    fail_job = not runtime.is_local(options)
  if fail_job:
    _ = summary | 'FailJobIfRunFailed' >> FailJobIfRunFailed(output, after=[report])


def status_policy(max_failed_fraction: float) -> StatusPolicy:
  """ok unless nothing was read or predicted, or too many records failed."""
  return StatusPolicy(read_key='records_read', done_key='predictions_written',
                      failed_key='failed_total', noun='records', done_verb='predicted',
                      max_failed_fraction=max_failed_fraction)


PROGRESS = progress.Plan(
    taps=(progress.Tap('RunStats/CountRead', functools.partial(progress.size, measure=records_in,
                                                               field='records_read')),
          progress.Tap('RunStats/CountWritten', functools.partial(progress.size,
                                                         field='predictions_written')),
          progress.Tap('WriteDeadLetters', functools.partial(progress.each, field='failed')),
          progress.Tap('WriteSummary', functools.partial(progress.stats,
                                                         fields=('sites_seen',)))),
    fields=(progress.Field('records_read', 'records read', 'records'),
            progress.Field('sites_seen', 'sites seen'),
            progress.Field('predictions_written', 'predictions written', 'predictions'),
            progress.Field('failed', 'failed')))
"""Progress lines of local runs: what the steps that make summary.json count, as it comes."""


def run(argv: Optional[Sequence[str]] = None):
  """Validates the flags, builds and runs the job; local runs wait and print the summary.

  Raises UsageError before running anything; RunFailed after a local run
  whose summary says it failed.
  """
  options = runtime.parse_options(sys.argv[1:] if argv is None else argv)
  opts = options.view_as(SitePredictionOptions)
  plan = validate(opts)
  return runtime.launch(options, functools.partial(build_pipeline, plan=plan),
                        output_dir=options.view_as(JobIOOptions).output, progress_plan=PROGRESS)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """The console script's run (``beam_jobs.cli.site_predictions`` answers --help first)."""
  return runtime.main(run, argv, prog='site-predictions', description=__doc__,
                      options_classes=(SitePredictionOptions,))

