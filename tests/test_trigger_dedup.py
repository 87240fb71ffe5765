"""Launch de-duplication that survives the job's end (launch records in GCS).

gcp-storage-emulator, the suite's usual GCS server, ignores ``ifGenerationMatch``
(shown below), so these tests run the function against fake-gcs-server, which
honours it as GCS does (412 Precondition Failed), and also honours the
``generation`` of a download.
"""
import json
import threading
import time

import pytest
from google.api_core import exceptions as api_exceptions

from trigger_support import SITE_TRIGGER
from trigger_support import RecordingDataflow
from trigger_support import client  # noqa: F401  pylint: disable=unused-import
from trigger_support import dataflow  # noqa: F401  pylint: disable=unused-import
from trigger_support import deliver
from trigger_support import fake_bucket  # noqa: F401  pylint: disable=unused-import
from trigger_support import fake_gcs  # noqa: F401  pylint: disable=unused-import
from trigger_support import fake_gcs_env  # noqa: F401  pylint: disable=unused-import
from trigger_support import function_client
from trigger_support import log_lines
from trigger_support import upload

BUCKET = 'test-bucket'
TRIGGER = json.dumps(SITE_TRIGGER)


@pytest.fixture
def bucket(fake_bucket):
  return fake_bucket


def outcomes(capsys):
  return [l['outcome'] for l in log_lines(capsys.readouterr().out)]


def records(bucket):
  return {
      b.name: json.loads(b.download_as_bytes())
      for b in bucket.client.list_blobs(BUCKET, prefix='_trigger_state/')
  }


# -- the servers ---------------------------------------------------------------


def test_fake_gcs_server_refuses_to_create_an_existing_object(bucket):
  blob = bucket.blob('x')
  blob.upload_from_string(b'one', if_generation_match=0)
  with pytest.raises(api_exceptions.PreconditionFailed):
    bucket.blob('x').upload_from_string(b'two', if_generation_match=0)
  with pytest.raises(api_exceptions.PreconditionFailed):
    bucket.blob('x').upload_from_string(b'two', if_generation_match=blob.generation + 1)
  assert bucket.blob('x').download_as_bytes() == b'one'


@pytest.mark.gcs
def test_gcp_storage_emulator_ignores_if_generation_match(gcs_bucket):
  """Why the tests above use fake-gcs-server: the emulator overwrites anyway.

  If this starts failing, the emulator learnt preconditions and these tests
  could move back to it.
  """
  from google.cloud import storage  # pylint: disable=import-outside-toplevel
  emulated = storage.Client().bucket('test-bucket')
  emulated.blob('x').upload_from_string(b'one', if_generation_match=0)
  emulated.blob('x').upload_from_string(b'two', if_generation_match=0)
  assert emulated.blob('x').download_as_bytes() == b'two'


# -- one event, one launch -------------------------------------------------------


def test_redelivery_after_the_job_finished_does_not_launch_again(client, fake_gcs_env, dataflow,
                                                                 bucket, capsys):
  gen = upload('triggers/nightly.json', TRIGGER)
  assert deliver(client, 'triggers/nightly.json', gen).status_code == 200
  name = dataflow.launches[0]['jobName']
  dataflow.finish(name)  # the job ran and ended: its name is free again
  for _ in range(2):
    assert deliver(client, 'triggers/nightly.json', gen).status_code == 200
  assert len(dataflow.requests) == 1
  assert outcomes(capsys) == ['launched', 'duplicate', 'duplicate']


def test_launch_record_layout(client, fake_gcs_env, dataflow, bucket, capsys):
  gen = upload('triggers/nightly.json', TRIGGER)
  deliver(client, 'triggers/nightly.json', gen, event_id='evt-1')
  line, = log_lines(capsys.readouterr().out)
  (name, record), = records(bucket).items()
  job_name = f'site-predictions-nightly-{gen}'
  assert name.startswith(f'_trigger_state/launches/{job_name}/{gen}-') and name.endswith('.json')
  assert line['launch_record'] == f'gs://{BUCKET}/{name}'
  assert record == {
      'state': 'launched',
      'event': f'gs://{BUCKET}/triggers/nightly.json',
      'bucket': BUCKET,
      'object': 'triggers/nightly.json',
      'generation': str(gen),
      'event_id': 'evt-1',
      'job': 'site_predictions',
      'job_name': job_name,
      'job_id': line['job_id'],
      'attempt': 1,
      'claimed_at': record['claimed_at'],
      'launched_at': record['launched_at']
  }
  assert 0 <= record['launched_at'] - record['claimed_at'] < 60
  assert abs(record['claimed_at'] - time.time()) < 120


