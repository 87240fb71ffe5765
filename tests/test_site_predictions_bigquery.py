"""The per-site job reading from and writing to BigQuery through Beam's own connector,
against the local BigQuery server (bqemulator) started by the ``bigquery_server`` fixture."""
import collections
import datetime
import decimal
import json

import numpy as np
import pytest
from google.cloud import bigquery

from beam_jobs import site_predictions
import savedmodel_builders
from tests_support import read_jsonl

pytestmark = [pytest.mark.e2e, pytest.mark.bigquery]

PROJECT = 'local-project'
SCHEMA = [
    bigquery.SchemaField('site_id', 'STRING'),
    bigquery.SchemaField('rid', 'STRING'),
    bigquery.SchemaField('x', 'FLOAT64', mode='REPEATED'),
    bigquery.SchemaField('a', 'NUMERIC'),
    bigquery.SchemaField('b', 'INT64'),
    bigquery.SchemaField('key', 'STRING'),
    bigquery.SchemaField('note', 'STRING'),
    bigquery.SchemaField('day', 'DATE'),
    bigquery.SchemaField(
        'extra',
        'RECORD',
        fields=[bigquery.SchemaField('source', 'STRING'),
                bigquery.SchemaField('score', 'FLOAT64')]),
]
GOOD = [
    {
        'site_id': 'lin-a',
        'rid': 'a1',
        'x': [1.0, 2.0, 3.0],
        'day': '2026-11-20',
        'extra': {
            'source': 'meter',
            'score': 0.5
        }
    },
    {
        'site_id': 'lin-a',
        'rid': 'a2',
        'x': [0.5, -1.0, 4.0],
        'a': '7.25'
    },
    {
        'site_id': 'multi',
        'rid': 'm1',
        'a': '1.5',
        'b': 3
    },
    {
        'site_id': 'multi',
        'rid': 'm2',
        'a': '-0.125',
        'b': -4
    },
    {
        'site_id': 'echo',
        'rid': 'e1',
        'key': 'k-1',
        'x': [0.1, 0.2]
    },
    {
        'site_id': 'echo',
        'rid': 'e2',
        'key': 'k-2',
        'x': [3.0, -1.0]
    },
]
BAD = [
    ({
        'site_id': None,
        'rid': 'nullsite',
        'x': [1.0, 2.0, 3.0]
    }, 'missing_site'),
    ({
        'site_id': 'texty',
        'rid': 'textnote',
        'note': 'warm'
    }, 'bad_feature'),
    ({
        'site_id': 'multi',
        'rid': 'nullb',
        'a': '2.0'
    }, 'missing_feature'),
    ({
        'site_id': 'lin-a',
        'rid': 'shortx',
        'x': [1.0]
    }, 'bad_feature'),
    ({
        'site_id': 'ghost',
        'rid': 'nomodel',
        'x': [1.0, 2.0, 3.0]
    }, 'no_model'),
]


@pytest.fixture(scope='module')
def seeded(bigquery_server, tmp_path_factory):
  root = tmp_path_factory.mktemp('bq')
  models = root / 'models'
  dirs = savedmodel_builders.build_model_root(str(models))
  dirs['texty'] = savedmodel_builders.save_doubler(str(models / 'texty' / '1'), 'note')
  client = bigquery_server.client()
  client.create_dataset('nightly')
  client.create_dataset('beam_temp')
  client.create_table(bigquery.Table(f'{PROJECT}.nightly.readings', schema=SCHEMA))
  rows = GOOD + [row for row, _ in BAD]
  assert client.insert_rows_json(f'{PROJECT}.nightly.readings', rows) == []
  return root, dirs, client


def run_job(root, *extra):
  site_predictions.run([
      f'--input_table={PROJECT}:nightly.readings', f'--model_root={root}/models',
      f'--project={PROJECT}', '--bigquery_temp_dataset=beam_temp', '--key_field=rid',
      '--max_failed_fraction=1', *extra
  ])


def as_model_input(row):
  """What the model sees: NUMERIC arrives as Decimal and is cast like a JSON number."""
  return {k: float(decimal.Decimal(v)) if k == 'a' else v for k, v in row.items() if v is not None}


