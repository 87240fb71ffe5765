"""Shared fixtures: hermetic Google settings and the local GCS server.

The environment is set before any Google library runs: a pre-authorized fake
credential (no 23 s ``google.auth.default()`` wait, no network) and no
metadata-server probe. Subprocesses started by tests inherit it.
"""
import os
import pathlib
import sys

import pytest

from samples import local_cloud
from samples.local_cloud import free_port  # pylint: disable=unused-import

REPO = pathlib.Path(__file__).resolve().parents[1]
LOCAL_CREDENTIALS = REPO / 'samples' / 'local_credentials.json'

os.environ['GOOGLE_APPLICATION_CREDENTIALS'] = str(LOCAL_CREDENTIALS)
os.environ['NO_GCE_CHECK'] = 'true'
os.environ.setdefault('GOOGLE_CLOUD_PROJECT', 'local-project')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


@pytest.fixture(scope='session')
def gcs_server():
  """gcp-storage-emulator on 127.0.0.1, in memory; Beam's gs:// and
  google-cloud-storage both reach it through STORAGE_EMULATOR_HOST."""
  with local_cloud.gcs_server() as server:
    yield server


@pytest.fixture(scope='session')
def bigquery_server():
  """bqemulator on 127.0.0.1 with Beam's BigQuery connector pointed at it."""
  with local_cloud.bigquery_server() as server:
    undo = local_cloud.redirect_beam_bigquery(server)
    yield server
    undo()


@pytest.fixture
def gcs_bucket(gcs_server):
  """An empty bucket on the local GCS server; yields its ``gs://name``."""
  from google.cloud import storage  # pylint: disable=import-outside-toplevel
  gcs_server.wipe()
  client = storage.Client(project=os.environ['GOOGLE_CLOUD_PROJECT'])
  client.create_bucket('test-bucket')
  yield 'gs://test-bucket'


def upload_tree(local_dir: pathlib.Path, gs_prefix: str) -> None:
  """Copies a local folder to ``gs_prefix`` with Beam's FileSystems."""
  from common import paths  # pylint: disable=import-outside-toplevel
  for path in sorted(local_dir.rglob('*')):
    if path.is_file():
      rel = path.relative_to(local_dir).as_posix()
      paths.write_bytes(paths.join(gs_prefix, rel), path.read_bytes())


@pytest.fixture
def python_exe():
  return sys.executable
