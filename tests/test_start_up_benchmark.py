"""Smoke run of the start-up timeline benchmark (CI: ``-m slow``)."""
import json
import re

import pytest

from tests_support import run_benchmark

POINTS = ('launch', 'built', 'first bundle', 'run done', 'exit')


@pytest.mark.slow
def test_start_up_benchmark_prints_a_timeline_in_order(tmp_path):
  out = run_benchmark('start_up.py', '--repeats', '1', '--rows', '3', '--data_dir', str(tmp_path))
  for point in POINTS:
    assert re.search(rf'^{point}\s+[\d.]+\s+\(\+\s*[\d.]+\)', out, re.M), (point, out)
  timeline = json.loads(out.strip().splitlines()[-1])
  assert list(timeline) == list(POINTS)
  times = [timeline[p] for p in POINTS]
  assert times == sorted(times) and times[0] > 0, timeline
