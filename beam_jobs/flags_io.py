"""The flags every job shares, as plain argparse: ``--input``, ``--output``, the run
policy, and how much a local run prints.

Importing this module is light (argparse only): the console scripts print
``--help`` from it without loading Beam, TensorFlow or torch. Beam parses
these flags through ``beam_jobs.io_options`` (``JobIOOptions`` calls
:func:`add_flags`, ``ConsoleOptions`` :func:`add_console_flags`). Beam parses the flags of every ``PipelineOptions``
subclass imported in a process with one parser, so the jobs share them and
each job says in its own ``--help`` what ``--input`` means for it.
"""
import argparse
from typing import Optional, Sequence

DEFAULT_MAX_FAILED_FRACTION = 0.1
"""A run where more than this fraction of the records read failed is a failed run."""

LOG_LEVELS = ('DEBUG', 'INFO', 'WARNING', 'ERROR')
DEFAULT_LOG_LEVEL = 'INFO'
PROGRESS_MODES = ('auto', 'on', 'off')
DEFAULT_PROGRESS = 'auto'
DEFAULT_PROGRESS_INTERVAL_S = 10.0

INPUT_HELP = ('What the job reads, local or gs://. site_predictions: file or glob of '
              'JSON-lines, CSV or TFRecord instances, or a file list (--input_format). '
              'detect_images: folder, prefix or glob of images (recursive; the first folder '
              'below it names the site).')
OUTPUT_HELP = ('Folder (local or gs://) for the job\'s outputs, dead letters (errors/) and '
               'summary.json. Must be new or empty (see --overwrite) and hold nothing '
               '--input can match.')


def flag_value(text: str) -> bool:
  """argparse type for booleans given as ``--flag=true`` (how Flex templates pass them)."""
  lowered = str(text).strip().lower()
  if lowered in ('true', '1', 'yes'):
    return True
  if lowered in ('false', '0', 'no'):
    return False
  raise argparse.ArgumentTypeError(f'expected true or false, got {text!r}')


def positive_seconds(text: str) -> float:
  """argparse type for an interval in seconds, > 0."""
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f'expected seconds, got {text!r}') from None
  if not value > 0:
    raise argparse.ArgumentTypeError(f'must be more than 0 seconds, got {text!r}')
  return value


def add_flags(parser,
              *,
              input_help: str = INPUT_HELP,
              input_metavar: str = 'PATH',
              input_required: bool = True) -> None:
  """Adds the shared flags to ``parser`` (an argparse parser or Beam's).

  ``input_help``/``input_metavar`` only change the text a job's ``--help``
  shows; ``input_required`` only whether it is marked "(required)". No flag
  is argparse-required: Beam parses every job's flags at once.
  """
  required = '(required) '
  parser.add_argument('--input',
                      metavar=input_metavar,
                      help=(required if input_required else '') + input_help)
  parser.add_argument('--output', metavar='DIR', help=required + OUTPUT_HELP)
  parser.add_argument(
      '--overwrite',
      type=flag_value,
      nargs='?',
      const=True,
      default=False,
      help='Allow a --output that holds an earlier run: its job outputs (predictions/, '
      'errors/, summary.json, ...) are deleted first; refused if it holds anything '
      'else (--overwrite or --overwrite=true).')
  parser.add_argument(
      '--max_failed_fraction',
      type=float,
      default=DEFAULT_MAX_FAILED_FRACTION,
      metavar='FRACTION',
      help='The run fails (summary status "failed", non-zero exit, failed Dataflow job) '
      'when more than this fraction of the records read became dead letters (0-1). '
      'A run that read nothing or produced nothing always fails.')


def add_console_flags(parser) -> None:
  """Adds the flags that only change what a local run prints (not Flex template
  parameters: a template's job runs on Dataflow, where Beam's own settings apply)."""
  parser.add_argument(
      '--log_level',
      default=DEFAULT_LOG_LEVEL,
      choices=LOG_LEVELS,
      type=str.upper,
      help='Level of this job\'s own log lines on the machine that launches it. Libraries '
      '(Beam, TensorFlow, ...) log warnings and errors only, unless DEBUG: then '
      'everything, TensorFlow\'s start-up lines included. Dataflow workers keep '
      'Beam\'s own settings (--default_sdk_harness_log_level).')
  parser.add_argument(
      '--progress',
      default=DEFAULT_PROGRESS,
      choices=PROGRESS_MODES,
      type=str.lower,
      help='Local runs: log a progress line (records read, done, failed, rate) every '
      '--progress_interval_s. auto: only when stderr is a terminal. Remote runs: '
      'see the job\'s counters in the Dataflow console.')
  parser.add_argument('--progress_interval_s',
                      type=positive_seconds,
                      default=DEFAULT_PROGRESS_INTERVAL_S,
                      metavar='SECONDS',
                      help='Seconds between progress lines.')


def raw_flag(args: Sequence[str], name: str) -> Optional[str]:
  """The last value of ``--name=X`` or ``--name X`` in ``args``, or None (read before the
  flags are parsed: the console script's quiet set-up and runner check)."""
  value = None
  for i, arg in enumerate(args):
    if arg.startswith(f'--{name}='):
      value = arg.split('=', 1)[1]
    elif arg == f'--{name}' and i + 1 < len(args):
      value = args[i + 1]
  return value
