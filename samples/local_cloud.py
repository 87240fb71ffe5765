"""Local stand-ins for Google Cloud: a GCS server and a BigQuery server on 127.0.0.1.

Used by the tests and by ``make demo-cloud``. The real client libraries and
Beam's own connectors talk to them:

- GCS: gcp-storage-emulator (in-process); google-cloud-storage and Beam's
  gs:// filesystem follow ``STORAGE_EMULATOR_HOST``.
- BigQuery: bqemulator (a subprocess, REST + gRPC); google-cloud-bigquery
  follows ``BIGQUERY_EMULATOR_HOST``. Beam's ``ReadFromBigQuery`` and
  ``WriteToBigQuery`` have no endpoint option, so :func:`redirect_beam_bigquery`
  swaps exactly two things: the apitools REST client factory
  (``BigQueryWrapper._bigquery_client``) and the Storage Read API client class
  ``apache_beam.io.gcp.bigquery`` instantiates. Everything else is Beam's
  production code. This only works in-process (the local runner's threads),
  not in multi-process mode.
"""
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Callable, Iterator, NamedTuple

PROJECT = 'local-project'


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@contextlib.contextmanager
def patched_env(**values: str) -> Iterator[None]:
  previous = {k: os.environ.get(k) for k in values}
  os.environ.update(values)
  try:
    yield
  finally:
    for key, value in previous.items():
      if value is None:
        os.environ.pop(key, None)
      else:
        os.environ[key] = value


@contextlib.contextmanager
def gcs_server() -> Iterator[object]:
  """gcp-storage-emulator in memory; yields the server (``.wipe()`` empties it)."""
  from gcp_storage_emulator.server import create_server  # pylint: disable=import-outside-toplevel
  port = free_port()
  server = create_server('127.0.0.1', port, in_memory=True)
  server.start()
  try:
    with patched_env(STORAGE_EMULATOR_HOST=f'http://127.0.0.1:{port}'):
      yield server
  finally:
    server.stop()


class BigQueryServer(NamedTuple):
  rest_port: int
  grpc_port: int
  project: str

  @property
  def rest_url(self) -> str:
    return f'http://127.0.0.1:{self.rest_port}'

  def client(self):
    """A google-cloud-bigquery client for the local server."""
    from google.api_core.client_options import ClientOptions  # pylint: disable=import-outside-toplevel
    from google.cloud import bigquery  # pylint: disable=import-outside-toplevel
    return bigquery.Client(
        project=self.project, client_options=ClientOptions(api_endpoint=self.rest_url))


def _wait_ready(url: str, proc: subprocess.Popen, log_path: str, timeout_s: float) -> None:
  deadline = time.monotonic() + timeout_s
  while True:
    if proc.poll() is not None:
      with open(log_path, encoding='utf-8', errors='replace') as f:
        raise RuntimeError(f'bqemulator exited with {proc.returncode}:\n{f.read()[-3000:]}')
    try:
      urllib.request.urlopen(url, timeout=1).close()
      return
    except (urllib.error.URLError, ConnectionError, OSError):
      if time.monotonic() > deadline:
        raise RuntimeError(f'bqemulator not ready after {timeout_s} s; log: {log_path}')
      time.sleep(0.2)


@contextlib.contextmanager
def bigquery_server(project: str = PROJECT, timeout_s: float = 90) -> Iterator[BigQueryServer]:
  """Starts bqemulator on free loopback ports; sets ``BIGQUERY_EMULATOR_HOST``."""
  server = BigQueryServer(free_port(), free_port(), project)
  exe = os.path.join(os.path.dirname(sys.executable), 'bqemulator')
  log = tempfile.NamedTemporaryFile(prefix='bqemulator-', suffix='.log', delete=False)
  proc = subprocess.Popen(
      [exe, 'start', '--rest-host', '127.0.0.1', '--rest-port', str(server.rest_port),
       '--grpc-host', '127.0.0.1', '--grpc-port', str(server.grpc_port),
       '--project', project, '--log-level', 'warning'],
      stdout=log, stderr=subprocess.STDOUT)
  try:
    _wait_ready(f'{server.rest_url}/bigquery/v2/projects/{project}/datasets',
                proc, log.name, timeout_s)
    with patched_env(BIGQUERY_EMULATOR_HOST=server.rest_url):
      yield server
  finally:
    proc.terminate()
    try:
      proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
      proc.kill()
    log.close()
    os.unlink(log.name)


def redirect_beam_bigquery(server: BigQueryServer) -> Callable[[], None]:
  """Points Beam's BigQuery connector at ``server``; returns the undo function."""
  # pylint: disable=import-outside-toplevel
  import grpc
  from apache_beam.io.gcp import bigquery as beam_bigquery
  from apache_beam.io.gcp import bigquery_tools
  from apache_beam.io.gcp.internal.clients import bigquery as bigquery_api
  from google.cloud import bigquery_storage_v1
  from google.cloud.bigquery_storage_v1.services.big_query_read.transports import (
      BigQueryReadGrpcTransport)

  grpc_target = f'127.0.0.1:{server.grpc_port}'
  rest_url = f'{server.rest_url}/bigquery/v2/'

  class LocalReadClient(bigquery_storage_v1.BigQueryReadClient):
    def __init__(self, *unused_args, **unused_kwargs):
      super().__init__(transport=BigQueryReadGrpcTransport(
          channel=grpc.insecure_channel(grpc_target)))

  def local_rest_client(unused_options):
    return bigquery_api.BigqueryV2(
        url=rest_url, get_credentials=False, credentials=None, response_encoding='utf8')

  original_client = bigquery_tools.BigQueryWrapper.__dict__['_bigquery_client']
  original_read = beam_bigquery.bq_storage.BigQueryReadClient
  bigquery_tools.BigQueryWrapper._bigquery_client = staticmethod(local_rest_client)
  beam_bigquery.bq_storage.BigQueryReadClient = LocalReadClient

  def undo() -> None:
    bigquery_tools.BigQueryWrapper._bigquery_client = original_client
    beam_bigquery.bq_storage.BigQueryReadClient = original_read
  return undo
