"""End-to-end runs of the per-site job from its CLI entry point on the local runner."""
import ast
import collections
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from beam_jobs import site_predictions
from tests_support import assert_outputs_equal
from tests_support import read_jsonl
import savedmodel_builders
import site_job_data

pytestmark = pytest.mark.e2e


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
  root = tmp_path_factory.mktemp('site_job')
  model_dirs = savedmodel_builders.build_model_root(str(root / 'models'))
  site_job_data.write_inputs(root / 'input')
  return root, model_dirs


@pytest.fixture(scope='module')
def jsonl_run(workspace):
  root, _ = workspace
  out = root / 'out-jsonl'
  site_predictions.run([
      f'--input={root}/input/*.jsonl', f'--model_root={root}/models', f'--output={out}',
      '--key_field=rid', '--max_failed_fraction=1'
  ])
  return out


def expected_outputs(model_dirs, row):
  return savedmodel_builders.call_directly(model_dirs[str(row['site_id'])], row)


def test_every_good_row_predicted_by_its_own_site_model(workspace, jsonl_run):
  _, model_dirs = workspace
  lines = read_jsonl(jsonl_run / 'predictions')
  by_key = {line['key']: line for line in lines}
  assert sorted(by_key) == sorted(r['rid'] for r in site_job_data.GOOD_ROWS)
  for row in site_job_data.GOOD_ROWS:
    line = by_key[row['rid']]
    assert line['site_id'] == str(row['site_id'])
    assert line['instance'] == row, 'the instance travels untouched'
    assert_outputs_equal(line['prediction'], expected_outputs(model_dirs, row))


def test_highest_integer_version_wins(workspace, jsonl_run):
  by_key = {l['key']: l for l in read_jsonl(jsonl_run / 'predictions')}
  # lin-a v2: 1*1 + 2*2 + 3*3 + 0.5; lin-b v10 (not 9): -1 + 0.5 + 12 - 2.
  assert by_key['a1']['prediction']['y'] == pytest.approx(14.5)
  assert by_key['b1']['prediction']['y'] == pytest.approx(9.5)


def test_every_bad_record_is_a_dead_letter_with_its_reason(jsonl_run):
  letters = read_jsonl(jsonl_run / 'errors')
  assert len(letters) == len(site_job_data.BAD_LINES)
  for letter in letters:
    assert set(letter) == {'stage', 'reason', 'message', 'site_id', 'source', 'record'}
    assert letter['message']
    assert letter['source'].endswith('.jsonl')
  by_rid = {
      l['record']['rid']: l
      for l in letters if isinstance(l['record'], dict) and 'rid' in l['record']
  }
  for line, reason in site_job_data.BAD_LINES:
    try:
      rid = json.loads(line)['rid']
    except (ValueError, TypeError, KeyError):
      continue
    assert by_rid[rid]['reason'] == reason, (rid, by_rid[rid])
    assert by_rid[rid]['source'].endswith(site_job_data.file_of(line)), (rid, by_rid[rid])
  raw = {l['reason']: l['record'] for l in letters if not isinstance(l['record'], dict)}
  assert raw['bad_json'] == site_job_data.BAD_LINES[0][0]
  assert '"caf\\xe9"' in raw['bad_encoding']
  assert raw['empty_line'] == ''
  assert raw['not_an_object'] == [1, 2, 3]
  assert by_rid['nomodel']['site_id'] == 'nope'


def test_summary_reconciles(jsonl_run):
  summary = json.loads((jsonl_run / 'summary.json').read_text())
  n_good, n_bad = len(site_job_data.GOOD_ROWS), len(site_job_data.BAD_LINES)
  assert summary['records_read'] == n_good + n_bad
  assert summary['predictions_written'] == n_good
  assert summary['failed'] == site_job_data.expected_failures()
  assert summary['failed_total'] == n_bad
  assert summary['reconciled'] is True
  # lin-a lin-b 42 flat multi echo + nope empty corrupt
  assert summary['sites_seen'] == 9
  assert summary['models_loaded'] == 6
  assert summary['outputs']['predictions'] and summary['outputs']['errors']


def test_unusual_text_is_predicted_or_dead_lettered_never_a_crash(workspace, tmp_path):
  root, model_dirs = workspace
  good = [
      '{"site_id": "lin-a", "rid": "u1", "x": [1, 2, 3], "note": "line\u2028sep\u0085nel"}',
      '{"site_id": "lin-a", "rid": "u2", "x": [1, 2, 3], "note": "lone \\ud800 surrogate"}',
      '{"site_id": "lin-a",\r"rid": "u3", "x": [1, 2, 3], "note": NaN}',
  ]
  deep = '{"site_id": "lin-a", "rid": "u4", "x": ' + '[' * 5000 + ']' * 5000 + '}'
  (tmp_path / 'odd.jsonl').write_bytes('\n'.join(good + [deep]).encode('utf-8') + b'\n')
  out = tmp_path / 'out'
  site_predictions.run([
      f'--input={tmp_path}/odd.jsonl', f'--model_root={root}/models', f'--output={out}',
      '--key_field=rid', '--max_failed_fraction=0.25'
  ])
  by_key = {line['key']: line for line in read_jsonl(out / 'predictions')}
  assert sorted(by_key) == ['u1', 'u2', 'u3']
  for text in good:
    row = json.loads(text)
    line = by_key[row['rid']]
    assert_outputs_equal(line['prediction'], expected_outputs(model_dirs, row))
    if row['rid'] != 'u3':  # NaN != NaN
      assert line['instance'] == row
  written = list((out / 'predictions').iterdir())
  assert written and all(f.read_bytes().isascii() for f in written)
  [letter] = read_jsonl(out / 'errors')
  assert (letter['reason'], letter['record']) == ('bad_json', deep)
  assert json.loads((out / 'summary.json').read_text())['reconciled'] is True


