"""What to launch: validated trigger files and upload-mode requests.

A trigger file is a small JSON object naming the job and its parameters::

  {"job": "site_predictions",
   "parameters": {"input": "gs://b/in/*.jsonl", "model_root": "gs://b/models",
                  "output": "gs://b/out/2026-11-20"}}

The bytes are parsed strictly (trigger_files), the parameters are checked
against the template's own metadata (names, required ones, regexes) plus the
job flags in ``job_rules.EXTRA_PARAMETERS``, and then against rules of our own:
gs:// paths only in allowed buckets, no ``.``/``..`` segments, outputs neither
under a watched prefix nor under the state prefix, and what the job itself
would refuse at start (job_rules). Every refusal raises ``Rejected`` with a
machine code and the parameter at fault.
"""
import difflib
import re
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional

import job_names
import job_rules
import trigger_files
from trigger_config import JOBS
from trigger_config import TriggerConfig
from trigger_config import watched_prefixes
from trigger_events import ObjectEvent
from trigger_files import Rejected
from trigger_files import show

MAX_TRIGGER_BYTES = trigger_files.MAX_TRIGGER_BYTES
OUTPUT_PARAMETERS = ('output', 'move_inputs_to')
TRIGGER_KEYS = ('job', 'parameters')
_GCS = re.compile(r'^gs://([^/]+)(/.*)?$')

__all__ = [
    'LaunchRequest', 'Rejected', 'as_argv', 'for_upload', 'from_trigger_file',
    'metadata_parameters', 'validate_parameters'
]


class LaunchRequest(NamedTuple):
  job: str
  job_name: str
  parameters: Dict[str, str]
  retry_if_running: bool  # upload mode: a running job for the folder -> retry later


def metadata_parameters(template_spec: Mapping[str, Any]) -> Dict[str, dict]:
  """Parameters by name from a Flex template spec (or a bare metadata.json)."""
  metadata = template_spec.get('metadata', template_spec)
  return {p['name']: p for p in metadata.get('parameters', [])}


def _did_you_mean(name: Any, known: Iterable[str]) -> str:
  close = difflib.get_close_matches(str(name)[:100], sorted(known), n=1, cutoff=0.6)
  return f' (did you mean {close[0]!r}?)' if close else ''


def _check_path(name: str, value: str, event: ObjectEvent, config: TriggerConfig) -> None:
  match = _GCS.match(value)
  if not match:
    return
  bucket, path = match.group(1), (match.group(2) or '/')
  allowed = config.allowed_buckets or (event.bucket, )
  if bucket not in allowed:
    raise Rejected(f'parameter {name!r} names bucket {show(bucket)}, not one of {list(allowed)}',
                   code='bucket_not_allowed',
                   parameter=name)
  if any(segment in ('.', '..') for segment in path.split('/')):
    raise Rejected(f'parameter {name!r} has a "." or ".." segment: {show(value)}',
                   code='dot_segment',
                   parameter=name)
  if name not in OUTPUT_PARAMETERS:
    return
  zones = []
  if bucket == event.bucket:
    zones += [(prefix, 'the watched prefix') for prefix in watched_prefixes(config)]
  if bucket == (config.state_bucket or event.bucket):
    zones.append((config.state_prefix, 'the state prefix'))
  for prefix, what in zones:
    if (path.lstrip('/') + '/').startswith(prefix):
      raise Rejected(
          f'parameter {name!r} points under {what} {prefix!r}; outputs there would '
          'trigger jobs again or clobber launch records',
          code='watched_prefix',
          parameter=name)


