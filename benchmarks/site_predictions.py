"""Benchmark: the per-site job against a naive per-site loop, at hundreds to thousands of sites.

Generates (once, cached under ``--data_dir``) ``--sites`` site SavedModels of
one or several Keras architectures with different weights, and ``--rows``
JSON-lines readings per site (see ``site_bench_data.py`` for how). Then, in
one run, each in a process of its own:

- ``naive``: a plain Python loop, per site ``tf.saved_model.load``, predict
  its rows, write JSON-lines (``site_bench_naive.py``);
- ``pipeline``: ``python -m beam_jobs.site_predictions`` on the local runner,
  one worker process;
- ``pipeline-mp2``: the same with ``--direct_num_workers=2
  --direct_running_mode=multi_processing``;

and prints wall seconds, ms per site, rows/s, peak RSS (summed over the
process tree, and the largest single process) and the ratio to the naive
loop. Every pipeline prediction is checked against the naive loop's. With
several ``--sites`` or ``--architectures``, each combination is measured in
turn and a markdown table of all of them ends the output.
``--memory_curve 300,1000,3000`` adds the peak RSS of the pipeline at each
number of sites.

  python benchmarks/site_predictions.py                       # 300 sites x 100 rows
  python benchmarks/site_predictions.py --sites 3000
  python benchmarks/site_predictions.py --sites 3000 --architectures energy,wide,deep
  python benchmarks/site_predictions.py --sites 300,3000 --architectures energy \
      --architectures energy,wide,deep --memory_curve 300,1000,3000   # the README's tables
"""
import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
from typing import Dict, List, NamedTuple, Optional

import numpy as np

import site_bench_data
from process_stats import RunStats
from process_stats import run_measured

REPO = site_bench_data.REPO
PIPELINE_CONFIGS = {
    'pipeline': ['--direct_num_workers=1', '--direct_running_mode=in_memory'],
    'pipeline-mp2': ['--direct_num_workers=2', '--direct_running_mode=multi_processing'],
    'pipeline-mt2': ['--direct_num_workers=2', '--direct_running_mode=multi_threading'],
}
DEFAULT_RUNS = 'naive,pipeline,pipeline-mp2'
RECOMMENDED = 'pipeline'


class Result(NamedTuple):
  name: str
  stats: RunStats
  summary: Optional[dict]
  check: str


def _naive(args, models: str, inputs: str, out: str) -> RunStats:
  os.makedirs(out, exist_ok=True)
  return run_measured(
      [sys.executable, os.path.join(REPO, 'benchmarks', 'site_bench_naive.py'),
       os.path.join(inputs, '*.jsonl'), models, os.path.join(out, 'predictions.jsonl')],
      env=site_bench_data.child_env(), cwd=REPO, log_path=out + '.log')


def _pipeline(config: str, models: str, inputs: str, out: str,
              rows_per_chunk: Optional[int] = None) -> RunStats:
  command = [
      sys.executable, '-m', 'beam_jobs.site_predictions',
      f'--input={os.path.join(inputs, "*.jsonl")}', f'--model_root={models}',
      f'--output={out}', '--key_field=reading_id', '--runner=DirectRunner',
      *PIPELINE_CONFIGS[config]]
  if rows_per_chunk:
    command.append(f'--rows_per_chunk={rows_per_chunk}')
  return run_measured(command, env=site_bench_data.child_env(), cwd=REPO,
                      log_path=out.rstrip('/') + '.log')


def _predictions(files: List[str]) -> Dict[str, dict]:
  found = {}
  for path in files:
    with open(path, encoding='utf-8') as f:
      for line in f:
        line = json.loads(line)
        found[line['key']] = line['prediction']
  return found


def _compare(expected: Dict[str, dict], out: str) -> str:
  got = _predictions(glob.glob(os.path.join(out, 'predictions', '*.jsonl')))
  if set(got) != set(expected):
    return f'MISMATCH: {len(got)} predictions, {len(expected)} expected'
  worst = max((float(np.max(np.abs(np.asarray(got[k][name]) - np.asarray(value))))
               for k, outputs in expected.items() for name, value in outputs.items()),
              default=0.0)
  return f'{len(got)} equal to naive (max abs diff {worst:.2g})'


