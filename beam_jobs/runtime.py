"""What every job's ``run()`` shares: runner choice, launching, and the local wait.

DirectRunner in Beam 2.77 first tries the Prism runner, which downloads a
binary from GitHub; offline (CI, firewalled workers) that costs a failed
download before Beam falls back. Local runs here therefore use Beam's
in-process portable runner (``FnApiRunner``, what DirectRunner falls back to)
whenever the user asked for DirectRunner or for nothing, and keep
DirectRunner's own options (``--direct_num_workers``,
``--direct_running_mode``). ``--runner=PrismRunner`` still gets Prism.

Exit status of the console scripts: 0 for a run whose summary says ``ok``;
2 for a usage error (unknown flag, bad value, output folder refused), found
before anything runs; 1 for a local run that wrote its outputs but failed
(``summary.json`` ``status`` is ``failed``, reason on stderr). Remote runs
fail their Dataflow job instead (see ``transforms.run_summary``).

Local runs on the in-process runner log a progress line every
``--progress_interval_s`` seconds when asked (``--progress``, see
``beam_jobs.progress``); the console scripts' ``--help`` and quiet start-up
live in ``beam_jobs.cli`` and ``beam_jobs.quiet``.
"""
import json
import logging
import sys
from typing import Callable, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.runners.runner import PipelineResult

from beam_jobs import cli
from beam_jobs import output_folder
from beam_jobs import progress
from beam_jobs import quiet
from beam_jobs.io_options import ConsoleOptions
from beam_jobs.io_options import JobIOOptions
from beam_jobs.job_options import JobOptions
from beam_jobs.usage import UsageError
from beam_jobs.usage import check_flags
from common import heap
from common import paths
from transforms.run_summary import OK
from transforms.run_summary import RunFailed

_LOGGER = logging.getLogger(__name__)

LOCAL_RUNNERS = ('DirectRunner', 'FnApiRunner', 'BundleBasedDirectRunner', 'SwitchingDirectRunner',
                 'PrismRunner')
_OFFLINE_LOCAL_RUNNER = 'FnApiRunner'


def choose_runner(options: PipelineOptions) -> str:
  """Resolves the runner in place; returns its name."""
  standard = options.view_as(StandardOptions)
  if standard.runner in (None, 'DirectRunner', 'direct', 'SwitchingDirectRunner'):
    standard.runner = _OFFLINE_LOCAL_RUNNER
  return standard.runner


def is_local(options: PipelineOptions) -> bool:
  runner = options.view_as(StandardOptions).runner or 'DirectRunner'
  return runner in LOCAL_RUNNERS


def parse_options(argv: Sequence[str]) -> PipelineOptions:
  """``PipelineOptions`` from ``argv``; UsageError for unknown flags or malformed values."""
  check_flags(argv)
  return JobOptions(list(argv))


def launch(options: PipelineOptions,
           build: Callable[[beam.Pipeline, PipelineOptions], None],
           *,
           output_dir: str,
           progress_plan: Optional[progress.Plan] = None) -> PipelineResult:
  """Claims the output folder, builds and runs the pipeline.

  Local runs wait, print the summary and raise RunFailed if it says the run
  failed; with ``progress_plan`` and ``--progress`` they log progress lines
  meanwhile. Remote runs (Dataflow, Flex templates) return at once: a Flex
  template launcher must not block on the job.
  """
  output_folder.prepare(output_dir, overwrite=options.view_as(JobIOOptions).overwrite)
  runner = choose_runner(options)
  pipeline = beam.Pipeline(options=options)
  build(pipeline, options)
  heap.freeze_set_up_objects()
  _LOGGER.info('Starting on %s', runner)
  if not is_local(options):
    result = pipeline.run()
    _LOGGER.info('Submitted; outputs will appear under %s', output_dir)
    return result
  console = options.view_as(ConsoleOptions)
  if (progress_plan is not None and progress.enabled(console.progress, sys.stderr)
      and progress.in_this_process(options)):
    with progress.reporting(pipeline, progress_plan, interval_s=console.progress_interval_s):
      result = pipeline.run()
      result.wait_until_finish()
  else:
    result = pipeline.run()
    result.wait_until_finish()
  summary = read_summary(output_dir)
  print(f'Outputs are under {output_dir}')
  path = paths.join(output_dir, 'summary.json')
  if summary is None:
    raise RunFailed('no summary.json was written', path)
  from transforms.reporting.write import REPORT_NAME  # pylint: disable=import-outside-toplevel
  report = paths.join(output_dir, REPORT_NAME)
  if paths.exists(report):
    print(f'Run report: {report}')
  print(json.dumps(summary, indent=2, sort_keys=True))
  if summary.get('status', OK) != OK:
    raise RunFailed(summary.get('status_reason', 'see the summary'), path)
  return result


def read_summary(output_dir: str) -> Optional[dict]:
  path = paths.join(output_dir, 'summary.json')
  if not paths.exists(path):
    return None
  return json.loads(paths.read_bytes(path))


def print_help(prog: str, description: str, options_classes: Sequence[type]) -> None:
  """The job's own flags (Beam's parser would print none of them): the console
  script's help for a known ``prog``, else one built from ``options_classes``."""
  job = cli.JOBS.get(prog)
  if job is None:

    def add_flags(parser):
      for options_class in options_classes:
        options_class._add_argparse_args(parser)  # pylint: disable=protected-access

    job = cli.Job(prog=prog,
                  module='',
                  add_flags=add_flags,
                  description=description.strip().split('\n\n', 1)[0])
  cli.print_help(job)


def main(run: Callable[[Optional[Sequence[str]]], PipelineResult],
         argv: Optional[Sequence[str]] = None,
         *,
         prog: str = '',
         description: str = '',
         options_classes: Sequence[type] = ()) -> int:
  """Console-script body: --help, logging (``beam_jobs.quiet``), usage errors (exit 2) and
  failed runs (exit 1) as one line on stderr."""
  args = sys.argv[1:] if argv is None else list(argv)
  if cli.help_requested(args):
    print_help(prog, description, options_classes)
    return 0
  quiet.configure_logging(quiet.log_level_in(args))
  try:
    run(args)
  except UsageError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  except RunFailed as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0
