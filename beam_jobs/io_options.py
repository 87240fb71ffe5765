"""``--input`` and ``--output``, shared by every job in this package.

Beam parses the flags of every ``PipelineOptions`` subclass imported in a
process with one argparse parser, so two jobs that each define ``--input``
cannot be imported together (tests, the trigger's local mode, notebooks).
The jobs therefore share these two flags; each job says in its own
``--help`` and docstring what they mean for it.
"""
from apache_beam.options.pipeline_options import PipelineOptions


class JobIOOptions(PipelineOptions):
  """What a job reads and where it writes."""

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
             'summary.json; use a fresh one per run.')


def flag_value(text: str) -> bool:
  """argparse type for booleans given as ``--flag=true`` (how Flex templates pass them)."""
  lowered = str(text).strip().lower()
  if lowered in ('true', '1', 'yes'):
    return True
  if lowered in ('false', '0', 'no'):
    return False
  raise ValueError(f'expected true or false, got {text!r}')
