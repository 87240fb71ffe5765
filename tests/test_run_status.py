"""A run that read nothing, produced nothing or failed too much says so: summary status,
exit 1 with one line locally, a failed step (so a failed Dataflow job) remotely."""
import json
import math

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline

import detect_helpers
import savedmodel_builders
from beam_jobs import detect_images
from beam_jobs import site_predictions
from beam_jobs.io_options import DEFAULT_MAX_FAILED_FRACTION
from tests_support import read_jsonl
from transforms import run_summary

POLICY = site_predictions.status_policy(DEFAULT_MAX_FAILED_FRACTION)


def _summary(read, written, failed):
  return site_predictions.finalize_summary({
      'records_read': read,
      'predictions_written': written,
      'failed': {
          'no_model': failed
      } if failed else {}
  })


@pytest.mark.parametrize(
    'counts, status, reason',
    [
        ((484, 480, 4), 'ok', '480 of 484 records predicted, 4 failed'),
        ((10, 9, 1), 'ok', '9 of 10 records predicted, 1 failed'),  # exactly the limit
        ((10, 8, 2), 'failed',
         '2 of 10 records failed (20.0%), more than --max_failed_fraction=0.1'),
        ((484, 0, 484), 'failed', '0 of 484 records predicted'),
        ((0, 0, 0), 'failed', 'no records read'),
        ((5, 3, 1), 'failed', 'counts do not reconcile: 5 records read, 3 predicted, 1 failed'),
    ])
def test_status_rules(counts, status, reason):
  assert POLICY.judge(_summary(*counts)) == (status, reason)


def test_a_fraction_of_one_still_fails_a_run_that_produced_nothing():
  policy = detect_images.status_policy(1.0)
  assert policy.judge({
      'images_read': 3,
      'images_ok': 1,
      'images_failed': 2,
      'reconciled': True
  }) == ('ok', '1 of 3 images processed, 2 failed')
  assert policy.judge({
      'images_read': 3,
      'images_ok': 0,
      'images_failed': 3,
      'reconciled': True
  }) == ('failed', '0 of 3 images processed')


def test_summary_is_strict_json():
  with pytest.raises(ValueError):
    run_summary.encode({'model_load_ms_total': math.nan})
  assert json.loads(run_summary.encode({'a': 1.5})) == {'a': 1.5}


@pytest.fixture(scope='module')
def model_root(tmp_path_factory):
  root = tmp_path_factory.mktemp('status-models')
  savedmodel_builders.save_linear(str(root / 'lin' / '1'), [1.0, 2.0], 0.5)
  return root


def _rows(path, good, bad):
  rows = [{'site_id': 'lin', 'rid': f'g{i}', 'x': [i, 1.0]} for i in range(good)]
  rows += [{'site_id': 'lin', 'rid': f'b{i}', 'x': 'text'} for i in range(bad)]
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(''.join(json.dumps(r) + '\n' for r in rows))


def _last_line(capsys) -> str:
  return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.e2e
def test_a_model_version_no_site_has_exits_1_after_writing_everything(model_root, tmp_path, capsys):
  _rows(tmp_path / 'in' / 'a.jsonl', 4, 0)
  out = tmp_path / 'out'
  assert site_predictions.main([
      f'--input={tmp_path}/in/*.jsonl', f'--model_root={model_root}', f'--output={out}',
      '--model_version=7'
  ]) == 1
  assert _last_line(capsys) == (
      f'error: run failed: 0 of 4 records predicted; see {out}/summary.json')
  summary = json.loads((out / 'summary.json').read_text())
  assert (summary['status'], summary['status_reason']) == ('failed', '0 of 4 records predicted')
  assert summary['reconciled'] and summary['failed_total'] == 4
  assert len(read_jsonl(out / 'errors')) == 4


@pytest.mark.e2e
def test_too_many_failures_fail_unless_the_limit_allows_them(model_root, tmp_path, capsys):
  _rows(tmp_path / 'in' / 'a.jsonl', 2, 1)
  args = [f'--input={tmp_path}/in/*.jsonl', f'--model_root={model_root}', '--key_field=rid']
  assert site_predictions.main(args + [f'--output={tmp_path}/strict']) == 1
  assert _last_line(capsys) == (
      'error: run failed: 1 of 3 records failed (33.3%), more than --max_failed_fraction=0.1; '
      f'see {tmp_path}/strict/summary.json')
  assert sorted(l['key'] for l in read_jsonl(tmp_path / 'strict' / 'predictions')) == ['g0', 'g1']
  assert site_predictions.main(args +
                               [f'--output={tmp_path}/lenient', '--max_failed_fraction=0.34']) == 0
  summary = json.loads((tmp_path / 'lenient' / 'summary.json').read_text())
  assert summary['status'] == 'ok' and summary['max_failed_fraction'] == 0.34


@pytest.mark.e2e
def test_an_empty_input_is_a_failed_run(model_root, tmp_path):
  (tmp_path / 'in').mkdir()
  (tmp_path / 'in' / 'empty.jsonl').write_bytes(b'')
  with pytest.raises(run_summary.RunFailed, match='^run failed: no records read; see '):
    site_predictions.run([
        f'--input={tmp_path}/in/*.jsonl', f'--model_root={model_root}', f'--output={tmp_path}/out'
    ])
  assert json.loads((tmp_path / 'out' / 'summary.json').read_text())['status'] == 'failed'


