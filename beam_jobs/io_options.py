"""Flags shared by every job in this package: ``--input``, ``--output`` and the run policy.

Beam parses the flags of every ``PipelineOptions`` subclass imported in a
process with one argparse parser, so two jobs that each define ``--input``
cannot be imported together (tests, the trigger's local mode, notebooks).
The jobs therefore share these flags; each job says in its own ``--help``
and docstring what they mean for it.
"""
import argparse

from apache_beam.options.pipeline_options import PipelineOptions

DEFAULT_MAX_FAILED_FRACTION = 0.1
"""A run where more than this fraction of the records read failed is a failed run."""


def flag_value(text: str) -> bool:
  """argparse type for booleans given as ``--flag=true`` (how Flex templates pass them)."""
  lowered = str(text).strip().lower()
  if lowered in ('true', '1', 'yes'):
    return True
  if lowered in ('false', '0', 'no'):
    return False
  raise argparse.ArgumentTypeError(f'expected true or false, got {text!r}')


class JobIOOptions(PipelineOptions):
  """What a job reads, where it writes, and when a run counts as failed."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument(
        '--input',
        help='What the job reads, local or gs://. site_predictions: JSON-lines file or glob, '
             'one instance object per line. detect_images: folder, prefix or glob of images '
             '(recursive; the first folder below it names the site).')
    parser.add_argument(
        '--output',
        help='Folder (local or gs://) for the job\'s outputs, dead letters (errors/) and '
             'summary.json. Must be new or empty (see --overwrite) and hold nothing '
             '--input can match.')
    parser.add_argument(
        '--overwrite', type=flag_value, nargs='?', const=True, default=False,
        help='Allow a --output that holds an earlier run: its job outputs (predictions/, '
             'errors/, summary.json, ...) are deleted first; refused if it holds anything '
             'else (--overwrite or --overwrite=true).')
    parser.add_argument(
        '--max_failed_fraction', type=float, default=DEFAULT_MAX_FAILED_FRACTION,
        help='The run fails (summary status "failed", non-zero exit, failed Dataflow job) '
             'when more than this fraction of the records read became dead letters '
             f'(0-1, default: {DEFAULT_MAX_FAILED_FRACTION}). A run that read nothing or '
             'produced nothing always fails.')