def test_concurrent_deliveries_launch_once(client, fake_gcs_env, bucket, capsys, monkeypatch):
  gen = upload('triggers/nightly.json', TRIGGER)
  with RecordingDataflow(delay_s=1.0) as slow:
    monkeypatch.setenv('DATAFLOW_ENDPOINT', slow.url)
    statuses = []
    # Clients made one at a time: Flask compiles its routes with ast.parse, which CPython
    # 3.11 may fail when threads run it at once (SystemError: AST constructor recursion
    # depth mismatch). The deliveries themselves are what runs concurrently.
    clients = [function_client() for _ in range(4)]
    threads = [
        threading.Thread(target=lambda c=c: statuses.append(
            deliver(c, 'triggers/nightly.json', gen).status_code)) for c in clients
    ]
    for t in threads:
      t.start()
    for t in threads:
      t.join()
    assert len(slow.requests) == 1
  seen = outcomes(capsys)
  assert sorted(seen) == ['launched'] + ['retry_later'] * 3, seen
  assert sorted(statuses) == [200, 500, 500, 500]
  assert deliver(client, 'triggers/nightly.json', gen).status_code == 200  # GCS's retry
  assert outcomes(capsys) == ['duplicate']


def test_re_uploaded_trigger_file_is_a_new_run(client, fake_gcs_env, dataflow, bucket):
  first = upload('triggers/a.json', TRIGGER)
  deliver(client, 'triggers/a.json', first)
  dataflow.finish(f'site-predictions-a-{first}')
  second = upload('triggers/a.json', TRIGGER)
  deliver(client, 'triggers/a.json', second)
  deliver(client, 'triggers/a.json', second)
  assert [l['jobName'] for l in dataflow.launches
          ] == [f'site-predictions-a-{first}', f'site-predictions-a-{second}']


def test_an_event_for_a_replaced_version_is_skipped(client, fake_gcs_env, dataflow, bucket, capsys):
  first = upload('triggers/a.json', TRIGGER)
  second = upload('triggers/a.json', TRIGGER)
  assert deliver(client, 'triggers/a.json', first).status_code == 200
  assert outcomes(capsys) == ['skipped']
  assert deliver(client, 'triggers/a.json', second).status_code == 200
  assert [l['jobName'] for l in dataflow.launches] == [f'site-predictions-a-{second}']


# -- failures between the record and the launch ---------------------------------


def test_a_failed_launch_releases_the_record_so_the_retry_launches(client, fake_gcs_env, dataflow,
                                                                   bucket, capsys):
  gen = upload('triggers/nightly.json', TRIGGER)
  dataflow.answer_next(503, 'UNAVAILABLE')
  assert deliver(client, 'triggers/nightly.json', gen).status_code == 500
  assert records(bucket) == {}
  assert deliver(client, 'triggers/nightly.json', gen).status_code == 200
  assert len(dataflow.requests) == 2 and len(dataflow.active) == 1
  assert outcomes(capsys) == ['error', 'launched']
  assert [r['state'] for r in records(bucket).values()] == ['launched']


def test_a_launch_dataflow_refuses_is_rejected_not_retried(client, fake_gcs_env, dataflow, bucket,
                                                           capsys):
  gen = upload('triggers/nightly.json', TRIGGER)
  dataflow.answer_next(400, 'INVALID_ARGUMENT')
  assert deliver(client, 'triggers/nightly.json', gen).status_code == 200
  line, = log_lines(capsys.readouterr().out)
  assert (line['outcome'], line['code']) == ('rejected', 'launch_refused'), line
  assert 'INVALID_ARGUMENT' in line['reason'] and records(bucket) == {}