def validate_parameters(parameters: Mapping[str, Any],
                        spec: Mapping[str, dict],
                        event: ObjectEvent,
                        config: TriggerConfig,
                        *,
                        job: str,
                        is_folder: Optional[Callable[[str], bool]] = None) -> Dict[str, str]:
  """Checks parameters against the template metadata, our path rules and the job's rules.

  Returns:
    ``{name: value as text}``; raises Rejected.
  """
  known = {name: [regex] for name, regex in job_rules.EXTRA_PARAMETERS.items()}
  for name, entry in spec.items():
    known[name] = list(entry.get('regexes', [])) + known.get(name, [])
  checked = {}
  for name, value in parameters.items():
    if name not in known:
      raise Rejected(
          f'parameter {show(name)} is not a parameter of the template'
          f'{_did_you_mean(name, known)}',
          code='unknown_parameter',
          parameter=name)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
      raise Rejected(
          f'parameter {name!r} must be a string or number, not '
          f'{type(value).__name__}',
          code='wrong_type',
          parameter=name)
    text = str(value)
    for regex in known[name]:
      if not re.fullmatch(regex, text):
        raise Rejected(f'parameter {name!r} value {show(text)} does not match {regex}',
                       code='bad_value',
                       parameter=name)
    _check_path(name, text, event, config)
    checked[name] = text
  missing = sorted(n for n, p in spec.items() if not p.get('isOptional') and n not in checked)
  if missing:
    raise Rejected(f'missing required parameters: {", ".join(missing)}',
                   code='missing_parameter',
                   parameter=missing[0])
  job_rules.check(job, checked, is_folder=is_folder or (lambda uri: False))
  return checked


def from_trigger_file(content: bytes,
                      event: ObjectEvent,
                      config: TriggerConfig,
                      specs: Mapping[str, Mapping[str, dict]],
                      *,
                      is_folder: Optional[Callable[[str], bool]] = None) -> LaunchRequest:
  """A launch request from a trigger file's first bytes; raises Rejected.

  Args:
    content: at most ``MAX_TRIGGER_BYTES`` + 1 bytes of the file.
    is_folder: ``uri -> bool`` for the detection job's input root rule.
  """
  body = trigger_files.parse(content, event.size)
  unknown = sorted(set(body) - set(TRIGGER_KEYS), key=str)
  if unknown:
    raise Rejected(
        f'unknown trigger file fields: {", ".join(show(k) for k in unknown)}'
        f'{_did_you_mean(unknown[0], TRIGGER_KEYS)}; expected {list(TRIGGER_KEYS)}',
        code='unknown_key',
        parameter=unknown[0])
  job = body.get('job')
  if not isinstance(job, str):
    raise Rejected(f'"job" must be a string, one of {list(JOBS)}',
                   code='wrong_type' if 'job' in body else 'missing_parameter',
                   parameter='job')
  if job not in JOBS:
    raise Rejected(
        f'unknown job {show(job)}{_did_you_mean(job, JOBS)}; expected one of '
        f'{list(JOBS)}',
        code='unknown_job',
        parameter='job')
  if job not in specs:
    raise Rejected(f'job {job!r} has no template configured', code='unknown_job', parameter='job')
  parameters = body.get('parameters')
  if not isinstance(parameters, dict):
    raise Rejected('"parameters" must be a JSON object',
                   code='wrong_type' if 'parameters' in body else 'missing_parameter',
                   parameter='parameters')
  checked = validate_parameters(parameters, specs[job], event, config, job=job, is_folder=is_folder)
  stem = event.name[len(config.trigger_prefix):].rsplit('.', 1)[0]
  # The generation makes a re-uploaded trigger file a new run, while a
  # redelivered event maps to the same name (and the same launch record).
  name = job_names.job_name(job, stem, event.generation)
  return LaunchRequest(job, name, checked, retry_if_running=False)


def for_upload(event: ObjectEvent, prefix: str, config: TriggerConfig,
               spec: Mapping[str, dict]) -> LaunchRequest:
  """Detection over the whole watched folder, one job per folder at a time.

  The job name has no time in it: while a job for the folder runs, another
  launch gets 409 and the event is retried later (see README: upload mode).
  """
  if not config.output_root or not config.processed_root:
    raise Rejected('upload mode needs OUTPUT_ROOT and PROCESSED_ROOT',
                   code='missing_parameter',
                   parameter='output')
  folder = f'gs://{event.bucket}/{prefix}'
  slug = job_names.slug(f'{event.bucket}-{prefix}')
  parameters = dict(config.detect_parameters)
  parameters.update({
      'input': folder,
      'output': f'{config.output_root}/{slug}/run-{event.generation}',
      'move_inputs_to': f'{config.processed_root}/{slug}/',
  })
  checked = validate_parameters(parameters, spec, event, config, job='detect_images')
  return LaunchRequest('detect_images',
                       job_names.job_name('detect', slug),
                       checked,
                       retry_if_running=True)


def as_argv(parameters: Mapping[str, str]) -> List[str]:
  return [f'--{name}={value}' for name, value in sorted(parameters.items())]
