"""Cloud Function (2nd gen): launch the Flex templates when files land in GCS.

Deployed with a Cloud Storage trigger (event ``google.cloud.storage.object.v1.finalized``)
on the bucket; configured by environment variables (see trigger_config.py and the
README's "Deploy on Google Cloud").

- A ``.json`` file under ``TRIGGER_PREFIX`` names a job and its parameters: at
  most ``MAX_TRIGGER_BYTES`` + 1 bytes of that file version are read, parsed
  strictly and validated (launch_requests), and it is launched once per file
  version, ever (launch_records).
- An image under one of ``UPLOAD_PREFIXES`` launches detection over that folder,
  at most one job per folder at a time; the job moves what it processed to
  ``PROCESSED_ROOT``, and events that arrive while it runs are retried later.
Everything else is acknowledged without a launch.

Every event writes exactly one log line, strict JSON on stdout, with an
``outcome``: ``launched``, ``duplicate``, ``ignored``, ``skipped``,
``rejected`` (HTTP 200: a bad file is never retried), ``retry_later`` and
``error`` (HTTP 500: GCS delivers the event again, when deployed with --retry).
"""
import json
from typing import Any, Dict, Mapping, Optional

import functions_framework
from google.api_core import exceptions as api_exceptions

import launch_records
import launch_requests
import launchers
import trigger_config
import trigger_events

_SEVERITY = {'rejected': 'WARNING', 'retry_later': 'WARNING', 'error': 'ERROR'}
_MAX_REASON_CHARS = 2000


class RetryLater(RuntimeError):
  """Raised so that the event is delivered again (deploy with --retry)."""


def _log(outcome: str, event: Any, **fields) -> Dict[str, Any]:
  """One structured log line (Cloud Logging reads JSON on stdout) per event.

  Fields that are None are left out; the line is strict JSON (no NaN), ASCII.
  """
  record = {
      'outcome': outcome,
      'event': getattr(event, 'uri', None),
      **{
          k: v
          for k, v in fields.items() if v is not None
      }
  }
  line = json.dumps(
      {
          'severity': _SEVERITY.get(outcome, 'INFO'),
          'message': f'trigger {outcome}',
          **record
      },
      sort_keys=True,
      allow_nan=False)
  print(line, flush=True)
  return record


def _storage():
  from google.cloud import storage  # pylint: disable=import-outside-toplevel
  return storage.Client()


def _read_head(bucket: str, name: str, generation: Optional[str], limit: int) -> Optional[bytes]:
  """At most ``limit`` + 1 bytes of the object (that generation), or None if it is gone."""
  blob = _storage().bucket(bucket).blob(name, generation=int(generation) if generation else None)
  try:
    return blob.download_as_bytes(start=0, end=limit)  # ``end`` is inclusive
  except api_exceptions.NotFound:
    return None
  except api_exceptions.RequestRangeNotSatisfiable:
    return b''  # an empty object has no byte 0


def _read_object(bucket: str, name: str) -> Optional[bytes]:
  try:
    return _storage().bucket(bucket).blob(name).download_as_bytes()
  except api_exceptions.NotFound:
    return None


def _object_exists(bucket: str, name: str) -> bool:
  return _storage().bucket(bucket).blob(name).exists()


def _is_folder(uri: str) -> bool:
  """Whether any object lies below ``uri/`` (how the detection job tells folders)."""
  bucket, _, name = uri[len('gs://'):].partition('/')
  if not uri.startswith('gs://') or not bucket:
    return False
  try:
    return any(True
               for _ in _storage().list_blobs(bucket, prefix=name.rstrip('/') + '/', max_results=1))
  except (api_exceptions.NotFound, api_exceptions.Forbidden):
    return False


def _template_specs(config: trigger_config.TriggerConfig) -> Dict[str, Mapping[str, dict]]:
  specs = {}
  for job, path in config.templates.items():
    if path.startswith('gs://'):
      bucket, _, name = path[len('gs://'):].partition('/')
      content = _read_object(bucket, name)
      if content is None:
        raise RuntimeError(f'template spec {path} not found')
    else:
      with open(path, 'rb') as f:
        content = f.read()
    specs[job] = launch_requests.metadata_parameters(json.loads(content))
  return specs