def _row(name: str, stats: RunStats, sites: int, rows: int, naive: Optional[RunStats]) -> str:
  speedup = f'{naive.wall_s / stats.wall_s:6.1f}x' if naive else '     -'
  return (f'{name:<14}{stats.wall_s:9.1f}{stats.wall_s * 1000 / sites:10.1f}'
          f'{sites * rows / stats.wall_s:10.0f}{stats.peak_tree_rss_mb:11.0f}'
          f'{stats.peak_process_rss_mb:11.0f}   {speedup}')


def _header() -> str:
  return (f'{"run":<14}{"wall_s":>9}{"ms/site":>10}{"rows/s":>10}{"tree_MiB":>11}'
          f'{"proc_MiB":>11}   vs naive')


def _table_row(sites: int, rows: int, architectures: str, results: List[Result]) -> str:
  """One markdown row: the size, then each run's wall time, ratio and peak RSS."""
  naive = next((r.stats for r in results if r.name == 'naive' and r.stats.returncode == 0), None)
  cells = []
  for r in results:
    ratio = f' ({naive.wall_s / r.stats.wall_s:.1f}x)' if naive and r.name != 'naive' else ''
    failed = '' if r.stats.returncode == 0 else ' FAILED'
    cells.append(f'{r.stats.wall_s:.1f} s{ratio}, {r.stats.peak_tree_rss_mb:,.0f} MiB{failed}')
  return (f'| {sites:,} x {rows} | {len(architectures.split(","))} | '
          + ' | '.join(cells) + ' |')


def benchmark(args, sites: int, architectures_arg: str) -> List[Result]:
  """The runs of ``--runs`` at one size and architecture mix, in this order."""
  architectures = architectures_arg.split(',')
  print(f'Data: {sites} sites ({"+".join(architectures)}, {args.trainings} trainings '
        f'each) x {args.rows} rows, cached under {args.data_dir}', flush=True)
  models = site_bench_data.model_root(args.data_dir, sites, architectures, args.trainings)
  inputs = site_bench_data.input_dir(args.data_dir, sites, args.rows)
  work = tempfile.mkdtemp(prefix='site-bench-')
  results: List[Result] = []
  naive_stats, expected = None, None
  try:
    for name in args.runs.split(','):
      out = os.path.join(work, name)
      print(f'Running {name} ...', flush=True)
      if name == 'naive':
        stats = _naive(args, models, inputs, out)
        summary, check = None, 'baseline'
        if stats.returncode == 0:
          naive_stats = stats
          expected = _predictions([os.path.join(out, 'predictions.jsonl')])
      else:
        stats = _pipeline(name, models, inputs, out, args.rows_per_chunk)
        summary_path = os.path.join(out, 'summary.json')
        summary = json.load(open(summary_path)) if os.path.exists(summary_path) else None
        check = _compare(expected, out) if expected is not None and summary else 'not checked'
      if stats.returncode != 0:
        print(f'{name} failed (exit {stats.returncode}):\n{stats.log_tail}', flush=True)
      results.append(Result(name, stats, summary, check))
      shutil.rmtree(out, ignore_errors=True)
  finally:
    if not args.keep_outputs:
      shutil.rmtree(work, ignore_errors=True)

  print(f'\n{sites} sites x {args.rows} rows, architectures: {architectures_arg}')
  print(_header())
  for r in results:
    print(_row(r.name, r.stats, sites, args.rows, naive_stats if r.name != 'naive' else None))
  for r in results:
    if r.summary:
      keys = ('models_loaded', 'models_fast_path', 'model_load_ms_total', 'reconciled')
      print(f'{r.name}: ' + ', '.join(f'{k}={r.summary.get(k)}' for k in keys) + f'; {r.check}')
  print(flush=True)
  return results


