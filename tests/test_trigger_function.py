"""The trigger Cloud Function under the real functions framework, with the real
Dataflow client pointed at a recording server and GCS served locally."""
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
from cloudevents.conversion import to_binary

from conftest import free_port  # pylint: disable=no-name-in-module
from common import paths
from trigger_support import DETECT_FIXED
from trigger_support import FUNCTION_SOURCE
from trigger_support import SITE_TRIGGER
from trigger_support import client  # noqa: F401  pylint: disable=unused-import
from trigger_support import dataflow  # noqa: F401  pylint: disable=unused-import
from trigger_support import deliver
from trigger_support import emulator_env  # noqa: F401  pylint: disable=unused-import
from trigger_support import finalize_event
from trigger_support import upload

pytestmark = pytest.mark.gcs
BUCKET = 'test-bucket'


@pytest.fixture
def env(emulator_env):
  return emulator_env


def test_trigger_file_launches_the_site_template(client, env, dataflow):
  gen = upload('triggers/nightly-2026-11-20.json', json.dumps(SITE_TRIGGER))
  response = deliver(client, 'triggers/nightly-2026-11-20.json', gen)
  assert response.status_code == 200
  assert len(dataflow.requests) == 1
  request = dataflow.requests[0]
  assert request['path'].split('?')[0] == (
      '/v1b3/projects/local-project/locations/europe-west4/flexTemplates:launch')
  assert request['body'] == {
      'launchParameter': {
          'jobName': f'site-predictions-nightly-2026-11-20-{gen}',
          'containerSpecGcsPath': 'gs://test-bucket/templates/site_predictions.json',
          'parameters': SITE_TRIGGER['parameters'],
          'environment': {
              'maxWorkers': 20,
              'machineType': 'n2-standard-4',
              'serviceAccountEmail': 'jobs@local-project.iam.gserviceaccount.com',
              'tempLocation': 'gs://test-bucket/tmp',
              'sdkContainerImage': 'europe-west4-docker.pkg.dev/p/r/site_predictions:t'
          }
      }
  }


def test_structured_mode_event_launches_too(client, env, dataflow):
  gen = upload('triggers/a.json', json.dumps(SITE_TRIGGER))
  assert deliver(client, 'triggers/a.json', gen, structured=True).status_code == 200
  assert [l['jobName'] for l in dataflow.launches] == [f'site-predictions-a-{gen}']


def test_redelivered_event_launches_one_job_and_409_is_acknowledged(client, env, dataflow, capsys):
  gen = upload('triggers/a.json', json.dumps(SITE_TRIGGER))
  for _ in range(3):
    assert deliver(client, 'triggers/a.json', gen).status_code == 200
  names = {l['jobName'] for l in dataflow.launches}
  assert len(names) == 1 and len(dataflow.active) == 1
  outcomes = [
      json.loads(l)['outcome'] for l in capsys.readouterr().out.splitlines() if l.startswith('{')
  ]
  assert outcomes == ['launched', 'duplicate', 'duplicate']


def test_re_uploaded_trigger_file_is_a_new_run(client, env, dataflow):
  first = upload('triggers/a.json', json.dumps(SITE_TRIGGER))
  deliver(client, 'triggers/a.json', first)
  second = upload('triggers/a.json', json.dumps(SITE_TRIGGER))
  deliver(client, 'triggers/a.json', second)
  assert [l['jobName'] for l in dataflow.launches
          ] == [f'site-predictions-a-{first}', f'site-predictions-a-{second}']


def test_burst_of_uploads_launches_one_detection_job_and_loses_no_image(client, env, dataflow):
  names = [f'input-images/camera-{i % 3}/img{i:02d}.jpg' for i in range(20)]
  gens = [upload(n, b'jpeg bytes') for n in names]
  statuses = [deliver(client, n, g).status_code for n, g in zip(names, gens)]
  assert statuses[0] == 200 and set(statuses[1:]) == {500}, 'the rest are retried later'
  assert len(dataflow.active) == 1
  launch = dataflow.launches[0]
  assert launch['jobName'] == 'detect-test-bucket-input-images'
  assert launch['parameters'] == {
      **DETECT_FIXED, 'input': 'gs://test-bucket/input-images/',
      'output': f'gs://test-bucket/outputs/test-bucket-input-images/run-{gens[0]}',
      'move_inputs_to': 'gs://test-bucket/processed/test-bucket-input-images/'
  }
  assert launch['environment']['additionalExperiments'] == [
      'worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver'
  ]
  assert launch['environment']['machineType'] == 'g2-standard-4'

  # The job moves what it matched; one image arrives after its match.
  from google.cloud import storage  # pylint: disable=import-outside-toplevel
  bucket = storage.Client().bucket(BUCKET)
  for n in names:
    bucket.copy_blob(bucket.blob(n), bucket, n.replace('input-images/', 'processed/x/'))
    bucket.blob(n).delete()
  late = 'input-images/camera-0/late.png'
  late_gen = upload(late, b'png bytes')
  assert deliver(client, late, late_gen).status_code == 500  # job still running
  dataflow.finish('detect-test-bucket-input-images')

  before = len(dataflow.requests)
  retried = [deliver(client, n, g).status_code for n, g in zip(names[1:], gens[1:])]
  assert set(retried) == {200} and len(dataflow.requests) == before, 'already processed'
  assert deliver(client, late, late_gen).status_code == 200
  assert dataflow.launches[-1]['parameters']['output'].endswith(f'run-{late_gen}')
  assert len(dataflow.active) == 1


