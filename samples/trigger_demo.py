"""``make trigger-demo``: a trigger file upload launches the per-site job, all on this machine.

What runs, each the real component:

1. the local GCS server (gcp-storage-emulator) with a bucket holding the
   demo's site models and instances;
2. the trigger function served by the functions-framework CLI, in local
   launch mode (``LAUNCH_MODE=local``: it runs the job on Beam's local runner
   in its own process instead of calling the Dataflow API);
3. a trigger file uploaded with google-cloud-storage, and the GCS finalize
   CloudEvent for that upload posted to the function. There is no local
   stand-in for Eventarc, so this script delivers the event itself, in the
   binary CloudEvent mode Eventarc uses.

It ends by printing the launched job's ``summary.json``, read back from GCS,
and copies the job's outputs to ``--output`` so they can be looked at.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.error
import urllib.request

from samples import local_cloud
from samples import site_demo

REPO = pathlib.Path(__file__).resolve().parents[1]
FUNCTION_SOURCE = REPO / 'functions' / 'trigger' / 'main.py'
BUCKET = 'demo-bucket'
FINALIZED = 'google.cloud.storage.object.v1.finalized'


def _upload_tree(client, local_dir: pathlib.Path, prefix: str) -> None:
  bucket = client.bucket(BUCKET)
  for path in sorted(local_dir.rglob('*')):
    if path.is_file():
      bucket.blob(f'{prefix}/{path.relative_to(local_dir).as_posix()}').upload_from_filename(
          str(path))


def _serve_function(port: int, log_path: pathlib.Path) -> subprocess.Popen:
  env = dict(os.environ, LAUNCH_MODE='local', PROJECT=local_cloud.PROJECT,
             TRIGGER_PREFIX='triggers/', PYTHONPATH=str(REPO),
             # Local mode validates against the template's own metadata file.
             SITE_PREDICTIONS_TEMPLATE=str(REPO / 'templates' / 'site_predictions' / 'metadata.json'))
  exe = os.path.join(os.path.dirname(sys.executable), 'functions-framework')
  with open(log_path, 'wb') as log:
    return subprocess.Popen(
        [exe, '--target=on_object_finalized', f'--source={FUNCTION_SOURCE}',
         '--signature-type=cloudevent', '--host=127.0.0.1', f'--port={port}'],
        env=env, stdout=log, stderr=subprocess.STDOUT)


def _post_finalize_event(port: int, name: str, generation: int, size: int,
                         timeout_s: float) -> int:
  """Posts the upload's finalize event (retrying until the server is up); the HTTP status."""
  body = json.dumps({'bucket': BUCKET, 'name': name, 'generation': str(generation),
                     'metageneration': '1', 'size': str(size),
                     'contentType': 'application/json'}).encode()
  headers = {
      'Content-Type': 'application/json', 'ce-specversion': '1.0', 'ce-type': FINALIZED,
      'ce-id': f'demo-{generation}',
      'ce-source': f'//storage.googleapis.com/projects/_/buckets/{BUCKET}',
      'ce-subject': f'objects/{name}'}
  deadline = time.monotonic() + timeout_s
  while True:
    request = urllib.request.Request(f'http://127.0.0.1:{port}/', data=body, headers=headers,
                                     method='POST')
    try:
      with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return response.status
    except urllib.error.HTTPError as e:
      return e.code
    except (urllib.error.URLError, ConnectionError):
      if time.monotonic() > deadline:
        raise
      time.sleep(0.3)


def _download_prefix(client, prefix: str, local_dir: pathlib.Path) -> None:
  for blob in client.list_blobs(BUCKET, prefix=prefix + '/'):
    target = local_dir / blob.name[len(prefix) + 1:]
    target.parent.mkdir(parents=True, exist_ok=True)
    blob.download_to_filename(str(target))


def run_demo(output_dir: str) -> int:
  """Runs the whole chain; returns 0 when the launched job's summary says it worked."""
  from google.cloud import storage  # pylint: disable=import-outside-toplevel
  output = pathlib.Path(output_dir).resolve()
  data_dir = output / 'sample-data' / 'sites'
  site_demo.prepare(str(data_dir))
  with local_cloud.gcs_server():
    client = storage.Client(project=local_cloud.PROJECT)
    client.create_bucket(BUCKET)
    _upload_tree(client, data_dir / 'models', 'models')
    _upload_tree(client, data_dir / 'instances', 'instances/nightly')
    print(f'Uploaded the demo models and instances to gs://{BUCKET}', flush=True)

    port = local_cloud.free_port()
    log_path = output / 'trigger-function.log'
    output.mkdir(parents=True, exist_ok=True)
    server = _serve_function(port, log_path)
    try:
      trigger = {'job': 'site_predictions', 'parameters': {
          'input': f'gs://{BUCKET}/instances/nightly/*.jsonl',
          'model_root': f'gs://{BUCKET}/models',
          'output': f'gs://{BUCKET}/predictions/nightly',
          'key_field': 'reading_id'}}
      blob = client.bucket(BUCKET).blob('triggers/nightly.json')
      blob.upload_from_string(json.dumps(trigger), content_type='application/json')
      blob.reload()
      print(f'Uploaded gs://{BUCKET}/triggers/nightly.json (generation {blob.generation}); '
            'delivering its finalize event to the function ...', flush=True)
      status = _post_finalize_event(port, blob.name, blob.generation, blob.size, 600)
    finally:
      server.terminate()
      server.wait(timeout=30)
    print(f'The function answered HTTP {status}; its log: {log_path}')
    for line in log_path.read_text(errors='replace').splitlines():
      if line.startswith('{'):
        print('  ' + line)
    summary_blob = client.bucket(BUCKET).blob('predictions/nightly/summary.json')
    if not summary_blob.exists():
      print('error: the launched job wrote no summary.json; see the function log above',
            file=sys.stderr)
      return 1
    summary = json.loads(summary_blob.download_as_bytes())
    local_copy = output / 'trigger-demo'
    _download_prefix(client, 'predictions/nightly', local_copy)
  print(f'The launched job\'s outputs, copied from gs://{BUCKET}/predictions/nightly to '
        f'{local_copy}; its summary:')
  print(json.dumps(summary, indent=2, sort_keys=True))
  return 0 if status < 300 and summary.get('reconciled') else 1


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
  parser.add_argument('--output', default='demo-output',
                      help='Folder for the sample data, the function log and the job outputs.')
  args = parser.parse_args(argv)
  return run_demo(args.output)


if __name__ == '__main__':
  sys.exit(main())
