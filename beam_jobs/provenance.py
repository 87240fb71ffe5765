"""What produced a run, for ``summary.json``'s ``provenance`` object.

Built once, when the job is built (on Dataflow: in the launcher), from the
parsed flags::

  "provenance": {
    "input": "readings/*.jsonl",          # or "bigquery:P:D.T", or "query"
    "model_root": "gs://b/models",
    "model_version": null,                # the pinned --model_version, if any
    "model_versions": null,               # the --model_versions manifest path, if any
    "code": {"distribution": "beam-batch-inference", "version": "0.1.0",
             "git_commit": "d3b44a5...",  # null where not known
             "git_dirty": false},         # tracked files changed since that commit
    "flags": {"output_format": "jsonl", "key_field": "rid", ...}
  }

``flags`` holds the flags that shape the outputs, each only where this
build of the job defines it. The detection job records its input pattern,
its model files and its own such flags. Never raises: a version or commit
that cannot be found is null.
"""
import functools
import importlib.metadata
import logging
import os
import subprocess
from typing import Any, Dict, Optional, Sequence, Tuple

_LOGGER = logging.getLogger(__name__)

DISTRIBUTION = 'beam-batch-inference'
_GIT_TIMEOUT_S = 2.0

SITE_FLAGS = ('input_format', 'site_field', 'key_field', 'included_fields', 'excluded_fields',
              'instance_type', 'selected_fields', 'row_restriction', 'max_line_bytes', 'signature',
              'rows_per_chunk', 'output_format', 'output_table', 'errors_table', 'sites_table',
              'bigquery_write_method', 'max_failed_fraction')
"""Per-site job flags recorded in ``provenance.flags`` (those the job defines)."""

DETECTION_FLAGS = ('classes', 'image_size', 'score_threshold', 'iou_threshold', 'max_detections',
                   'max_image_pixels', 'batch_size', 'device', 'delete_inputs', 'move_inputs_to',
                   'max_failed_fraction')
"""Detection job flags recorded in ``provenance.flags``."""


@functools.lru_cache(maxsize=1)
def code_version() -> Dict[str, Any]:
  """``{"distribution", "version", "git_commit", "git_dirty"}`` of the code building the job.

  ``version``: the installed distribution's version (null when running from
  a checkout that is not installed); ``git_commit``: ``HEAD`` of the git
  checkout that tracks this module, and ``git_dirty``: whether tracked files
  there differ from it (so the commit alone does not name the code), when
  there is one and ``git`` answers within two seconds; null otherwise.
  """
  try:
    version = importlib.metadata.version(DISTRIBUTION)
  except importlib.metadata.PackageNotFoundError:
    version = None
  commit, dirty = git_state(os.path.abspath(__file__))
  return {
      'distribution': DISTRIBUTION,
      'version': version,
      'git_commit': commit,
      'git_dirty': dirty
  }


def git_state(source_file: str) -> Tuple[Optional[str], Optional[bool]]:
  """``(HEAD commit, tracked files changed)`` of the git checkout that tracks
  ``source_file``; ``(None, None)`` where none does (an installed copy, even one
  in a virtual environment inside some other checkout) or ``git`` fails. Never raises."""
  directory, name = os.path.split(source_file)
  if _git(directory, 'ls-files', '--error-unmatch', '--', name) is None:
    return None, None
  head = _git(directory, 'rev-parse', '--verify', '-q', 'HEAD')
  if head is None or len(head.strip()) < 40:
    return None, None
  # No optional locks: reading the state never rewrites the checkout's index.
  status = _git(directory, '--no-optional-locks', 'status', '--porcelain', '--untracked-files=no')
  return head.strip(), None if status is None else bool(status.strip())


def _git(directory: str, *args: str) -> Optional[str]:
  """``git -C directory args``' output, or None."""
  try:
    done = subprocess.run(['git', '-C', directory, *args],
                          capture_output=True,
                          text=True,
                          timeout=_GIT_TIMEOUT_S,
                          check=False)
  except (OSError, subprocess.SubprocessError) as e:
    _LOGGER.debug('no git state for the summary: %s', e)
    return None
  return done.stdout if done.returncode == 0 else None


def flags(options, names: Sequence[str]) -> Dict[str, Any]:
  """``{name: value}`` of the flags in ``names`` that ``options`` defines."""
  missing = object()
  found = {}
  for name in names:
    value = getattr(options, name, missing)
    if value is not missing:
      found[name] = value
  return found


def site_job(options, *, input_path: Optional[str], max_failed_fraction: float) -> Dict[str, Any]:
  """The per-site job's provenance (module docstring) from its parsed options view."""
  if input_path:
    source = input_path
  elif getattr(options, 'input_table', None):
    source = f'bigquery:{options.input_table}'
  else:
    source = 'query'
  recorded = flags(options, SITE_FLAGS)
  recorded['max_failed_fraction'] = max_failed_fraction
  return {
      'input': source,
      'model_root': options.model_root,
      'model_version': options.model_version,
      'model_versions': getattr(options, 'model_versions', None),
      'code': code_version(),
      'flags': recorded,
  }


def detection_job(options, *, pattern: str, max_failed_fraction: float) -> Dict[str, Any]:
  """The detection job's provenance: input pattern, model files, code and flags."""
  recorded = flags(options, DETECTION_FLAGS)
  recorded['max_failed_fraction'] = max_failed_fraction
  return {
      'input': pattern,
      'model': flags(options, ('model', 'model_config', 'model_weights', 'class_names')),
      'code': code_version(),
      'flags': recorded,
  }