def _request_for(event, route, config) -> launch_requests.LaunchRequest:
  """The launch request, or None when the trigger file is gone; raises Rejected."""
  specs = _template_specs(config)
  if route.kind == 'trigger_file':
    content = _read_head(event.bucket, event.name, event.generation,
                         launch_requests.MAX_TRIGGER_BYTES)
    if content is None:
      return None
    return launch_requests.from_trigger_file(content, event, config, specs, is_folder=_is_folder)
  if 'detect_images' not in specs:
    raise launch_requests.Rejected('upload mode needs DETECT_IMAGES_TEMPLATE',
                                   code='missing_parameter')
  return launch_requests.for_upload(event, route.prefix, config, specs['detect_images'])


def _mark(records, claim, job_id: Optional[str], note: Optional[str] = None) -> Optional[str]:
  """Marks the record launched; a failure is reported, never raised (the job runs)."""
  try:
    records.mark_launched(claim, job_id=job_id, note=note)
    return None
  except Exception as e:  # pylint: disable=broad-except
    return f'{type(e).__name__}: {e}'[:_MAX_REASON_CHARS]


def _launch_once(event, request, config) -> Dict[str, Any]:
  records = launch_records.LaunchRecords(_storage().bucket(config.state_bucket or event.bucket),
                                         config.state_prefix,
                                         claim_timeout_s=config.claim_timeout_s)
  try:
    claim = records.claim(event=event, job=request.job, job_name=request.job_name)
  except launch_records.InFlight as e:
    _log('retry_later', event, job_name=request.job_name, reason=str(e))
    raise RetryLater(str(e)) from e
  if isinstance(claim, launch_records.Taken):
    return _log('duplicate',
                event,
                job_name=request.job_name,
                launch_record=claim.uri,
                job_id=claim.record.get('job_id'),
                reason='this event already launched')
  try:
    launched = launchers.launch(request, config)
  except launchers.LaunchRefused as e:
    records.release(claim)
    return _log('rejected',
                event,
                code='launch_refused',
                job_name=request.job_name,
                reason=str(e)[:_MAX_REASON_CHARS])
  except BaseException:
    try:
      records.release(claim)  # so that GCS's retry of the event can launch
    except Exception:  # pylint: disable=broad-except
      pass  # the claim times out instead
    raise
  if launched.already_running:
    if request.retry_if_running:
      records.release(claim)
      _log('retry_later', event, job_name=request.job_name, reason='a job for the folder runs')
      raise RetryLater(f'job {request.job_name} is running; {event.uri} will be retried')
    return _log('duplicate',
                event,
                job_name=request.job_name,
                launch_record=claim.uri,
                record_error=_mark(records, claim, None, 'a job of this name was active'),
                reason='a job of this name is active')
  return _log('launched',
              event,
              job_name=request.job_name,
              job_id=launched.job_id,
              job=request.job,
              parameters=request.parameters,
              launch_record=claim.uri,
              record_error=_mark(records, claim, launched.job_id))


def handle(event_type: str, event_id: str, data: Any) -> Dict[str, Any]:
  """Decides and launches; returns what happened (also logged as one JSON line).

  Raises RetryLater (after logging ``retry_later``) or any unexpected error
  (after logging ``error``): both answer HTTP 500, so GCS delivers again.
  """
  event = None
  try:
    config = trigger_config.from_env()
    try:
      event = trigger_events.parse(event_type, event_id, data)
    except trigger_events.MalformedEvent as e:
      return _log('rejected', None, code='malformed_event', reason=str(e))
    route = trigger_events.route(event, config)
    if route.kind == 'ignore':
      return _log('ignored', event, reason=route.why)
    try:
      request = _request_for(event, route, config)
    except launch_requests.Rejected as e:
      return _log('rejected', event, code=e.code, parameter=e.parameter, reason=str(e))
    if request is None:
      return _log('skipped',
                  event,
                  reason='this version of the trigger file no longer exists '
                  '(deleted or replaced before it was read)')
    if route.kind == 'upload' and not _object_exists(event.bucket, event.name):
      # A job already processed (moved) it: nothing left to do.
      return _log('ignored', event, reason='already processed')
    return _launch_once(event, request, config)
  except RetryLater:
    raise
  except Exception as e:
    _log('error', event, error=type(e).__name__, reason=str(e)[:_MAX_REASON_CHARS])
    raise


@functions_framework.cloud_event
def on_object_finalized(cloud_event):
  handle(cloud_event['type'], cloud_event['id'], cloud_event.data)