def test_409_on_the_first_delivery_is_a_duplicate_and_recorded(client, fake_gcs_env, dataflow,
                                                               bucket, capsys):
  gen = upload('triggers/nightly.json', TRIGGER)
  name = f'site-predictions-nightly-{gen}'
  dataflow.active.add(name)  # an earlier delivery launched it; its record was lost
  assert deliver(client, 'triggers/nightly.json', gen).status_code == 200
  dataflow.finish(name)
  assert deliver(client, 'triggers/nightly.json', gen).status_code == 200
  assert len(dataflow.requests) == 1
  assert outcomes(capsys) == ['duplicate', 'duplicate']
  assert [r['state'] for r in records(bucket).values()] == ['launched']


def _abandoned_claim(bucket, gen, claimed_at):
  from launch_records import record_name  # pylint: disable=import-outside-toplevel
  job_name = f'site-predictions-nightly-{gen}'
  name = record_name('_trigger_state/', job_name, BUCKET, 'triggers/nightly.json', str(gen))
  bucket.blob(name).upload_from_string(
      json.dumps({
          'state': 'launching',
          'job_name': job_name,
          'attempt': 1,
          'claimed_at': claimed_at
      }))
  return name


def test_a_claim_abandoned_mid_launch_is_taken_over(client, fake_gcs_env, dataflow, bucket, capsys,
                                                    function_modules):
  del function_modules
  gen = upload('triggers/nightly.json', TRIGGER)
  name = _abandoned_claim(bucket, gen, time.time() - 3600)  # that delivery died an hour ago
  assert deliver(client, 'triggers/nightly.json', gen).status_code == 200
  assert outcomes(capsys) == ['launched'] and len(dataflow.requests) == 1
  record = records(bucket)[name]
  assert (record['state'], record['attempt']) == ('launched', 2)


def test_a_claim_younger_than_the_timeout_is_retried_later(client, fake_gcs_env, dataflow, bucket,
                                                           capsys, function_modules):
  del function_modules
  gen = upload('triggers/nightly.json', TRIGGER)
  _abandoned_claim(bucket, gen, time.time() - 5)
  assert deliver(client, 'triggers/nightly.json', gen).status_code == 500
  assert outcomes(capsys) == ['retry_later'] and dataflow.requests == []


@pytest.fixture
def function_modules(monkeypatch):
  """Makes the function's own modules importable here (for record_name)."""
  from trigger_support import FUNCTION_SOURCE  # pylint: disable=import-outside-toplevel
  monkeypatch.syspath_prepend(str(FUNCTION_SOURCE.parent))


@pytest.mark.parametrize('prefix', ['triggers/state/', 'input-images/', '/'])
def test_a_state_prefix_inside_a_watched_one_is_a_deploy_error(client, fake_gcs_env, dataflow,
                                                               capsys, monkeypatch, prefix):
  monkeypatch.setenv('STATE_PREFIX', prefix)
  gen = upload('triggers/nightly.json', TRIGGER)
  assert deliver(client, 'triggers/nightly.json', gen).status_code == 500
  line, = log_lines(capsys.readouterr().out)
  assert (line['outcome'], line['severity']) == ('error', 'ERROR')
  assert 'STATE_PREFIX' in line['reason']
  assert dataflow.requests == []


# -- upload mode ------------------------------------------------------------------


def test_upload_event_redelivered_after_its_job_ended_does_not_launch_again(
    client, fake_gcs_env, dataflow, bucket, capsys):
  """The job failed and left the image in place; GCS delivers its event again."""
  gen = upload('input-images/cam-1/a.jpg', b'jpeg bytes')
  assert deliver(client, 'input-images/cam-1/a.jpg', gen).status_code == 200
  other = upload('input-images/cam-1/b.jpg', b'jpeg bytes')
  assert deliver(client, 'input-images/cam-1/b.jpg', other).status_code == 500  # job runs
  dataflow.finish('detect-test-bucket-input-images')
  assert deliver(client, 'input-images/cam-1/a.jpg', gen).status_code == 200
  assert outcomes(capsys) == ['launched', 'retry_later', 'duplicate']
  assert deliver(client, 'input-images/cam-1/b.jpg', other).status_code == 200  # its retry
  assert len(dataflow.active) == 1 and len(dataflow.launches) == 3
  assert dataflow.launches[-1]['parameters']['output'].endswith(f'run-{other}')
