"""Flags shared by every job in this package, as Beam pipeline options.

The flags themselves (``--input``, ``--output``, the run policy, logging and
progress) are defined once, without Beam, in :mod:`beam_jobs.flags_io`, so
that ``--help`` can print them without importing Beam. Beam parses the flags
of every ``PipelineOptions`` subclass imported in a process with one
argparse parser, so two jobs that each defined ``--input`` could not be
imported together (tests, the trigger's local mode, notebooks): the jobs
share these, and each job says in its own ``--help`` what they mean for it.
"""
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs import flags_io
from beam_jobs.flags_io import DEFAULT_MAX_FAILED_FRACTION  # pylint: disable=unused-import
from beam_jobs.flags_io import flag_value  # pylint: disable=unused-import


class JobIOOptions(PipelineOptions):
  """What a job reads, where it writes, and when a run counts as failed."""

  @classmethod
  def _add_argparse_args(cls, parser):
    flags_io.add_flags(parser)


class ConsoleOptions(PipelineOptions):
  """What a run prints where it is launched: ``--log_level``, ``--progress``.

  Kept apart from JobIOOptions: these are not Flex template parameters.
  """

  @classmethod
  def _add_argparse_args(cls, parser):
    flags_io.add_console_flags(parser)
