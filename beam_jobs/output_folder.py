"""``--output`` at launch: never overlapping the inputs, never mixing two runs.

Rules (checked before the pipeline is built, so a mistake costs nothing):

- ``--output`` (and the detection job's ``--move_inputs_to``) must not hold
  anything ``--input`` can match: a later run with the same ``--input``
  would read this run's outputs back as instances or images.
- A ``--output`` that already holds files is refused unless ``--overwrite``.
  With ``--overwrite`` the files this package's jobs write there are deleted
  first (:data:`OWNED_FOLDERS`, :data:`OWNED_FILES`, Beam's ``beam-temp-*``
  folders), so the folder ends with exactly one run's set of files: no
  shards of an earlier run, no temp files of a killed one. If the folder
  holds anything else the run is refused and nothing is deleted, so a
  mistyped ``--output=gs://bucket/`` never deletes data.
"""
import logging
import os
import shutil
from typing import List, Optional

from beam_jobs.usage import UsageError
from common import paths
from transforms.detection.input_cleanup import delete_files

_LOGGER = logging.getLogger(__name__)

OWNED_FOLDERS = ('predictions', 'errors', 'detections', 'annotated', 'sites')
"""Folders directly below ``--output`` that only the jobs write."""
OWNED_FILES = ('summary.json', 'report.html')
OWNED_FILE_PREFIXES = ('prediction.results-', 'prediction.errors_stats-', 'beam-temp-')
_SHOWN = 3


def is_owned(relative_path: str) -> bool:
  """True for a path (relative to ``--output``, ``/``-separated) a job here writes."""
  first, _, rest = relative_path.partition('/')
  if first.startswith('beam-temp-'):
    return True
  if rest or relative_path.endswith('/'):
    return first in OWNED_FOLDERS
  return first in OWNED_FILES or first.startswith(OWNED_FILE_PREFIXES)


def require_outside(flag: str,
                    folder: str,
                    input_flag: str,
                    pattern: str,
                    given: Optional[str] = None) -> None:
  """Raises UsageError if ``pattern`` can match ``folder`` or a file in it.

  ``given`` is the ``--input_flag`` value as the user typed it (default:
  ``pattern``), for the message.
  """
  example = paths.overlap_example(paths.absolute(pattern), paths.absolute(folder))
  if example is not None:
    raise UsageError(
        flag, f'{folder!r} overlaps what --{input_flag}={given or pattern!r} '
        f'reads (it can match {example!r}): a later run with the same '
        f'--{input_flag} would read these files back; choose a folder outside it')


def prepare(output: str, *, overwrite: bool) -> None:
  """Refuses a used ``output`` (UsageError) or, with ``overwrite``, empties it of job files."""
  output = paths.absolute(output).rstrip('/') or '/'
  if paths.is_local(output) and os.path.isfile(output):
    raise UsageError('output', f'{output!r} is a file; give a folder')
  # A gs:// "folder" placeholder object for --output itself does not count.
  files = [f for f in _files_below(output) if paths.relative_to(f, output)]
  if not files:
    return
  if not overwrite:
    raise UsageError(
        'output', f'{output!r} already holds {len(files)} file(s) (e.g. '
        f'{files[0]!r}): pass --overwrite to replace this job\'s outputs '
        'there, or choose a new folder')
  foreign = [f for f in files if not is_owned(paths.relative_to(f, output))]
  if foreign:
    shown = ', '.join(repr(f) for f in foreign[:_SHOWN])
    raise UsageError(
        'output', f'{output!r} holds {len(foreign)} file(s) no job here writes '
        f'({shown}); --overwrite deletes only job outputs: choose a new or '
        'empty folder')
  _LOGGER.warning('--overwrite: deleting %d files of an earlier run under %s', len(files), output)
  delete_files(files)
  if paths.is_local(output):
    _remove_empty_folders(output)


def _files_below(folder: str) -> List[str]:
  if paths.is_local(folder):
    if not os.path.isdir(folder):
      return []
    return sorted(os.path.join(root, name) for root, _, names in os.walk(folder) for name in names)
  return sorted(meta.path for meta in paths.match(paths.join(folder, '**')))


def _remove_empty_folders(folder: str) -> None:
  for name in os.listdir(folder):
    path = os.path.join(folder, name)
    if os.path.isdir(path) and is_owned(name + '/') and not any(files
                                                                for _, _, files in os.walk(path)):
      shutil.rmtree(path)
