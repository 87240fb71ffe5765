"""The per-site job on input with a huge line: the line is one line_too_long dead
letter, every other row is predicted, and the summary reconciles."""
import gzip
import json

import numpy as np
import pytest

from beam_jobs import site_predictions
from tests_support import read_jsonl
import savedmodel_builders

pytestmark = pytest.mark.e2e

LIMIT = 1 << 20


def good_rows(prefix, n):
  return [{
      'site_id': 'lin-a' if i % 2 else 'lin-b',
      'rid': f'{prefix}{i}',
      'x': [i * 0.5, -1.0, 2.0 + i]
  } for i in range(n)]


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  root = tmp_path_factory.mktemp('long_lines')
  models = {
      'lin-a': savedmodel_builders.save_linear(str(root / 'models' / 'lin-a' / '1'),
                                               [1.0, 2.0, 3.0], 0.5),
      'lin-b': savedmodel_builders.save_linear(str(root / 'models' / 'lin-b' / '1'),
                                               [-1.0, 0.25, 4.0], -2.0)
  }
  before, after, packed = good_rows('a', 40), good_rows('b', 40), good_rows('c', 20)
  # A valid row a user's blob column made 70x the limit: it must not be read whole.
  huge = {'site_id': 'lin-a', 'rid': 'huge', 'x': [1, 2, 3], 'blob': 'Z' * (70 * LIMIT)}
  huge_line = json.dumps(huge).encode()
  # Exactly at the limit (its CRLF not counted): read and predicted.
  edge = {'site_id': 'lin-b', 'rid': 'edge', 'x': [3, 2, 1], 'blob': ''}
  edge['blob'] = 'e' * (LIMIT - len(json.dumps(edge).encode()) - len(b'\xef\xbb\xbf'))
  (root / 'input').mkdir()
  with open(root / 'input' / 'a.jsonl', 'wb') as f:
    f.write(b''.join(json.dumps(r).encode() + b'\n' for r in before))
    f.write(huge_line + b'\n')
    f.write(b''.join(json.dumps(r).encode() + b'\n' for r in after))
  with gzip.open(root / 'input' / 'b.jsonl.gz', 'wb') as f:
    f.write(b'\xef\xbb\xbf' + json.dumps(edge).encode() + b'\r\n')
    f.write(b'\r\n'.join(json.dumps(r).encode() for r in packed))
  out = root / 'out'
  assert site_predictions.main([
      f'--input={root}/input/*', f'--model_root={root}/models', f'--output={out}',
      '--key_field=rid', f'--max_line_bytes={LIMIT}'
  ]) == 0
  return {
      'out': out,
      'models': models,
      'good': before + after + packed + [edge],
      'huge_line': huge_line,
      'source': str(root / 'input' / 'a.jsonl')
  }


def test_every_other_row_is_predicted_by_its_model(run):
  by_key = {line['key']: line for line in read_jsonl(run['out'] / 'predictions')}
  assert sorted(by_key) == sorted(r['rid'] for r in run['good'])
  for row in run['good']:
    expected = savedmodel_builders.call_directly(run['models'][row['site_id']], row)
    np.testing.assert_allclose(by_key[row['rid']]['prediction']['y'], expected['y'], rtol=1e-6)
  assert by_key['edge']['instance'] == next(r for r in run['good'] if r['rid'] == 'edge')


def test_the_huge_line_is_one_line_too_long_dead_letter(run):
  [letter] = read_jsonl(run['out'] / 'errors')
  assert (letter['stage'], letter['reason'], letter['source'],
          letter['site_id']) == ('parse', 'line_too_long', run['source'], None)
  assert letter['record'] == run['huge_line'][:1024].decode()
  assert f'{len(run["huge_line"])} bytes' in letter['message']
  assert f'{LIMIT} bytes' in letter['message']


def test_summary_reconciles(run):
  summary = json.loads((run['out'] / 'summary.json').read_text())
  assert summary['records_read'] == len(run['good']) + 1
  assert summary['predictions_written'] == len(run['good'])
  assert summary['failed'] == {'line_too_long': 1}
  assert summary['reconciled'] is True


def test_a_limit_below_one_fails_before_the_pipeline(tmp_path, capsys):
  (tmp_path / 'a.jsonl').write_text('{"site_id": "a"}\n')
  (tmp_path / 'models' / 'a').mkdir(parents=True)
  assert site_predictions.main([
      f'--input={tmp_path}/a.jsonl', f'--model_root={tmp_path}/models', f'--output={tmp_path}/out',
      '--max_line_bytes=0'
  ]) == 2
  assert capsys.readouterr().err.startswith('error: --max_line_bytes: must be at least 1')
  assert not (tmp_path / 'out').exists()
