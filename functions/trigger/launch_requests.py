"""What to launch: validated trigger files and upload-mode requests.

A trigger file is a small JSON object naming the job and its parameters::

  {"job": "site_predictions",
   "parameters": {"input": "gs://b/in/*.jsonl", "model_root": "gs://b/models",
                  "output": "gs://b/out/2026-11-20"}}

It is checked against the template's own metadata (parameter names, required
ones, regexes), plus rules of our own: gs:// paths only in allowed buckets,
no ``.``/``..`` segments, and no output under a watched prefix.
"""
import json
import re
from typing import Any, Dict, List, Mapping, NamedTuple

import job_names
from trigger_config import JOBS
from trigger_config import TriggerConfig
from trigger_config import watched_prefixes
from trigger_events import ObjectEvent

MAX_TRIGGER_BYTES = 64 * 1024
OUTPUT_PARAMETERS = ('output', 'move_inputs_to')
_GCS = re.compile(r'^gs://([^/]+)(/.*)?$')


class Rejected(ValueError):
  """A trigger file or request that must not launch; the message says why."""


class LaunchRequest(NamedTuple):
  job: str
  job_name: str
  parameters: Dict[str, str]
  retry_if_running: bool   # upload mode: a running job for the folder -> retry later


def metadata_parameters(template_spec: Mapping[str, Any]) -> Dict[str, dict]:
  """Parameters by name from a Flex template spec (or a bare metadata.json)."""
  metadata = template_spec.get('metadata', template_spec)
  return {p['name']: p for p in metadata.get('parameters', [])}


def _check_path(name: str, value: str, event: ObjectEvent, config: TriggerConfig) -> None:
  match = _GCS.match(value)
  if not match:
    return
  bucket, path = match.group(1), (match.group(2) or '/')
  allowed = config.allowed_buckets or (event.bucket,)
  if bucket not in allowed:
    raise Rejected(f'parameter {name!r} names bucket {bucket!r}, not one of {list(allowed)}')
  if any(segment in ('.', '..') for segment in path.split('/')):
    raise Rejected(f'parameter {name!r} has a "." or ".." segment: {value!r}')
  if name in OUTPUT_PARAMETERS and bucket == event.bucket:
    for prefix in watched_prefixes(config):
      if (path.lstrip('/') + '/').startswith(prefix):
        raise Rejected(f'parameter {name!r} points under the watched prefix {prefix!r}; '
                       'outputs there would trigger jobs again')


def validate_parameters(parameters: Mapping[str, Any], spec: Mapping[str, dict],
                        event: ObjectEvent, config: TriggerConfig) -> Dict[str, str]:
  """Checks parameters against the template metadata and our path rules."""
  checked = {}
  for name, value in parameters.items():
    if name not in spec:
      raise Rejected(f'parameter {name!r} is not a parameter of the template')
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
      raise Rejected(f'parameter {name!r} must be a string or number')
    text = str(value)
    for regex in spec[name].get('regexes', []):
      if not re.fullmatch(regex, text):
        raise Rejected(f'parameter {name!r} value {text!r} does not match {regex}')
    _check_path(name, text, event, config)
    checked[name] = text
  missing = [n for n, p in spec.items() if not p.get('isOptional') and n not in checked]
  if missing:
    raise Rejected(f'missing required parameters: {", ".join(sorted(missing))}')
  return checked


def from_trigger_file(content: bytes, event: ObjectEvent, config: TriggerConfig,
                      specs: Mapping[str, Mapping[str, dict]]) -> LaunchRequest:
  """A launch request from a trigger file's bytes; raises Rejected."""
  if len(content) > MAX_TRIGGER_BYTES:
    raise Rejected(f'trigger file is {len(content)} bytes, more than {MAX_TRIGGER_BYTES}')
  try:
    body = json.loads(content)
  except ValueError as e:
    raise Rejected(f'trigger file is not JSON: {e}') from e
  if not isinstance(body, dict):
    raise Rejected('trigger file must be a JSON object')
  unknown = set(body) - {'job', 'parameters'}
  if unknown:
    raise Rejected(f'unknown trigger file fields: {", ".join(sorted(unknown))}')
  job = body.get('job')
  if job not in JOBS:
    raise Rejected(f'unknown job {job!r}; expected one of {list(JOBS)}')
  if job not in specs:
    raise Rejected(f'job {job!r} has no template configured')
  parameters = body.get('parameters')
  if not isinstance(parameters, dict):
    raise Rejected('"parameters" must be a JSON object')
  checked = validate_parameters(parameters, specs[job], event, config)
  stem = event.name[len(config.trigger_prefix):].rsplit('.', 1)[0]
  # The generation makes a re-uploaded trigger file a new run, while a
  # redelivered event maps to the same name (and gets 409 while it runs).
  name = job_names.job_name(job, stem, event.generation)
  return LaunchRequest(job, name, checked, retry_if_running=False)


def for_upload(event: ObjectEvent, prefix: str, config: TriggerConfig,
               spec: Mapping[str, dict]) -> LaunchRequest:
  """Detection over the whole watched folder, one job per folder at a time.

  The job name has no time in it: while a job for the folder runs, another
  launch gets 409 and the event is retried later (see README: upload mode).
  """
  if not config.output_root or not config.processed_root:
    raise Rejected('upload mode needs OUTPUT_ROOT and PROCESSED_ROOT')
  folder = f'gs://{event.bucket}/{prefix}'
  slug = job_names.slug(f'{event.bucket}-{prefix}')
  parameters = dict(config.detect_parameters)
  parameters.update({
      'input': folder,
      'output': f'{config.output_root}/{slug}/run-{event.generation}',
      'move_inputs_to': f'{config.processed_root}/{slug}/',
  })
  checked = validate_parameters(parameters, spec, event, config)
  return LaunchRequest('detect_images', job_names.job_name('detect', slug), checked,
                       retry_if_running=True)


def as_argv(parameters: Mapping[str, str]) -> List[str]:
  return [f'--{name}={value}' for name, value in sorted(parameters.items())]
