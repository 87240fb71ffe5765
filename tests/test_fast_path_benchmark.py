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
      [sys.executable, str(REPO / 'benchmarks' / 'site_predictions.py'),
       '--cases', 'loop-named@20', '--rows', '10', '--runs', 'naive,pipeline',
       '--data_dir', str(tmp_path)],
      cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert re.search(r'^run\s+wall_s\s+cpu_s\s+ms/site\s+rows/s', proc.stdout, re.M), proc.stdout
  assert re.search(r'^naive\s+\d', proc.stdout, re.M)
  assert re.search(r'^pipeline\s+\d', proc.stdout, re.M)
  # Sites exported in a one-process Keras loop share the first site's graph.
  assert 'models_fast_path=19' in proc.stdout, proc.stdout
  assert '200 equal to naive (max abs diff 0)' in proc.stdout, proc.stdout
  assert re.search(r'^\| loop-named \| 20 x 10 \| [\d.]+ s \| [\d.]+ s \([\d.]+x\) \| 19/20 ',
                   proc.stdout, re.M), proc.stdout