def test_table_rows_predicted_and_written_back(seeded):
  root, dirs, client = seeded
  out = root / 'out'
  run_job(root, f'--output={out}', f'--output_table={PROJECT}:nightly.predictions',
          f'--errors_table={PROJECT}:nightly.prediction_errors',
          '--bigquery_write_method=STREAMING_INSERTS', '--run_id=test-run-1')

  lines = {l['key']: l for l in read_jsonl(out / 'predictions')}
  assert sorted(lines) == sorted(r['rid'] for r in GOOD)
  for row in GOOD:
    expected = savedmodel_builders.call_directly(dirs[row['site_id']], as_model_input(row))
    for name, value in expected.items():
      got = lines[row['rid']]['prediction'][name]
      if isinstance(value, bytes):
        assert got == value.decode()
      else:
        np.testing.assert_allclose(got, value, rtol=1e-6)
  a1 = lines['a1']['instance']
  assert a1['day'] == '2026-11-20' and a1['extra'] == {'source': 'meter', 'score': 0.5}
  assert lines['m1']['instance']['a'] == 1.5 and lines['m1']['instance']['b'] == 3

  letters = {l['record']['rid']: l['reason'] for l in read_jsonl(out / 'errors')}
  assert letters == {row['rid']: reason for row, reason in BAD}
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['records_read'] == len(GOOD) + len(BAD)
  assert summary['reconciled'] and summary['run_id'] == 'test-run-1'
  assert summary['bigquery_rejected'] == 0

  table_rows = list(client.list_rows(f'{PROJECT}.nightly.predictions'))
  assert len(table_rows) == len(GOOD)
  for r in table_rows:
    assert r['run_id'] == 'test-run-1'
    assert isinstance(r['predicted_at'], datetime.datetime)
    line = lines[r['key']]
    assert r['site_id'] == line['site_id']
    assert json.loads(r['prediction']) == line['prediction']
    assert json.loads(r['instance']) == line['instance']
  versions = {r['key']: r['model_version'] for r in table_rows}
  assert versions['a1'] == '2' and versions['m1'] == '1' and versions['e1'] == '3'

  error_rows = list(client.list_rows(f'{PROJECT}.nightly.prediction_errors'))
  assert collections.Counter(r['reason']
                             for r in error_rows) == collections.Counter(reason
                                                                         for _, reason in BAD)
  assert all(json.loads(r['record'])['rid'] for r in error_rows)


def test_selected_fields_and_row_restriction(seeded):
  root, _, _ = seeded
  out = root / 'out-restricted'
  run_job(root, f'--output={out}', '--selected_fields=site_id,rid,x',
          "--row_restriction=site_id = 'lin-a'")
  lines = read_jsonl(out / 'predictions')
  assert sorted(l['key'] for l in lines) == ['a1', 'a2']
  assert all(set(l['instance']) == {'site_id', 'rid', 'x'} for l in lines)
  summary = json.loads((out / 'summary.json').read_text())
  # a1, a2 and the short-x row; the restriction is applied by the server.
  assert summary['records_read'] == 3 and summary['failed'] == {'bad_feature': 1}


@pytest.mark.gcs
def test_bigquery_in_gcs_out(seeded, gcs_bucket):
  from common import paths  # pylint: disable=import-outside-toplevel
  root, _, _ = seeded
  out = f'{gcs_bucket}/predictions/run-1'
  run_job(root, f'--output={out}')
  summary = json.loads(paths.read_bytes(f'{out}/summary.json'))
  assert summary['predictions_written'] == len(GOOD) and summary['reconciled']
  written = [
      json.loads(l) for m in paths.match(f'{out}/predictions/*.jsonl')
      for l in paths.read_bytes(m.path).decode().splitlines()
  ]
  assert sorted(l['key'] for l in written) == sorted(r['rid'] for r in GOOD)


def test_malformed_table_specs_fail_before_the_run(capsys, tmp_path):
  (tmp_path / 'models' / 'a').mkdir(parents=True)
  for flag in ('input_table', 'output_table', 'errors_table'):
    args = [
        f'--model_root={tmp_path}/models', f'--output={tmp_path}/out',
        '--input_table=my-project:d.t', f'--{flag}=no-dots-here'
    ]
    assert site_predictions.main(args) == 2
    assert f'--{flag}:' in capsys.readouterr().err
  assert site_predictions.main([
      f'--model_root={tmp_path}/models', f'--output={tmp_path}/out', '--input_table=my-project:d.t',
      '--selected_fields=rid,x'
  ]) == 2
  assert 'site field' in capsys.readouterr().err
