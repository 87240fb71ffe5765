"""``make demo-cloud``: the per-site job from a BigQuery table to gs:// and BigQuery,
with both served on 127.0.0.1 (see samples/local_cloud.py); nothing reaches Google.

Seeds the sample readings into ``local-project:energy.readings`` on the local
BigQuery server, uploads the sample models to ``gs://demo-models`` on the local
GCS server, runs ``site_predictions`` with ``--input_table`` and
``--output=gs://demo-predictions/...`` plus ``--output_table``, then copies the
gs:// outputs to a local folder (the servers live only as long as the demo).
"""
import json
import os

from beam_jobs import site_predictions
from samples import energy_sites
from samples import local_cloud
from samples import site_demo
from common import paths

DATASET = 'energy'
SCHEMA = [
    ('site_id', 'STRING'), ('reading_id', 'STRING'), ('hour', 'INT64'),
    ('temperature_c', 'FLOAT64'), ('occupancy', 'NUMERIC'), ('floor_area_m2', 'INT64')]


def _seed_bigquery(server: local_cloud.BigQueryServer, rows) -> str:
  from google.cloud import bigquery  # pylint: disable=import-outside-toplevel
  client = server.client()
  client.create_dataset(DATASET)
  client.create_dataset('beam_temp')
  table = f'{server.project}.{DATASET}.readings'
  client.create_table(bigquery.Table(
      table, schema=[bigquery.SchemaField(n, t) for n, t in SCHEMA]))
  errors = client.insert_rows_json(table, [{**r, 'occupancy': str(r['occupancy'])} for r in rows])
  if errors:
    raise RuntimeError(f'seeding {table} failed: {errors[:3]}')
  return f'{server.project}:{DATASET}.readings'


def _upload(local_dir: str, gs_prefix: str) -> None:
  for folder, _, files in os.walk(local_dir):
    for name in files:
      path = os.path.join(folder, name)
      rel = os.path.relpath(path, local_dir).replace(os.sep, '/')
      with open(path, 'rb') as f:
        paths.write_bytes(paths.join(gs_prefix, rel), f.read())


def _download(gs_prefix: str, local_dir: str) -> None:
  for meta in paths.iter_tree(gs_prefix):
    target = os.path.join(local_dir, *paths.relative_to(meta.path, gs_prefix).split('/'))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, 'wb') as f:
      f.write(paths.read_bytes(meta.path))


def run_demo(output_dir: str) -> None:
  data_dir = os.path.join(output_dir, 'sample-data', 'sites')
  site_demo.prepare(data_dir)
  sites = [energy_sites.site_name(i) for i in range(site_demo.N_SITES)]
  rows = energy_sites.generate_rows(sites, site_demo.HOURS)
  with local_cloud.gcs_server(), local_cloud.bigquery_server() as bq:
    undo = local_cloud.redirect_beam_bigquery(bq)
    try:
      from google.cloud import storage  # pylint: disable=import-outside-toplevel
      gcs = storage.Client(project=bq.project)
      gcs.create_bucket('demo-models')
      gcs.create_bucket('demo-predictions')
      print('Uploading sample models to gs://demo-models (local GCS server) ...', flush=True)
      _upload(os.path.join(data_dir, 'models'), 'gs://demo-models')
      table = _seed_bigquery(bq, rows)
      out = 'gs://demo-predictions/nightly'
      site_predictions.run([
          f'--input_table={table}', '--model_root=gs://demo-models', f'--output={out}',
          f'--project={bq.project}', '--bigquery_temp_dataset=beam_temp',
          '--key_field=reading_id',
          f'--output_table={bq.project}:{DATASET}.predictions',
          '--bigquery_write_method=STREAMING_INSERTS'])
      copied = os.path.join(output_dir, 'local-cloud', 'demo-predictions', 'nightly')
      _download(out, copied)
      written = list(bq.client().list_rows(f'{bq.project}.{DATASET}.predictions', max_results=3))
      print(f'BigQuery {bq.project}:{DATASET}.predictions, first rows:')
      for r in written:
        print('  ', json.dumps({k: str(v) for k, v in r.items()}))
      print(f'Copied {out} to {copied} (the local servers stop with the demo).')
    finally:
      undo()
