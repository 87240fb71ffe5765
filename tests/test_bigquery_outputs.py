"""The per-site job's BigQuery layouts against the local BigQuery server (bqemulator): a
dataset ``--output_table`` (Vertex-style ``predictions`` and ``errors`` tables) and
``--sites_table`` (one row per site, as ``sites/sites-*.jsonl``)."""
import collections
import json

import pytest

import savedmodel_builders
import site_job_data
from beam_jobs import site_predictions
from tests_support import read_jsonl
from transforms.site import bigquery_output

pytestmark = [pytest.mark.e2e, pytest.mark.bigquery]

PROJECT = 'local-project'


@pytest.fixture(scope='module')
def vertex_run(bigquery_server, tmp_path_factory):
  root = tmp_path_factory.mktemp('bq-outputs')
  savedmodel_builders.build_model_root(str(root / 'models'))
  site_job_data.write_inputs(root / 'input')
  client = bigquery_server.client()
  client.create_dataset('vx')
  out = root / 'out'
  site_predictions.run([
      f'--input={root}/input/*.jsonl', f'--model_root={root}/models', f'--output={out}',
      f'--project={PROJECT}', '--key_field=rid', '--max_failed_fraction=1',
      f'--output_table={PROJECT}:vx', f'--sites_table={PROJECT}:vx.sites',
      '--bigquery_write_method=STREAMING_INSERTS', '--run_id=vx-1'
  ])
  return out, client


def _types(client, table):
  return {f.name: (f.field_type, f.mode) for f in client.get_table(table).schema}


def test_dataset_output_has_vertex_style_predictions_table(vertex_run):
  out, client = vertex_run
  types = _types(client, f'{PROJECT}.vx.predictions')
  assert types['instance'] == ('JSON', 'REQUIRED') and types['prediction'] == ('JSON', 'REQUIRED')
  assert types['key'] == ('STRING', 'NULLABLE')
  lines = {l['key']: l for l in read_jsonl(out / 'predictions')}
  rows = list(client.list_rows(f'{PROJECT}.vx.predictions'))
  assert sorted(r['key'] for r in rows) == sorted(lines) == sorted(r['rid']
                                                                   for r in site_job_data.GOOD_ROWS)
  for row in rows:
    line = lines[row['key']]
    assert row['instance'] == line['instance'] and row['prediction'] == line['prediction']
    assert row['model_version'] == line['model_version'] and row['run_id'] == 'vx-1'
    assert row['site_id'] == str(line['site_id'])
  # JSON columns answer JSON functions, as a user would query them.
  [hit] = client.query(f"SELECT JSON_VALUE(instance, '$.note') AS note FROM "
                       f"`{PROJECT}.vx.predictions` WHERE key = 'a1'").result()
  assert hit['note'] == 'kept as is'


def test_dataset_output_has_vertex_style_errors_table(vertex_run):
  out, client = vertex_run
  types = _types(client, f'{PROJECT}.vx.errors')
  assert types['instance'] == ('JSON', 'NULLABLE') and types['errors'] == ('RECORD', 'NULLABLE')
  letters = read_jsonl(out / 'errors')
  rows = list(client.list_rows(f'{PROJECT}.vx.errors'))
  assert collections.Counter(r['reason'] for r in rows) == collections.Counter(
      l['reason'] for l in letters) == collections.Counter(site_job_data.expected_failures())
  by_key = {r['key']: r for r in rows if r['key'] is not None}
  assert by_key['nomodel']['errors']['code'] == bigquery_output.NOT_FOUND
  assert by_key['corrupt']['errors']['code'] == bigquery_output.INTERNAL
  assert by_key['shortx']['errors']['code'] == bigquery_output.INVALID_ARGUMENT
  assert by_key['shortx']['instance'] == {'site_id': 'lin-a', 'rid': 'shortx', 'x': [1.0, 2.0]}
  letter = next(l for l in letters
                if isinstance(l['record'], dict) and l['record'].get('rid') == 'shortx')
  assert by_key['shortx']['errors']['message'] == letter['message']
  [bad_json] = [r for r in rows if r['reason'] == 'bad_json']
  assert bad_json['key'] is None and bad_json['instance'] == '{"site_id": "lin-a", "rid": '
  assert all(r['run_id'] == 'vx-1' and r['failed_at'] is not None for r in rows)


def test_sites_table_rows_equal_the_site_lines(vertex_run):
  out, client = vertex_run
  lines = {l['site_id']: l for l in read_jsonl(out / 'sites')}
  rows = list(client.list_rows(f'{PROJECT}.vx.sites'))
  assert len(rows) == len(lines)
  for row in rows:
    line = lines[row['site_id']]
    got = dict(row)
    assert {r['reason']: r['count'] for r in got.pop('failed_by_reason')} == \
        line['failed_by_reason']
    assert got.pop('run_id') == 'vx-1' and got.pop('written_at') is not None
    assert got == {k: v for k, v in line.items() if k != 'failed_by_reason'}
  assert sum(r['rows'] for r in rows) == json.loads(
      (out / 'summary.json').read_text())['records_read']
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['bigquery_rejected'] == 0
  assert summary['provenance']['flags']['output_table'] == f'{PROJECT}:vx'
  assert summary['provenance']['flags']['sites_table'] == f'{PROJECT}:vx.sites'


@pytest.mark.parametrize('args, flag', [
    (['--output_table=my-project:ds', '--errors_table=my-project:ds.errs'], 'errors_table'),
    (['--output_table=my-project:bad-dataset!'], 'output_table'),
    (['--sites_table=my-project:ds'], 'sites_table'),
])
def test_dataset_and_sites_table_specs_are_checked_before_the_run(tmp_path, capsys, args, flag):
  (tmp_path / 'models' / 'a').mkdir(parents=True)
  assert site_predictions.main([
      f'--model_root={tmp_path}/models', f'--output={tmp_path}/out', '--input_table=my-project:d.t',
      *args
  ]) == 2
  assert f'--{flag}:' in capsys.readouterr().err
