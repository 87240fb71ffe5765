"""Cloud Function (2nd gen): launch the Flex templates when files land in GCS.

Deployed with a Cloud Storage trigger (event ``google.cloud.storage.object.v1.finalized``)
on the bucket; configured by environment variables (see trigger_config.py and the
README's "Deploy on Google Cloud").

- A ``.json`` file under ``TRIGGER_PREFIX`` names a job and its parameters: it is
  validated against the template's metadata and launched once per file version.
- An image under one of ``UPLOAD_PREFIXES`` launches detection over that folder,
  at most one job per folder at a time; the job moves what it processed to
  ``PROCESSED_ROOT``, and events that arrive while it runs are retried later.
Everything else is acknowledged without a launch.
"""
import json
from typing import Any, Dict, Mapping

import functions_framework

import launch_requests
import launchers
import trigger_config
import trigger_events

class RetryLater(RuntimeError):
  """Raised so that the event is delivered again (deploy with --retry)."""


def _log(outcome: str, event: Any, **fields) -> Dict[str, Any]:
  """One structured log line (Cloud Logging reads JSON on stdout) per event."""
  record = {'outcome': outcome, 'event': getattr(event, 'uri', None), **fields}
  severity = 'WARNING' if outcome in ('rejected', 'retry_later') else 'INFO'
  print(json.dumps({'severity': severity, 'message': f'trigger {outcome}', **record},
                   sort_keys=True), flush=True)
  return record


def _read_object(bucket: str, name: str, generation: str = None):
  """The object's bytes (that generation), or None if it is gone."""
  # pylint: disable=import-outside-toplevel
  from google.api_core import exceptions as api_exceptions
  from google.cloud import storage
  blob = storage.Client().bucket(bucket).blob(name, generation=int(generation) if generation else None)
  try:
    return blob.download_as_bytes()
  except api_exceptions.NotFound:
    return None


def _object_exists(bucket: str, name: str) -> bool:
  from google.cloud import storage  # pylint: disable=import-outside-toplevel
  return storage.Client().bucket(bucket).blob(name).exists()


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


def handle(event_type: str, event_id: str, data: Any) -> Dict[str, Any]:
  """Decides and launches; returns what happened (also logged as one JSON line)."""
  config = trigger_config.from_env()
  try:
    event = trigger_events.parse(event_type, event_id, data)
  except trigger_events.MalformedEvent as e:
    return _log('rejected', None, reason=str(e))
  route = trigger_events.route(event, config)
  if route.kind == 'ignore':
    return _log('ignored', event, reason=route.why)

  specs = _template_specs(config)
  try:
    if route.kind == 'trigger_file':
      content = _read_object(event.bucket, event.name, event.generation)
      if content is None:
        return _log('ignored', event, reason='trigger file version no longer exists')
      request = launch_requests.from_trigger_file(content, event, config, specs)
    else:
      if 'detect_images' not in specs:
        raise launch_requests.Rejected('upload mode needs DETECT_IMAGES_TEMPLATE')
      if not _object_exists(event.bucket, event.name):
        # A job already processed (moved) it: nothing left to do.
        return _log('ignored', event, reason='already processed')
      request = launch_requests.for_upload(event, route.prefix, config, specs['detect_images'])
  except launch_requests.Rejected as e:
    return _log('rejected', event, reason=str(e))

  launched = launchers.launch(request, config)
  if launched.already_running:
    if request.retry_if_running:
      _log('retry_later', event, job_name=request.job_name)
      raise RetryLater(f'job {request.job_name} is running; {event.uri} will be retried')
    return _log('duplicate', event, job_name=request.job_name)
  return _log('launched', event, job_name=request.job_name, job_id=launched.job_id,
              job=request.job, parameters=request.parameters)


@functions_framework.cloud_event
def on_object_finalized(cloud_event):
  handle(cloud_event['type'], cloud_event['id'], cloud_event.data)
