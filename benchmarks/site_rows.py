"""Benchmark: the per-site job's cost per row, end to end, against a naive loop.

For each input size N of ``--sizes`` (rows spread over ``--sites`` sites,
JSON-lines made by :func:`site_bench_data.input_dir`, site models exported as
``--style`` by :mod:`site_bench_data`), runs in a process of its own:

- ``pipeline``: ``python -m beam_jobs.site_predictions --key_field=reading_id``
  on the local runner (``--mode``: ``in_memory`` with one worker, or
  ``mp2``: two worker processes, multi-processing);
- ``naive``: ``site_bench_naive.py`` (read, group, one signature call per
  site, one JSON line per row);

and prints one table: wall seconds per size, and the slopes between the
smallest and the largest size in microseconds per row, of wall time and of
CPU time (the process and its children; steadier on a loaded machine):
start-up, imports and per-site costs cancel out. ``x naive``: the
pipeline's wall slope over the naive loop's. Every run's prediction count is checked against the rows fed.

  python benchmarks/site_rows.py                                  # 1 site, 20k and 200k rows
  python benchmarks/site_rows.py --sizes 100000,1000000 --sites 10
  python benchmarks/site_rows.py --sizes 50,500 --sites 2          # a smoke run
"""
import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
from typing import Dict, List

import site_bench_data
from process_stats import RunStats
from process_stats import run_measured

REPO = site_bench_data.REPO
MODES = {
    'in_memory': ['--direct_num_workers=1', '--direct_running_mode=in_memory'],
    'mp2': ['--direct_num_workers=2', '--direct_running_mode=multi_processing'],
}


def _pipeline(mode: str, models: str, inputs: str, out: str, extra: List[str]) -> RunStats:
  command = [
      sys.executable, '-m', 'beam_jobs.site_predictions',
      f'--input={os.path.join(inputs, "*.jsonl")}', f'--model_root={models}', f'--output={out}',
      '--key_field=reading_id', '--runner=DirectRunner', *MODES[mode], *extra
  ]
  return run_measured(command,
                      env=site_bench_data.child_env(),
                      cwd=REPO,
                      log_path=out.rstrip('/') + '.log')


def _naive(models: str, inputs: str, out: str) -> RunStats:
  os.makedirs(out, exist_ok=True)
  return run_measured([
      sys.executable,
      os.path.join(REPO, 'benchmarks', 'site_bench_naive.py'),
      os.path.join(inputs, '*.jsonl'), models,
      os.path.join(out, 'predictions.jsonl')
  ],
                      env=site_bench_data.child_env(),
                      cwd=REPO,
                      log_path=out + '.log')


def _count_lines(pattern: str) -> int:
  total = 0
  for path in glob.glob(pattern):
    with open(path, 'rb') as f:
      total += sum(1 for _ in f)
  return total


def _slope_us(walls: Dict[int, float]) -> float:
  low, high = min(walls), max(walls)
  if low == high:
    return walls[low] * 1e6 / low
  return (walls[high] - walls[low]) * 1e6 / (high - low)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--sizes',
                      default='20000,200000',
                      help='Row counts, comma-separated (at least two for a slope).')
  parser.add_argument('--sites', type=int, default=1, help='Sites the rows are spread over.')
  parser.add_argument('--style', default='module', choices=site_bench_data.STYLES)
  parser.add_argument('--mode', default='in_memory', choices=sorted(MODES))
  parser.add_argument('--data_dir', default=site_bench_data.DEFAULT_DATA_DIR)
  parser.add_argument('--no_naive', action='store_true', help='Skip the naive loop.')
  parser.add_argument('--keep', action='store_true', help='Keep the outputs (printed).')
  args, extra = parser.parse_known_args(argv)
  sizes = sorted({int(s) for s in args.sizes.split(',') if s.strip()})
  models = site_bench_data.model_root(args.data_dir, args.style, args.sites)
  work = tempfile.mkdtemp(prefix='site-rows-')
  walls: Dict[str, Dict[int, float]] = {'pipeline': {}, 'naive': {}}
  cpus: Dict[str, Dict[int, float]] = {'pipeline': {}, 'naive': {}}
  failed = False
  try:
    for size in sizes:
      per_site = max(1, -(-size // args.sites))
      inputs = site_bench_data.input_dir(args.data_dir, args.sites, per_site)
      rows = args.sites * per_site
      runs = [('pipeline', lambda out: _pipeline(args.mode, models, inputs, out, extra))]
      if not args.no_naive:
        runs.append(('naive', lambda out: _naive(models, inputs, out)))
      for name, start in runs:
        out = os.path.join(work, f'{name}-{rows}')
        stats = start(out)
        if stats.returncode != 0:
          print(f'{name} at {rows} rows failed (exit {stats.returncode}):\n{stats.log_tail}')
          failed = True
          continue
        pattern = (os.path.join(out, 'predictions', '*') if name == 'pipeline' else os.path.join(
            out, 'predictions.jsonl'))
        written = _count_lines(pattern)
        print(
            f'{name} {rows} rows: {stats.wall_s:.2f} s wall, {stats.cpu_s:.2f} s cpu, '
            f'{written} predictions{"" if written == rows else " MISMATCH"}',
            flush=True)
        failed |= written != rows
        walls[name][rows] = stats.wall_s
        cpus[name][rows] = stats.cpu_s
    if failed:
      return 1
    print()
    print(f'{args.sites} site(s), style {args.style}, pipeline {args.mode}')
    sizes = sorted(walls['pipeline'])
    print(' '.join([f'{"run":<10}'] + [f'{f"{n} rows s":>15}' for n in sizes] +
                   [f'{"us/row":>12}', f'{"cpu us/row":>12}', f'{"x naive":>9}']))
    naive_slope = _slope_us(walls['naive']) if walls['naive'] else None
    for name, by_size in walls.items():
      if not by_size:
        continue
      slope = _slope_us(by_size)
      ratio = f'{slope / naive_slope:.2f}' if naive_slope else '-'
      # Columns are joined by a space so that a negative slope (noise larger than the
      # per-row cost at small sizes) never runs into the column before it.
      print(' '.join([f'{name:<10}'] + [f'{by_size[n]:>15.2f}' for n in sorted(by_size)] +
                     [f'{slope:>12.2f}', f'{_slope_us(cpus[name]):>12.2f}', f'{ratio:>9}']))
    if any(_slope_us(by_size) <= 0 for by_size in walls.values() if by_size):
      print('note: a per-row slope <= 0 means start-up noise exceeds the per-row cost at '
            'these sizes; use larger --sizes')
    print(
        json.dumps({
            name: {
                str(k): round(v, 3)
                for k, v in by_size.items()
            }
            for name, by_size in walls.items()
        }))
  finally:
    if args.keep:
      print(f'outputs kept in {work}')
    else:
      shutil.rmtree(work, ignore_errors=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
