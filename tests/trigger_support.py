"""Test support for the trigger function: a recording Dataflow API server and events."""
import http.server
import json
import pathlib
import threading
from typing import Dict, List

from cloudevents.http import CloudEvent

REPO = pathlib.Path(__file__).resolve().parents[1]
FUNCTION_SOURCE = REPO / 'functions' / 'trigger' / 'main.py'
FINALIZED = 'google.cloud.storage.object.v1.finalized'


class RecordingDataflow:
  """Answers ``flexTemplates:launch`` like Dataflow: 409 while a job name is active."""

  def __init__(self):
    self.requests: List[Dict] = []
    self.active = set()
    self._lock = threading.Lock()
    recorder = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def do_POST(self):  # pylint: disable=invalid-name
        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])) or b'{}')
        name = body.get('launchParameter', {}).get('jobName')
        with recorder._lock:  # pylint: disable=protected-access
          recorder.requests.append({'path': self.path, 'body': body})
          conflict = name in recorder.active
          recorder.active.add(name)
          job_id = f'2026-11-21_00_00_00-{len(recorder.requests)}'
        if conflict:
          status, payload = 409, {'error': {
              'code': 409, 'status': 'ALREADY_EXISTS',
              'message': f'(abc): The workflow could not be created. A job with name {name} '
                         'already exists.'}}
        else:
          status, payload = 200, {'job': {'id': job_id, 'name': name,
                                          'currentState': 'JOB_STATE_QUEUED'}}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

      def log_message(self, *args):
        pass

    self._server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    self.url = f'http://127.0.0.1:{self._server.server_address[1]}'
    self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._server.shutdown()
    self._server.server_close()

  def finish(self, name: str) -> None:
    with self._lock:
      self.active.discard(name)

  @property
  def launches(self) -> List[Dict]:
    return [r['body']['launchParameter'] for r in self.requests]


def finalize_event(bucket: str, name: str, generation: int, size: int = 10,
                   event_id: str = None) -> CloudEvent:
  """A GCS finalize CloudEvent as Eventarc delivers it (numbers as strings)."""
  return CloudEvent({
      'specversion': '1.0', 'type': FINALIZED,
      'source': f'//storage.googleapis.com/projects/_/buckets/{bucket}',
      'subject': f'objects/{name}', 'id': event_id or f'evt-{name}-{generation}',
  }, {'bucket': bucket, 'name': name, 'generation': str(generation),
      'metageneration': '1', 'size': str(size), 'contentType': 'application/octet-stream'})
