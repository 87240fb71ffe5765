"""The trigger function's settings, read from environment variables at each call."""
import json
import os
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

JOBS = ('site_predictions', 'detect_images')


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
  templates: Dict[str, str]              # job -> template spec (gs:// or local path)
  environments: Dict[str, LaunchEnvironment]
  trigger_prefix: str                    # e.g. "triggers/"
  upload_prefixes: Tuple[str, ...]       # e.g. ("input-images/",)
  output_root: Optional[str]             # gs://bucket/prefix for upload-mode outputs
  processed_root: Optional[str]          # gs://bucket/prefix where processed images go
  allowed_buckets: Tuple[str, ...]       # buckets trigger files may name; empty = event bucket
  detect_parameters: Dict[str, str]      # fixed parameters of upload-mode launches
  dataflow_endpoint: Optional[str]       # e.g. http://127.0.0.1:8123 for local tests
  launch_mode: str                       # "dataflow" or "local"


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
  return LaunchEnvironment(
      max_workers=int(max_workers) if max_workers else None,
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
  templates = {job: env[f'{job.upper()}_TEMPLATE'] for job in JOBS
               if env.get(f'{job.upper()}_TEMPLATE')}
  try:
    detect_parameters = json.loads(env.get('DETECT_PARAMETERS') or '{}')
  except ValueError as e:
    raise ValueError(f'DETECT_PARAMETERS is not JSON: {e}') from e
  if not isinstance(detect_parameters, dict):
    raise ValueError('DETECT_PARAMETERS must be a JSON object')
  mode = env.get('LAUNCH_MODE', 'dataflow')
  if mode not in ('dataflow', 'local'):
    raise ValueError(f'LAUNCH_MODE must be dataflow or local, got {mode!r}')
  return TriggerConfig(
      project=project,
      region=env.get('REGION', 'us-central1'),
      templates=templates,
      environments={job: _environment(env, job) for job in JOBS},
      trigger_prefix=_prefix(env.get('TRIGGER_PREFIX', 'triggers/')),
      upload_prefixes=tuple(_prefix(p) for p in _list(env.get('UPLOAD_PREFIXES'))),
      output_root=(env.get('OUTPUT_ROOT') or '').rstrip('/') or None,
      processed_root=(env.get('PROCESSED_ROOT') or '').rstrip('/') or None,
      allowed_buckets=_list(env.get('ALLOWED_BUCKETS')),
      detect_parameters={str(k): str(v) for k, v in detect_parameters.items()},
      dataflow_endpoint=env.get('DATAFLOW_ENDPOINT') or None,
      launch_mode=mode)


def watched_prefixes(config: TriggerConfig) -> List[str]:
  return [config.trigger_prefix, *config.upload_prefixes]
