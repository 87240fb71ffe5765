"""Launch-time validation of the per-site job's flags, and the plan they resolve to.

:func:`validate` runs before the pipeline is built: every flag the user can
get wrong (which input, table and dataset specs, the model root and version,
the output folder, sizes, fields) raises :class:`beam_jobs.usage.UsageError`
naming the flag. It returns the :class:`JobPlan` (:func:`resolve_plan`): the
input files resolved (:mod:`beam_jobs.site_inputs`), the ``--model_versions``
manifest read and the instance config, which
:func:`beam_jobs.site_predictions.build_pipeline` builds from.

``options`` below are the job's flags: a
:class:`beam_jobs.site_predictions.SitePredictionOptions` view.
"""
import re
from typing import Dict, List, NamedTuple, Optional

from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs import output_folder
from beam_jobs import site_inputs
from beam_jobs.io_options import JobIOOptions
from beam_jobs.usage import UsageError
from beam_jobs.usage import require
from beam_jobs.usage import require_exists
from beam_jobs.usage import require_fraction
from beam_jobs.usage import require_matches
from models.site import instance_config
from models.site.version_manifest import load_manifest
from transforms.site import bigquery_output

TABLE_SPEC = re.compile(r'^(?:[a-z][-a-z0-9.:]{4,61}[a-z0-9][:.])?[A-Za-z0-9_]+\.[-A-Za-z0-9_$]+$')
DATASET_SPEC = re.compile(r'^(?:[a-z][-a-z0-9.:]{4,61}[a-z0-9][:.])?[A-Za-z0-9_]+$')


class JobPlan(NamedTuple):
  """What the flags resolve to at launch (files read, pins, instance config)."""
  site_input: Optional[site_inputs.SiteInput]  # None: BigQuery input
  model_versions: Optional[Dict[str, str]]  # --model_versions manifest
  instance_config: instance_config.InstanceConfig


def validate(options: PipelineOptions) -> JobPlan:
  """Raises UsageError for anything the user must fix before the job runs.

  Returns:
    The :class:`JobPlan` the flags give (the file list expanded, the
    manifest read), for :func:`beam_jobs.site_predictions.build_pipeline`.
  """
  io = options.view_as(JobIOOptions)
  sources = [
      flag for flag, value in (('input', io.input), ('input_table', options.input_table),
                               ('input_query', options.input_query)) if value
  ]
  if len(sources) != 1:
    raise UsageError(
        'input', 'give exactly one of --input, --input_table, --input_query' +
        (f' (got {", ".join("--" + s for s in sources)})' if sources else ''))
  matched = require_matches('input', io.input) if io.input else None
  for flag in ('input_table', 'errors_table', 'sites_table'):
    value = getattr(options, flag)
    if value is not None and not TABLE_SPEC.match(value):
      raise UsageError(flag, f'{value!r} is not PROJECT:DATASET.TABLE')
  validate_output_table(options)
  if (options.selected_fields or options.row_restriction) and not options.input_table:
    raise UsageError('selected_fields' if options.selected_fields else 'row_restriction',
                     'only applies with --input_table')
  if options.selected_fields and options.site_field not in split_fields(options.selected_fields):
    raise UsageError('selected_fields', f'must include the site field {options.site_field!r}')
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
  return resolve_plan(options, matched=matched)


def resolve_plan(options: PipelineOptions, *, matched: Optional[List[str]] = None) -> JobPlan:
  """The :class:`JobPlan` of the input, manifest and instance-config flags.

  ``matched``: the files ``--input`` matched, where the caller listed them.

  Raises:
    UsageError: one of those flags is wrong (the file list names a missing
      file, the manifest is malformed, ...).
  """
  io = options.view_as(JobIOOptions)
  site_input = site_inputs.resolve_input(options, io.input, io.output, matched=matched)
  problem = instance_config.flag_problem(included_fields=options.included_fields,
                                         excluded_fields=options.excluded_fields,
                                         instance_type=options.instance_type)
  if problem is not None:
    raise UsageError(*problem)
  config = instance_config.config_from_flags(site_field=options.site_field,
                                             key_field=options.key_field,
                                             included_fields=options.included_fields,
                                             excluded_fields=options.excluded_fields,
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


def validate_output_table(options: PipelineOptions) -> None:
  """``--output_table``: a table, or a dataset (then not with ``--errors_table``)."""
  value = options.output_table
  if value is None:
    return
  if bigquery_output.is_dataset(value):
    if not DATASET_SPEC.match(value):
      raise UsageError('output_table', f'{value!r} is not PROJECT:DATASET.TABLE or PROJECT:DATASET')
    if options.errors_table:
      raise UsageError(
          'errors_table', f'not with a dataset --output_table (dead letters go to '
          f'{bigquery_output.vertex_tables(value)["errors"]})')
  elif not TABLE_SPEC.match(value):
    raise UsageError('output_table', f'{value!r} is not PROJECT:DATASET.TABLE or PROJECT:DATASET')


def split_fields(selected_fields: str) -> List[str]:
  """``--selected_fields``' names, in order (spaces and empty names dropped)."""
  return [f.strip() for f in selected_fields.split(',') if f.strip()]