@pytest.mark.parametrize(
    'name',
    [
        'elsewhere/a.jpg',  # outside the watched prefixes
        'outputs/test-bucket-input-images/run-1/annotated/x-det.jpg',  # our output
        'processed/test-bucket-input-images/camera-1/x.jpg',  # our moved input
        'input-images/camera-1/notes.txt',  # not an image
        'input-images/camera-1/',  # folder placeholder
        'triggers/readme.txt',  # not a trigger file
        '_trigger_state/launches/site-predictions-a-1/1-0123456789abcdef.json',  # a launch record
    ])
def test_events_that_must_not_launch(client, env, dataflow, name):
  gen = upload(name, b'x') if not name.endswith('/') else 1
  assert deliver(client, name, gen).status_code == 200
  assert dataflow.requests == []


def test_events_from_other_buckets_are_ignored(client, env, dataflow):
  event = finalize_event('someone-elses-bucket', 'triggers/a.json', 1)
  headers, body = to_binary(event)
  assert client.post('/', headers=headers, data=body).status_code == 200
  assert dataflow.requests == []


def test_malformed_events(client, env, dataflow, capsys):
  event = finalize_event(BUCKET, 'triggers/a.json', 1)
  event.data = {'name': 'triggers/a.json'}  # no bucket
  headers, body = to_binary(event)
  assert client.post('/', headers=headers, data=body).status_code == 200
  event.data = {'bucket': BUCKET, 'name': 'triggers/a.json', 'generation': 'abc'}
  headers, body = to_binary(event)
  assert client.post('/', headers=headers, data=body).status_code == 200
  # No CloudEvent headers at all: the framework answers 400.
  assert client.post('/', data=b'{}', headers={
      'Content-Type': 'application/json'
  }).status_code == 400
  assert dataflow.requests == []
  reasons = [
      json.loads(l)['reason'] for l in capsys.readouterr().out.splitlines() if l.startswith('{')
  ]
  assert reasons == ['event data lacks bucket or name', "event generation 'abc' is not a number"]


def test_served_by_the_functions_framework_cli(env, dataflow, gcs_server):
  port = free_port()
  proc = subprocess.Popen([
      os.path.join(os.path.dirname(sys.executable), 'functions-framework'),
      '--target=on_object_finalized', f'--source={FUNCTION_SOURCE}', '--signature-type=cloudevent',
      '--host=127.0.0.1', f'--port={port}'
  ],
                          env=dict(os.environ),
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
  try:
    gen = upload('triggers/cli.json', json.dumps(SITE_TRIGGER))
    headers, body = to_binary(finalize_event(BUCKET, 'triggers/cli.json', gen))
    deadline = time.monotonic() + 120
    while True:
      try:
        request = urllib.request.Request(f'http://127.0.0.1:{port}/',
                                         data=body,
                                         headers=headers,
                                         method='POST')
        with urllib.request.urlopen(request, timeout=30) as response:
          assert response.status == 200
        break
      except urllib.error.URLError:
        assert time.monotonic() < deadline, 'functions-framework did not start'
        time.sleep(0.2)
  finally:
    proc.terminate()
    proc.wait(timeout=30)
  assert [l['jobName'] for l in dataflow.launches] == [f'site-predictions-cli-{gen}']


@pytest.mark.e2e
def test_local_mode_runs_the_job_from_an_uploaded_trigger_file(client, env, dataflow, monkeypatch,
                                                               tmp_path):
  import savedmodel_builders  # pylint: disable=import-outside-toplevel
  from conftest import upload_tree  # pylint: disable=import-outside-toplevel
  savedmodel_builders.save_linear(str(tmp_path / 'models' / 'lin' / '1'), [1.0, 2.0], 0.5)
  upload_tree(tmp_path / 'models', 'gs://test-bucket/models')
  rows = [{'site_id': 'lin', 'reading_id': f'r{i}', 'x': [i, 1.0]} for i in range(5)]
  upload('instances/day1/part-0.jsonl',
         '\n'.join(json.dumps(r) for r in rows) + '\n{"reading_id": "orphan"}\n')
  monkeypatch.setenv('LAUNCH_MODE', 'local')
  trigger = {
      'job': 'site_predictions',
      'parameters': {
          'input': 'gs://test-bucket/instances/day1/*.jsonl',
          'model_root': 'gs://test-bucket/models',
          'output': 'gs://test-bucket/predictions/day1',
          'key_field': 'reading_id',
          'max_failed_fraction': '0.2'
      }
  }
  gen = upload('triggers/day1.json', json.dumps(trigger))
  assert deliver(client, 'triggers/day1.json', gen).status_code == 200
  assert dataflow.requests == []

  summary = json.loads(paths.read_bytes('gs://test-bucket/predictions/day1/summary.json'))
  assert summary['records_read'] == 6 and summary['predictions_written'] == 5
  assert summary['failed'] == {'missing_site': 1} and summary['reconciled']
  lines = [
      json.loads(l) for m in paths.match('gs://test-bucket/predictions/day1/predictions/*')
      for l in paths.read_bytes(m.path).decode().splitlines()
  ]
  assert {
      l['key']: l['prediction']['y']
      for l in lines
  } == pytest.approx({f'r{i}': i * 1.0 + 2.0 + 0.5
                      for i in range(5)})
