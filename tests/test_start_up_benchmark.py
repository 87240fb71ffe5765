"""Smoke run of the start-up timeline benchmark (CI: ``-m slow``)."""
import json
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
POINTS = ('launch', 'built', 'first bundle', 'run done', 'exit')


@pytest.mark.slow
def test_start_up_benchmark_prints_a_timeline_in_order(tmp_path):
  proc = subprocess.run([
      sys.executable,
      str(REPO / 'benchmarks' / 'start_up.py'), '--repeats', '1', '--rows', '3', '--data_dir',
      str(tmp_path)
  ],
                        cwd=REPO,
                        capture_output=True,
                        text=True,
                        timeout=900,
                        check=False)
  out = proc.stdout
  assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
  for point in POINTS:
    assert re.search(rf'^{point}\s+[\d.]+\s+\(\+\s*[\d.]+\)', out, re.M), (point, out)
  timeline = json.loads(out.strip().splitlines()[-1])
  assert list(timeline) == list(POINTS)
  times = [timeline[p] for p in POINTS]
  assert times == sorted(times) and times[0] > 0, timeline
