"""The console scripts ``site-predictions`` and ``detect-images``.

``--help`` is answered from the light flag modules (``beam_jobs.flags_*``,
argparse only), before Beam, TensorFlow or torch is imported; a run then
sets up quiet logging (:mod:`beam_jobs.quiet`), imports the job's module
(the heavy part, its start-up noise filtered) and runs its ``main``.

Console scripts (``setup.py`` ``entry_points``)::

    site-predictions=beam_jobs.cli:site_predictions
    detect-images=beam_jobs.cli:detect_images

``python -m beam_jobs.site_predictions`` (and the job files run as
scripts, as the Flex template launcher does) come here too.

Exit status: 0 run ok; 1 a local run that wrote its outputs but failed;
2 a usage error, one line on stderr, nothing run (see ``beam_jobs.runtime``).
"""
import argparse
import dataclasses
import importlib
import importlib.util
import os
import sys
import textwrap
from typing import Callable, Optional, Sequence

from beam_jobs import flags_detect
from beam_jobs import flags_io
from beam_jobs import flags_site
from beam_jobs import quiet

_NOTES = ('Beam/Dataflow pipeline options (--runner, --project, --region, --temp_location, ...) '
          'are accepted too; any other flag is an error. Local runs (the default) use Beam\'s '
          'in-process runner; on Dataflow the job\'s Beam counters in the Dataflow console '
          'show its progress.',
          'exit status: 0 run ok; 1 run failed (outputs written, reason in summary.json); '
          '2 usage error (nothing run).')
_WIDTH = 79


@dataclasses.dataclass(frozen=True)
class Job:
  """What a console script needs before it imports its job."""
  prog: str
  module: str  # imported only to run
  add_flags: Callable[[argparse.ArgumentParser], None]
  description: str
  usage: Optional[str] = None
  example: Optional[str] = None
  input_help: str = flags_io.INPUT_HELP
  input_metavar: str = 'PATH'
  input_required: bool = True
  needs: Sequence[str] = ()  # top-level modules an install may lack (an extra)
  # "module:function" importing what the job's workers import (e.g. TensorFlow): called with
  # the job's module where the workers run in this process (see workers_run_here), so
  # that their libraries' load-time noise is filtered too and the launcher's freeze
  # (common.heap) covers them. Elsewhere (Dataflow, multi-process local runs) the
  # launcher never imports them.
  worker_imports: Optional[str] = None
  install_hint: str = ''


SITE = Job(prog=flags_site.PROG,
           module='beam_jobs.site_predictions',
           add_flags=flags_site.add_flags,
           description=flags_site.DESCRIPTION,
           usage=flags_site.USAGE,
           example=flags_site.EXAMPLE,
           input_help=flags_site.INPUT_HELP + ' One of --input, --input_table, --input_query.',
           input_metavar='GLOB',
           input_required=False,
           worker_imports='models.site.handler:import_model_modules')
DETECT = Job(prog=flags_detect.PROG,
             module='beam_jobs.detect_images',
             add_flags=flags_detect.add_flags,
             description=flags_detect.DESCRIPTION,
             usage=flags_detect.USAGE,
             example=flags_detect.EXAMPLE,
             input_help=flags_detect.INPUT_HELP,
             input_metavar='DIR',
             needs=('torch', ),
             install_hint="pip install 'beam-batch-inference[detect]' (see the README's set-up)")
JOBS = {job.prog: job for job in (SITE, DETECT)}


def site_predictions(argv: Optional[Sequence[str]] = None) -> int:
  """Console script ``site-predictions``; returns the exit status."""
  return console(SITE, argv)


def detect_images(argv: Optional[Sequence[str]] = None) -> int:
  """Console script ``detect-images``; returns the exit status."""
  return console(DETECT, argv)


def console(job: Job, argv: Optional[Sequence[str]] = None) -> int:
  """``--help`` without importing the job; otherwise quiet set-up, then the job's ``main``."""
  args = sys.argv[1:] if argv is None else list(argv)
  if help_requested(args):
    print_help(job)
    return 0
  missing = missing_modules(job)
  if missing:
    print(
        f'error: {job.prog} needs {", ".join(missing)}, which is not installed: '
        f'{job.install_hint}',
        file=sys.stderr)
    return 2
  # Imports and pipeline construction make about a million long-lived
  # objects: no collections over them (runtime.launch freezes them).
  from common import heap  # pylint: disable=import-outside-toplevel
  from common import lean_imports  # pylint: disable=import-outside-toplevel
  heap.defer_collection()
  try:
    level = quiet.log_level_in(args)
    quiet.quiet_tensorflow(os.environ, level)
    quiet.configure_logging(level)
    with quiet.quiet_imports(level):
      lean_imports.import_beam()  # without pandas: see common.lean_imports
      module = importlib.import_module(job.module)
      if job.worker_imports and workers_run_here(args):
        worker_module, function = job.worker_imports.split(':')
        getattr(importlib.import_module(worker_module), function)()
    return module.main(args)
  finally:
    heap.resume_collection()  # a usage error returns before the launcher froze anything


def missing_modules(job: Job) -> Sequence[str]:
  """The modules of ``job.needs`` this interpreter cannot import (found without importing)."""
  missing = []
  for name in job.needs:
    try:
      found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules: blocked
      found = False
    if not found:
      missing.append(name)
  return missing


# Runners whose workers run in the launching process, unless --direct_running_mode says
# multi_processing (beam_jobs.runtime runs DirectRunner as FnApiRunner).
_IN_PROCESS_RUNNERS = ('DirectRunner', 'direct', 'SwitchingDirectRunner', 'FnApiRunner')


def workers_run_here(args: Sequence[str]) -> bool:
  """Whether a run with ``args`` processes its bundles in this process (local in-memory)."""
  runner = flags_io.raw_flag(args, 'runner')
  return ((runner is None or runner in _IN_PROCESS_RUNNERS)
          and flags_io.raw_flag(args, 'direct_running_mode') != 'multi_processing')


def help_requested(args: Sequence[str]) -> bool:
  return bool({'-h', '--help'} & set(args))


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
  """Epilog kept as written; ``(default: X)`` after every flag that has one."""

  def _get_help_string(self, action):
    text = action.help or ''
    if (not action.option_strings or '(default' in text
        or action.default in (None, False, argparse.SUPPRESS)):
      return text
    return f'{text} (default: %(default)s)'


def help_parser(job: Job) -> argparse.ArgumentParser:
  """The parser ``--help`` prints: shared flags, the job's, then the console ones."""
  epilog = '\n\n'.join(((f'example:\n{job.example}', ) if job.example else ()) +
                       tuple(textwrap.fill(note, _WIDTH) for note in _NOTES))
  parser = argparse.ArgumentParser(prog=job.prog,
                                   usage=job.usage,
                                   description=textwrap.fill(job.description, _WIDTH),
                                   epilog=epilog,
                                   formatter_class=HelpFormatter,
                                   allow_abbrev=False)
  flags_io.add_flags(parser,
                     input_help=job.input_help,
                     input_metavar=job.input_metavar,
                     input_required=job.input_required)
  job.add_flags(parser)
  flags_io.add_console_flags(parser.add_argument_group('local runs (what this machine prints)'))
  return parser


def print_help(job: Job) -> None:
  help_parser(job).print_help()
