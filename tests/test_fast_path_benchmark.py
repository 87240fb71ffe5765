"""Smoke run of the per-site benchmark script at a tiny size (CI: ``-m slow``)."""
import pathlib
import re
import subprocess
import sys

import pytest

from tests_support import run_benchmark

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_runs_every_peer_and_prints_its_table(tmp_path):
  out = run_benchmark('site_predictions.py',
                      '--cases',
                      'module@6',
                      '--rows',
                      '5',
                      '--runs',
                      'naive,pipeline,beam-all,beam-2',
                      '--data_dir',
                      str(tmp_path),
                      timeout=600)
  assert re.search(r'^run\s+wall_s\s+cpu_s\s+ms/site', out, re.M), out
  for run in ('naive', 'pipeline', 'beam-all', 'beam-2'):
    assert re.search(rf'^{run}\s+\d', out, re.M), run
  assert re.search(r'^pipeline: models_loaded=6, models_fast_path=5, .*; 30 equal to naive', out,
                   re.M), out
  assert re.search(r'^beam-all: 30 equal to naive', out, re.M), out
  assert re.search(r'^beam-2: 30 equal to naive', out, re.M), out
  ran = r'[\d.]+ s \([\d.]+x\)'
  assert re.search(
      rf'^\| module \| 6 x 5 \| [\d.]+ s \| {ran} \| {ran} \| {ran} \| [\d.]+x \| 5/6 \(83\.3%\) \|$',
      out, re.M), out


def test_a_run_past_its_time_limit_is_stopped_with_its_process_group(tmp_path):
  sys.path.insert(0, str(REPO / 'benchmarks'))
  try:
    import process_stats  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.remove(str(REPO / 'benchmarks'))
  marker = tmp_path / 'child-survived'
  # The child sleeps past the limit, then would leave a file behind.
  command = ['bash', '-c', f'(sleep 3; touch {marker}) & sleep 30']
  stats = process_stats.run_measured(command,
                                     env={'PATH': '/usr/bin:/bin'},
                                     cwd=str(tmp_path),
                                     log_path=str(tmp_path / 'log'),
                                     limit_s=0.5)
  assert stats.timed_out
  assert stats.returncode != 0
  assert 0.5 <= stats.wall_s < 10
  subprocess.run(['sleep', '4'], check=True)
  assert not marker.exists()
  done = process_stats.run_measured(['true'],
                                    env={'PATH': '/usr/bin:/bin'},
                                    cwd=str(tmp_path),
                                    log_path=str(tmp_path / 'log2'),
                                    limit_s=30)
  assert not done.timed_out and done.returncode == 0


def test_a_childs_peak_is_its_own_not_the_rss_it_was_forked_with(tmp_path):
  sys.path.insert(0, str(REPO / 'benchmarks'))
  try:
    import process_stats  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.remove(str(REPO / 'benchmarks'))
  ballast = b'x' * (400 << 20)  # this process grown, as a benchmark that loaded results
  grows = f'import time; data = b"x" * ({200 << 20}); time.sleep(1.0)'
  small, large = (process_stats.run_measured([sys.executable, '-c', code],
                                             env={'PATH': '/usr/bin:/bin'},
                                             cwd=str(tmp_path),
                                             log_path=str(tmp_path / 'log'))
                  for code in ('import time; time.sleep(1.0)', grows))
  assert len(ballast) and small.returncode == 0 and large.returncode == 0
  assert small.peak_process_rss_mb < 100, small
  assert 200 <= large.peak_process_rss_mb < 300, large


@pytest.mark.parametrize('name, timed_out, returncode, counts', [
    ('beam-256', True, -9, True),
    ('beam-all', False, 1, False),
    ('naive', True, -9, False),
    ('pipeline', True, -9, False),
    ('pipeline-mp2', False, 0, True),
])
def test_only_a_beam_native_run_may_be_stopped_at_the_limit(name, timed_out, returncode, counts):
  sys.path.insert(0, str(REPO / 'benchmarks'))
  try:
    import process_stats  # pylint: disable=import-outside-toplevel
    import site_predictions  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.remove(str(REPO / 'benchmarks'))
  stats = process_stats.RunStats(1.0, 1.0, 1.0, returncode, '', 1.0, timed_out)
  assert site_predictions.succeeded(site_predictions.Result(name, stats, None, 'x')) is counts


def _benchmark_module(name: str):
  sys.path.insert(0, str(REPO / 'benchmarks'))
  try:
    return __import__(name)
  finally:
    sys.path.remove(str(REPO / 'benchmarks'))


def test_cases_take_rows_per_case_or_the_default():
  cases = _benchmark_module('site_predictions')._cases('module@6,loop-named@10x1000', 100)
  assert cases == [('module', 6, 100), ('loop-named', 10, 1000)]


@pytest.mark.parametrize('text', [
    'module', 'module@', 'module@6x', 'module@x5', 'nope@6', 'module@6x5x2', 'module@six',
    'module@6x\u00b2', 'module@0', 'module@6x0'
])
def test_a_malformed_case_is_a_usage_error_naming_it(text):
  with pytest.raises(SystemExit, match=f'--cases: {text!r} is not STYLE@SITES'):
    _benchmark_module('site_predictions')._cases(text, 100)
