"""The trigger function's settings, read from environment variables at each call."""
import json
import os
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

JOBS = ('site_predictions', 'detect_images')
DEFAULT_STATE_PREFIX = '_trigger_state/'
# Longer than a 2nd gen event function may run (540 s): older claims are dead.
DEFAULT_CLAIM_TIMEOUT_S = 600.0


class LaunchEnvironment(NamedTuple):
  """Dataflow runtime environment for one job's launches."""
  max_workers: Optional[int] = None
  machine_type: Optional[str] = None
  service_account_email: Optional[str] = None
  temp_location: Optional[str] = None
  sdk_container_image: Optional[str] = None
  additional_experiments: Tuple[str, ...] = ()


class TriggerConfig(NamedTuple):
  project: str
  region: str
  templates: Dict[str, str]  # job -> template spec (gs:// or local path)
  environments: Dict[str, LaunchEnvironment]
  trigger_prefix: str  # e.g. "triggers/"
  upload_prefixes: Tuple[str, ...]  # e.g. ("input-images/",)
  output_root: Optional[str]  # gs://bucket/prefix for upload-mode outputs
  processed_root: Optional[str]  # gs://bucket/prefix where processed images go
  allowed_buckets: Tuple[str, ...]  # buckets trigger files may name; empty = event bucket
  detect_parameters: Dict[str, str]  # fixed parameters of upload-mode launches
  dataflow_endpoint: Optional[str]  # e.g. http://127.0.0.1:8123 for local tests
  launch_mode: str  # "dataflow" or "local"
  state_bucket: Optional[str] = None  # bucket of the launch records; None = the event's
  state_prefix: str = DEFAULT_STATE_PREFIX  # their prefix, never under a watched one
  claim_timeout_s: float = DEFAULT_CLAIM_TIMEOUT_S  # a "launching" record older is abandoned


def _list(value: Optional[str]) -> Tuple[str, ...]:
  return tuple(v.strip() for v in (value or '').split(',') if v.strip())


def _prefix(value: str) -> str:
  value = value.strip().lstrip('/')
  return value if not value or value.endswith('/') else value + '/'


def _environment(env: Mapping[str, str], job: str) -> LaunchEnvironment:
  key = job.upper()

  def get(name: str) -> Optional[str]:
    return env.get(f'{key}_{name}') or env.get(name) or None

  max_workers = get('MAX_WORKERS')
  experiments = list(_list(get('EXPERIMENTS')))
  accelerator = get('ACCELERATOR')
  if accelerator:
    # e.g. type:nvidia-l4;count:1;install-nvidia-driver
    experiments.append(f'worker_accelerator={accelerator}')
  return LaunchEnvironment(max_workers=int(max_workers) if max_workers else None,
                           machine_type=get('MACHINE_TYPE'),
                           service_account_email=get('SERVICE_ACCOUNT'),
                           temp_location=get('TEMP_LOCATION'),
                           sdk_container_image=get('IMAGE'),
                           additional_experiments=tuple(experiments))


def from_env(env: Mapping[str, str] = os.environ) -> TriggerConfig:
  """Reads the configuration; raises ValueError naming the variable that is wrong."""
  project = env.get('PROJECT') or env.get('GOOGLE_CLOUD_PROJECT')
  if not project:
    raise ValueError('set PROJECT (or GOOGLE_CLOUD_PROJECT)')
  templates = {
      job: env[f'{job.upper()}_TEMPLATE']
      for job in JOBS if env.get(f'{job.upper()}_TEMPLATE')
  }
  try:
    detect_parameters = json.loads(env.get('DETECT_PARAMETERS') or '{}')
  except ValueError as e:
    raise ValueError(f'DETECT_PARAMETERS is not JSON: {e}') from e
  if not isinstance(detect_parameters, dict):
    raise ValueError('DETECT_PARAMETERS must be a JSON object')
  trigger_prefix = _prefix(env.get('TRIGGER_PREFIX', 'triggers/'))
  upload_prefixes = tuple(_prefix(p) for p in _list(env.get('UPLOAD_PREFIXES')))
  state_bucket = (env.get('STATE_BUCKET') or '').strip() or None
  state_prefix = _prefix(env.get('STATE_PREFIX', DEFAULT_STATE_PREFIX))
  if not state_prefix:
    raise ValueError('STATE_PREFIX must not be empty')
  for watched in () if state_bucket else (trigger_prefix, *upload_prefixes):
    # Launch records live in the watched bucket: keep them out of the watched prefixes.
    if state_prefix.startswith(watched) or watched.startswith(state_prefix):
      raise ValueError(f'STATE_PREFIX {state_prefix!r} must be neither under nor above the '
                       f'watched prefix {watched!r} (or set STATE_BUCKET)')
  try:
    claim_timeout_s = float(env.get('CLAIM_TIMEOUT_S') or DEFAULT_CLAIM_TIMEOUT_S)
  except ValueError as e:
    raise ValueError(f'CLAIM_TIMEOUT_S is not a number: {e}') from e
  if not 0 <= claim_timeout_s < float('inf'):
    raise ValueError(f'CLAIM_TIMEOUT_S must be a non-negative number, got {claim_timeout_s}')
  mode = env.get('LAUNCH_MODE', 'dataflow')
  if mode not in ('dataflow', 'local'):
    raise ValueError(f'LAUNCH_MODE must be dataflow or local, got {mode!r}')
  return TriggerConfig(project=project,
                       region=env.get('REGION', 'us-central1'),
                       templates=templates,
                       environments={job: _environment(env, job)
                                     for job in JOBS},
                       trigger_prefix=trigger_prefix,
                       upload_prefixes=upload_prefixes,
                       output_root=(env.get('OUTPUT_ROOT') or '').rstrip('/') or None,
                       processed_root=(env.get('PROCESSED_ROOT') or '').rstrip('/') or None,
                       allowed_buckets=_list(env.get('ALLOWED_BUCKETS')),
                       detect_parameters={
                           str(k): str(v)
                           for k, v in detect_parameters.items()
                       },
                       dataflow_endpoint=env.get('DATAFLOW_ENDPOINT') or None,
                       launch_mode=mode,
                       state_bucket=state_bucket,
                       state_prefix=state_prefix,
                       claim_timeout_s=claim_timeout_s)


def watched_prefixes(config: TriggerConfig) -> List[str]:
  return [config.trigger_prefix, *config.upload_prefixes]
