"""Smoke run of the per-site benchmark script at a tiny size (CI: ``-m slow``)."""
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_runs_every_peer_and_prints_its_table(tmp_path):
  proc = subprocess.run([
      sys.executable,
      str(REPO / 'benchmarks' / 'site_predictions.py'), '--cases', 'module@6', '--rows', '5',
      '--runs', 'naive,pipeline,beam-all,beam-2', '--data_dir',
      str(tmp_path)
  ],
                        cwd=REPO,
                        capture_output=True,
                        text=True,
                        timeout=600,
                        check=False)
  out = proc.stdout
  assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
  assert re.search(r'^run\s+wall_s\s+cpu_s\s+ms/site', out, re.M), out
  for run in ('naive', 'pipeline', 'beam-all', 'beam-2'):
    assert re.search(rf'^{run}\s+\d', out, re.M), run
  assert re.search(r'^pipeline: models_loaded=6, models_fast_path=5, .*; 30 equal to naive', out,
                   re.M), out
  assert re.search(r'^beam-all: 30 equal to naive', out, re.M), out
  assert re.search(r'^beam-2: 30 equal to naive', out, re.M), out
  ran = r'[\d.]+ s \([\d.]+x\)'
  assert re.search(
      rf'^\| module \| 6 x 5 \| [\d.]+ s \| {ran} \| {ran} \| {ran} \| 5/6 \(83\.3%\) \|$', out,
      re.M), out