@pytest.mark.parametrize('value', ['-0.1', '1.5', 'nan'])
def test_max_failed_fraction_must_be_a_fraction(model_root, tmp_path, capsys, value):
  _rows(tmp_path / 'in' / 'a.jsonl', 1, 0)
  assert site_predictions.main([
      f'--input={tmp_path}/in/*.jsonl', f'--model_root={model_root}', f'--output={tmp_path}/out',
      f'--max_failed_fraction={value}'
  ]) == 2
  assert _last_line(capsys).startswith('error: --max_failed_fraction: must be within [0, 1]')


@pytest.mark.e2e
def test_detection_of_only_broken_images_fails_and_keeps_its_inputs(tmp_path, capsys):
  for name in ('a.jpg', 'b.png'):
    (tmp_path / 'in' / 'cam1').mkdir(parents=True, exist_ok=True)
    (tmp_path / 'in' / 'cam1' / name).write_bytes(b'\xff\xd8\xff\xe0 not really')
  out = tmp_path / 'out'
  assert detect_images.main([
      '--input',
      str(tmp_path / 'in'), '--output',
      str(out), '--delete_inputs', '--max_failed_fraction=1'
  ] + detect_helpers.darknet_flags()) == 1
  assert _last_line(capsys) == f'error: run failed: 0 of 2 images processed; see {out}/summary.json'
  assert sorted(p.name for p in (tmp_path / 'in' / 'cam1').iterdir()) == ['a.jpg', 'b.png']
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['status'] == 'failed' and summary['images_failed'] == 2


@pytest.mark.e2e
def test_inputs_of_a_run_over_the_limit_are_not_moved(tmp_path):
  detect_helpers.save(tmp_path / 'in' / 'cam1' / 'coffee.jpg', detect_helpers.coffee()[::4, ::4])
  (tmp_path / 'in' / 'cam1' / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 broken')
  with pytest.raises(run_summary.RunFailed, match=r'1 of 2 images failed \(50.0%\)'):
    detect_images.run([
        '--input',
        str(tmp_path / 'in'), '--output',
        str(tmp_path / 'out'), '--move_inputs_to',
        str(tmp_path / 'done')
    ] + detect_helpers.darknet_flags())
  assert sorted(p.name
                for p in (tmp_path / 'in' / 'cam1').iterdir()) == ['broken.jpg', 'coffee.jpg']
  assert not (tmp_path / 'done').exists()
  assert len(detect_helpers.read_jsonl(tmp_path / 'out' / 'detections')) == 1


def _stats(read, written, failed):
  return [(('records_read', ), read), (('predictions_written', ), written),
          (('failed', 'no_model'), failed)]


def test_the_summary_step_never_raises_the_last_step_fails_the_job(tmp_path):
  with test_pipeline.TestPipeline(runner='FnApiRunner') as p:
    summary = (p | beam.Create(_stats(3, 0, 3))
               | run_summary.WriteRunSummary(str(tmp_path),
                                             started_at=0.0,
                                             outputs={},
                                             finalize=site_predictions.finalize_summary,
                                             policy=POLICY))
  assert json.loads((tmp_path / 'summary.json').read_text())['status'] == 'failed'
  with pytest.raises(Exception, match='run failed: 0 of 3 records predicted'):
    with test_pipeline.TestPipeline(runner='FnApiRunner') as p:
      summary = (p | beam.Create(_stats(3, 0, 3))
                 | run_summary.WriteRunSummary(str(tmp_path / 'remote'),
                                               started_at=0.0,
                                               outputs={},
                                               finalize=site_predictions.finalize_summary,
                                               policy=POLICY))
      _ = summary | run_summary.FailJobIfRunFailed(str(tmp_path / 'remote'))
  summary = json.loads((tmp_path / 'remote' / 'summary.json').read_text())
  assert summary['status'] == 'failed' and summary['records_read'] == 3


def test_a_retried_summary_step_leaves_the_first_attempts_file(tmp_path, monkeypatch):
  path = str(tmp_path / 'summary.json')
  first_summary = run_summary.build_summary(_stats(3, 0, 3), [],
                                            finalize=site_predictions.finalize_summary,
                                            extra={'run_id': 'r1'},
                                            policy=POLICY)
  first_summary['wall_time_s'] = 1.0
  assert run_summary.write_once(path, dict(first_summary)) == first_summary
  first = (tmp_path / 'summary.json').read_bytes()
  # A later attempt of the same step: same counts, another wall time.
  again = dict(first_summary, wall_time_s=10_000.0)
  assert run_summary.write_once(path, again) == first_summary
  assert (tmp_path / 'summary.json').read_bytes() == first
  with pytest.raises(run_summary.RunFailed, match='0 of 3 records predicted'):
    run_summary.fail_if_failed(again, [], summary_path=path)
  # Different counts (not a retry of the same step) are written.
  ok = run_summary.build_summary(_stats(3, 3, 0), [],
                                 finalize=site_predictions.finalize_summary,
                                 extra={'run_id': 'r1'},
                                 policy=POLICY)
  ok['wall_time_s'] = 10_000.0
  written = run_summary.write_once(path, ok)
  assert json.loads((tmp_path / 'summary.json').read_text()) == written
  assert written['status'] == 'ok' and written['wall_time_s'] == 10_000.0
  assert run_summary.fail_if_failed(written, [], summary_path=path) is written