def memory_curve(args) -> None:
  """Peak RSS of the recommended pipeline at several numbers of sites.

  With ``--curve_total_rows`` the rows are spread over the sites (constant
  data, so only the number of site models changes); otherwise every site
  has ``--rows`` rows. Uses the first ``--architectures`` mix.
  """
  architectures = args.architectures[0].split(',')
  counts = [int(s) for s in args.memory_curve.split(',')]
  per_site = {n: args.curve_total_rows // n if args.curve_total_rows else args.rows for n in counts}
  print(f'\nMemory curve ({RECOMMENDED}; ' + (
      f'{args.curve_total_rows} rows in total)' if args.curve_total_rows
      else f'{args.rows} rows per site)'))
  print(f'{"sites":>6}{"rows":>9}{"wall_s":>9}{"tree_MiB":>11}{"proc_MiB":>11}')
  for sites in counts:
    models = site_bench_data.model_root(args.data_dir, sites, architectures, args.trainings)
    inputs = site_bench_data.input_dir(args.data_dir, sites, per_site[sites])
    out = tempfile.mkdtemp(prefix='site-bench-curve-')
    try:
      stats = _pipeline(RECOMMENDED, models, inputs, out, args.rows_per_chunk)
    finally:
      shutil.rmtree(out, ignore_errors=True)
      if os.path.exists(out + '.log'):
        os.remove(out + '.log')
    status = '' if stats.returncode == 0 else f'  FAILED: {stats.log_tail[-500:]}'
    print(f'{sites:>6}{sites * per_site[sites]:>9}{stats.wall_s:9.1f}'
          f'{stats.peak_tree_rss_mb:11.0f}{stats.peak_process_rss_mb:11.0f}{status}', flush=True)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--sites', default='300',
                      help='Number of sites, or several comma-separated (default 300).')
  parser.add_argument('--rows', type=int, default=100, help='Rows per site (default 100).')
  parser.add_argument('--architectures', action='append',
                      help=f'Comma-separated mix of {", ".join(site_bench_data.ARCHITECTURES)}; '
                           'site i gets the (i mod n)-th (default: energy). Repeat the flag '
                           'to benchmark several mixes.')
  parser.add_argument('--trainings', type=int, default=3,
                      help='Separate-process exports per architecture the sites derive from.')
  parser.add_argument('--runs', default=DEFAULT_RUNS,
                      help='Comma-separated runs: naive, ' + ', '.join(PIPELINE_CONFIGS) + '.')
  parser.add_argument('--rows_per_chunk', type=int, default=None,
                      help='Passed to the pipeline (default: the job default).')
  parser.add_argument('--memory_curve', default='',
                      help='Comma-separated site counts for a peak-RSS curve, e.g. 300,1000,3000.')
  parser.add_argument('--curve_total_rows', type=int, default=0,
                      help='Spread this many rows over the sites of each curve point '
                           '(default: --rows per site).')
  parser.add_argument('--data_dir', default=os.path.join(tempfile.gettempdir(), 'site-bench-data'),
                      help='Cache folder for generated models and inputs.')
  parser.add_argument('--keep_outputs', action='store_true', help='Keep the runs\' logs.')
  args = parser.parse_args(argv)
  args.architectures = args.architectures or ['energy']
  table = []
  ok = True
  if args.runs:
    for architectures in args.architectures:
      for sites in (int(n) for n in args.sites.split(',')):
        results = benchmark(args, sites, architectures)
        ok = ok and all(r.stats.returncode == 0 for r in results)
        table.append(_table_row(sites, args.rows, architectures, results))
    names = args.runs.split(',')
    print('| sites x rows | archs | ' + ' | '.join(names) + ' |')
    print('|---|---|' + '---|' * len(names))
    print('\n'.join(table), flush=True)
  if args.memory_curve:
    memory_curve(args)
  return 0 if ok else 1


if __name__ == '__main__':
  sys.exit(main())
