"""Smoke run of the per-site benchmark script at a tiny size (CI: ``-m slow``)."""
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_runs_and_prints_its_table(tmp_path):
  proc = subprocess.run(
      [sys.executable, str(REPO / 'benchmarks' / 'site_predictions.py'), '--sites', '20',
       '--rows', '10', '--trainings', '2', '--runs', 'naive,pipeline',
       '--data_dir', str(tmp_path)],
      cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert re.search(r'^run\s+wall_s\s+ms/site\s+rows/s', proc.stdout, re.M), proc.stdout
  assert re.search(r'^naive\s+\d', proc.stdout, re.M)
  assert re.search(r'^pipeline\s+\d', proc.stdout, re.M)
  assert '200 equal to naive' in proc.stdout
  assert re.search(r'^\| 20 x 10 \| 1 \| [\d.]+ s, [\d,]+ MiB \| [\d.]+ s \([\d.]+x\), ', proc.stdout,
                   re.M), proc.stdout
