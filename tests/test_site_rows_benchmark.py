"""Smoke run of the per-row cost benchmark at a tiny size (CI: ``-m slow``)."""
import re

import pytest

from tests_support import run_benchmark


@pytest.mark.slow
def test_per_row_benchmark_runs_both_peers_and_prints_its_table(tmp_path):
  out = run_benchmark('site_rows.py', '--sizes', '4,12', '--sites', '2', '--data_dir',
                      str(tmp_path))
  for run in ('pipeline', 'naive'):
    for rows in (4, 12):
      assert re.search(rf'^{run} {rows} rows: [\d.]+ s wall, [\d.]+ s cpu, {rows} predictions$',
                       out, re.M), (run, rows, out)
  assert re.search(r'^run\s+4 rows s\s+12 rows s\s+us/row\s+cpu us/row\s+x naive', out, re.M), out
  assert re.search(r'^pipeline\s+[\d.]+\s+[\d.]+\s+-?[\d.]+\s+-?[\d.]+\s+-?[\d.]+$', out, re.M), out
  assert re.search(r'^naive\s+[\d.]+\s+[\d.]+\s+-?[\d.]+\s+-?[\d.]+\s+1\.00$', out, re.M), out