def test_aiplatform_format_from_the_command_line(workspace, tmp_path):
  root, model_dirs = workspace
  out = tmp_path / 'out'
  proc = subprocess.run([
      sys.executable, '-m', 'beam_jobs.site_predictions', f'--input={root}/input/part-*.jsonl',
      f'--model_root={root}/models', f'--output={out}', '--output_format=aiplatform',
      '--runner=DirectRunner', '--max_failed_fraction=1'
  ],
                        capture_output=True,
                        text=True,
                        timeout=600,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f'Outputs are under {out}' in proc.stdout
  results = sorted(out.glob('prediction.results-*-of-*'))
  stats = sorted(out.glob('prediction.errors_stats-*-of-*'))
  assert results and stats and not (out / 'predictions').exists()

  outputs = [json.loads(l) for f in results for l in f.read_text().splitlines()]
  assert len(outputs) == len(site_job_data.GOOD_ROWS)
  # No keys in this format: match each expected output to a distinct result.
  unmatched = list(outputs)
  for row in site_job_data.GOOD_ROWS:
    expected = expected_outputs(model_dirs, row)
    for i, candidate in enumerate(unmatched):
      try:
        assert_outputs_equal(candidate, expected)
      except AssertionError:
        continue
      unmatched.pop(i)
      break
    else:
      pytest.fail(f'no result line for {row}')

  counted = collections.Counter()
  for f in stats:
    for line in f.read_text().splitlines():
      message, count = ast.literal_eval(line)
      counted[message.split(':', 1)[0]] += count
  assert counted == collections.Counter(site_job_data.expected_failures())
  assert len(read_jsonl(out / 'errors')) == len(site_job_data.BAD_LINES)
  assert json.loads((out / 'summary.json').read_text())['reconciled'] is True


def test_one_row_per_chunk_gives_the_same_predictions(workspace, jsonl_run, tmp_path):
  root, _ = workspace
  out = tmp_path / 'out'
  site_predictions.run([
      f'--input={root}/input/*.jsonl', f'--model_root={root}/models', f'--output={out}',
      '--key_field=rid', '--rows_per_chunk=1', '--max_models_per_worker=1',
      '--max_failed_fraction=1'
  ])

  def by_key(folder):
    return {l['key']: l for l in read_jsonl(folder / 'predictions')}

  assert by_key(out) == by_key(jsonl_run)
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['reconciled'] is True
  # Rows of a site arrive in one group, so the pool of one still loads each site once.
  assert summary['models_loaded'] == 6


@pytest.mark.gcs
def test_gs_paths_give_the_same_outputs_as_local_paths(workspace, jsonl_run, gcs_bucket):
  from conftest import upload_tree  # pylint: disable=import-outside-toplevel
  from common import paths  # pylint: disable=import-outside-toplevel
  root, _ = workspace
  upload_tree(root / 'models', f'{gcs_bucket}/models')
  upload_tree(root / 'input', f'{gcs_bucket}/input')
  out = f'{gcs_bucket}/out'
  site_predictions.run([
      f'--input={gcs_bucket}/input/*.jsonl', f'--model_root={gcs_bucket}/models', f'--output={out}',
      '--key_field=rid', '--max_failed_fraction=1'
  ])

  def lines(prefix):
    return [
        json.loads(l) for m in paths.match(prefix + '*')
        for l in paths.read_bytes(m.path).decode().splitlines() if l
    ]

  remote = {l['key']: l for l in lines(f'{out}/predictions/predictions')}
  local = {l['key']: l for l in read_jsonl(jsonl_run / 'predictions')}
  assert remote == local
  letters = lines(f'{out}/errors/errors')
  assert all(l['source'].startswith(f'{gcs_bucket}/input/') for l in letters)
  # GCS has no empty folders: the 'empty' site has no model there.
  expected = collections.Counter(site_job_data.expected_failures())
  expected['model_load_failed'] -= 1
  expected['no_model'] += 1
  assert collections.Counter(l['reason'] for l in letters) == expected
  summary = json.loads(paths.read_bytes(f'{out}/summary.json'))
  assert summary['reconciled'] and summary['predictions_written'] == len(local)
