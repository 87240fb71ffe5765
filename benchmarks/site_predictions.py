"""Benchmark: the per-site job against a naive loop and Beam's own per-key API, per export style.

Site models are made by real exports in each style of ``site_bench_data.py``
(cached under ``--data_dir``), with ``--rows`` JSON-lines readings per site.
For each case ``STYLE@SITES`` (or ``STYLE@SITESxROWS``) of ``--cases``, in one
run, each in a process of its own:

- ``naive``: a plain Python loop, per site ``tf.saved_model.load``, predict
  its rows, write JSON-lines (``site_bench_naive.py``);
- ``pipeline``: ``python -m beam_jobs.site_predictions`` on the local runner,
  one worker process (``pipeline-mp2``: two, multi-processing);
- ``beam-all`` / ``beam-H``: the Beam-native peer (``site_bench_beam.py``),
  ``RunInference(KeyedModelHandler([KeyModelMapping([site], handler) ...],
  max_models_per_worker_hint=H))`` with H = every site, or H;

and prints wall seconds (process start to exit, imports included), ms per
site, peak RSS and the ratio to the naive loop. Every prediction of every
run is checked against the naive loop's (same keys; the largest difference
is printed: rows batched differently may differ in the last float bit). The
pipeline's ``summary.json`` gives the fast-path share: site models that
shared an already registered graph, of all site models loaded. One markdown
table of every case ends the output.

  python benchmarks/site_predictions.py                                 # every style, 300 sites
  python benchmarks/site_predictions.py --cases loop-named@3000,mixed@3000
  python benchmarks/site_predictions.py --cases module@20 --runs naive,pipeline   # a smoke run
  python benchmarks/site_predictions.py --cases loop-named@3000 --time_limit_s 600
  python benchmarks/site_predictions.py --cases loop-named@1000x1000,loop-named@10000x100
"""
import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

import site_bench_data
from process_stats import RunStats
from process_stats import run_measured

REPO = site_bench_data.REPO
PIPELINE_CONFIGS = {
    'pipeline': ['--direct_num_workers=1', '--direct_running_mode=in_memory'],
    'pipeline-mp2': ['--direct_num_workers=2', '--direct_running_mode=multi_processing'],
}
DEFAULT_CASES = ','.join(f'{style}@300' for style in site_bench_data.STYLES)
DEFAULT_RUNS = 'naive,pipeline,beam-all,beam-256'
RECOMMENDED = 'pipeline'


class Result(NamedTuple):
  name: str
  stats: RunStats
  summary: Optional[dict]
  check: str


def _script(name: str) -> str:
  return os.path.join(REPO, 'benchmarks', name)


def _run(command: List[str], log_path: str, limit_s: Optional[float]) -> RunStats:
  return run_measured(command,
                      env=site_bench_data.child_env(),
                      cwd=REPO,
                      log_path=log_path,
                      limit_s=limit_s)


def _naive(models: str, inputs: str, out: str, limit_s: Optional[float]) -> RunStats:
  os.makedirs(out, exist_ok=True)
  return _run([
      sys.executable,
      _script('site_bench_naive.py'),
      os.path.join(inputs, '*.jsonl'), models,
      os.path.join(out, 'predictions.jsonl')
  ], out + '.log', limit_s)


def _pipeline(config: str, models: str, inputs: str, out: str, rows_per_chunk: Optional[int],
              limit_s: Optional[float]) -> RunStats:
  command = [
      sys.executable, '-m', 'beam_jobs.site_predictions',
      f'--input={os.path.join(inputs, "*.jsonl")}', f'--model_root={models}', f'--output={out}',
      '--key_field=reading_id', '--runner=DirectRunner', *PIPELINE_CONFIGS[config]
  ]
  if rows_per_chunk:
    command.append(f'--rows_per_chunk={rows_per_chunk}')
  return _run(command, out.rstrip('/') + '.log', limit_s)


def _beam(max_models: int, sites: int, models: str, inputs: str, out: str,
          limit_s: Optional[float]) -> RunStats:
  os.makedirs(out, exist_ok=True)
  return _run([
      sys.executable,
      _script('site_bench_beam.py'),
      os.path.join(inputs, '*.jsonl'), models,
      os.path.join(out, 'predictions'), f'--sites={sites}', f'--max_models={max_models}'
  ], out + '.log', limit_s)


def _predictions(files: List[str]) -> Dict[str, dict]:
  found = {}
  for path in files:
    with open(path, encoding='utf-8') as f:
      for line in f:
        line = json.loads(line)
        found[line['key']] = line['prediction']
  return found


def _compare(expected: Dict[str, dict], files: List[str]) -> str:
  got = _predictions(files)
  if set(got) != set(expected):
    return f'MISMATCH: {len(got)} predictions, {len(expected)} expected'
  worst = max((float(np.max(np.abs(np.asarray(got[k][name]) - np.asarray(value))))
               for k, outputs in expected.items() for name, value in outputs.items()),
              default=0.0)
  return f'{len(got)} equal to naive (max abs diff {worst:.2g})'


def _fast_path(summary: Optional[dict]) -> str:
  if not summary:
    return '-'
  loaded, fast = summary.get('models_loaded', 0), summary.get('models_fast_path', 0)
  return f'{fast:,}/{loaded:,} ({100 * fast / loaded:.1f}%)' if loaded else '-'


def _row(name: str, stats: RunStats, sites: int, rows: int, naive: Optional[RunStats]) -> str:
  speedup = f'{naive.wall_s / stats.wall_s:6.2f}x' if naive else '     -'
  cpu_speedup = f'{naive.cpu_s / stats.cpu_s:6.2f}x' if naive and stats.cpu_s else '     -'
  return (f'{name:<14}{stats.wall_s:9.1f}{stats.cpu_s:9.1f}{stats.wall_s * 1000 / sites:10.1f}'
          f'{sites * rows / stats.wall_s:10.0f}{stats.peak_tree_rss_mb:11.0f}'
          f'{stats.peak_process_rss_mb:11.0f}   {speedup}  {cpu_speedup}')


def _header() -> str:
  return (f'{"run":<14}{"wall_s":>9}{"cpu_s":>9}{"ms/site":>10}{"rows/s":>10}{"tree_MiB":>11}'
          f'{"proc_MiB":>11}   vs naive (wall, cpu)')


def _cell(stats: RunStats, naive: Optional[RunStats]) -> str:
  """A run's wall time and ratio to the naive loop; a stopped run's are bounds."""
  bound = '< ' if stats.timed_out else ''
  ratio = f' ({bound}{naive.wall_s / stats.wall_s:.2f}x)' if naive else ''
  if stats.timed_out:
    return f'> {stats.wall_s:.0f} s, stopped{ratio}'
  failed = '' if stats.returncode == 0 else ' FAILED'
  return f'{stats.wall_s:.1f} s{ratio}{failed}'


def _versus_beam(results: List[Result]) -> str:
  """How many times faster the recommended pipeline is than the fastest Beam-native run."""
  ours = next((r.stats for r in results if r.name == RECOMMENDED and r.stats.returncode == 0), None)
  beams = [
      r.stats for r in results
      if r.name.startswith('beam-') and (r.stats.returncode == 0 or r.stats.timed_out)
  ]
  if not ours or not beams:
    return '-'
  best = min(beams, key=lambda s: s.wall_s)
  bound = '> ' if all(s.timed_out for s in beams) else ''
  return f'{bound}{best.wall_s / ours.wall_s:.2f}x'


def succeeded(result: Result) -> bool:
  """A run counts when it finished; only a Beam-native peer may be stopped at the limit.

  The naive loop and the pipeline give every ratio of the table, so one of
  them stopped fails the benchmark.
  """
  if result.stats.timed_out:
    return result.name.startswith('beam-')
  return result.stats.returncode == 0


def _table_row(style: str, sites: int, rows: int, results: List[Result]) -> str:
  """One markdown row: the case, each run's wall time and ratio, the fast-path share."""
  naive = next((r.stats for r in results if r.name == 'naive' and r.stats.returncode == 0), None)
  cells = [_cell(r.stats, naive if r.name != 'naive' else None) for r in results]
  summary = next((r.summary for r in results if r.name == RECOMMENDED), None)
  return (f'| {style} | {sites:,} x {rows} | ' + ' | '.join(cells) +
          f' | {_versus_beam(results)} | {_fast_path(summary)} |')


def _run_name(name: str, sites: int) -> Tuple[str, Optional[int]]:
  if name.startswith('beam-'):
    hint = name[len('beam-'):]
    return 'beam', sites if hint == 'all' else int(hint)
  return name, None


def benchmark(args, style: str, sites: int, rows: int) -> List[Result]:
  """The runs of ``--runs`` for one case, in this order."""
  print(f'Data: {sites} sites of style {style} x {rows} rows, cached under {args.data_dir}',
        flush=True)
  models = site_bench_data.model_root(args.data_dir, style, sites)
  inputs = site_bench_data.input_dir(args.data_dir, sites, rows)
  work = tempfile.mkdtemp(prefix='site-bench-')
  results: List[Result] = []
  naive_stats, expected = None, None
  try:
    for name in args.runs.split(','):
      out = os.path.join(work, name)
      kind, hint = _run_name(name, sites)
      print(f'Running {name} ...', flush=True)
      summary, check = None, 'not checked'
      if kind == 'naive':
        stats = _naive(models, inputs, out, args.time_limit_s)
        check = 'baseline'
        if stats.returncode == 0:
          naive_stats = stats
          expected = _predictions([os.path.join(out, 'predictions.jsonl')])
      elif kind == 'beam':
        stats = _beam(hint, sites, models, inputs, out, args.time_limit_s)
        if expected is not None and stats.returncode == 0:
          check = _compare(expected, glob.glob(os.path.join(out, 'predictions*.jsonl')))
      else:
        stats = _pipeline(kind, models, inputs, out, args.rows_per_chunk, args.time_limit_s)
        summary_path = os.path.join(out, 'summary.json')
        if os.path.exists(summary_path):
          with open(summary_path, encoding='utf-8') as f:
            summary = json.load(f)
        if expected is not None and summary:
          check = _compare(expected, glob.glob(os.path.join(out, 'predictions', '*.jsonl')))
      if stats.timed_out:
        print(f'{name} stopped at the time limit ({args.time_limit_s:.0f} s)', flush=True)
        if not name.startswith('beam-'):
          print(f'{name} gives the table\'s ratios: raise --time_limit_s', flush=True)
      elif stats.returncode != 0:
        print(f'{name} failed (exit {stats.returncode}):\n{stats.log_tail}', flush=True)
      results.append(Result(name, stats, summary, check))
      shutil.rmtree(out, ignore_errors=True)
  finally:
    if not args.keep_outputs:
      shutil.rmtree(work, ignore_errors=True)

  print(f'\n{style}: {sites} sites x {rows} rows')
  print(_header())
  for r in results:
    print(_row(r.name, r.stats, sites, rows, naive_stats if r.name != 'naive' else None))
  for r in results:
    extra = ''
    if r.summary:
      keys = ('models_loaded', 'models_fast_path', 'model_load_ms_total', 'reconciled')
      extra = ', '.join(f'{k}={r.summary.get(k)}' for k in keys) + '; '
    print(f'{r.name}: {extra}{r.check}')
  print(flush=True)
  return results


def memory_curve(args) -> None:
  """Peak RSS of the recommended pipeline at several numbers of loop-named sites."""
  counts = [int(s) for s in args.memory_curve.split(',')]
  print(f'\nMemory curve ({RECOMMENDED}, loop-named sites, {args.rows} rows per site)')
  print(f'{"sites":>6}{"rows":>9}{"wall_s":>9}{"tree_MiB":>11}{"proc_MiB":>11}')
  for sites in counts:
    models = site_bench_data.model_root(args.data_dir, 'loop-named', sites)
    inputs = site_bench_data.input_dir(args.data_dir, sites, args.rows)
    out = tempfile.mkdtemp(prefix='site-bench-curve-')
    try:
      stats = _pipeline(RECOMMENDED, models, inputs, out, args.rows_per_chunk, None)
    finally:
      shutil.rmtree(out, ignore_errors=True)
      if os.path.exists(out + '.log'):
        os.remove(out + '.log')
    status = '' if stats.returncode == 0 else f'  FAILED: {stats.log_tail[-500:]}'
    print(
        f'{sites:>6}{sites * args.rows:>9}{stats.wall_s:9.1f}'
        f'{stats.peak_tree_rss_mb:11.0f}{stats.peak_process_rss_mb:11.0f}{status}',
        flush=True)


def _count(text: str) -> bool:
  """Whether ``text`` is a positive integer in ASCII digits."""
  return text.isascii() and text.isdigit() and int(text) > 0


def _cases(text: str, rows: int) -> List[Tuple[str, int, int]]:
  """``STYLE@SITES[xROWS]`` cases -> ``(style, sites, rows)`` (``rows`` where not given)."""
  cases = []
  for case in text.split(','):
    style, _, size = case.partition('@')
    sites, by, case_rows = size.partition('x')
    if (style not in site_bench_data.STYLES or not _count(sites) or (by and not _count(case_rows))):
      raise SystemExit(f'--cases: {case!r} is not STYLE@SITES or STYLE@SITESxROWS with STYLE '
                       f'one of {", ".join(site_bench_data.STYLES)}')
    cases.append((style, int(sites), int(case_rows) if by else rows))
  return cases


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--cases',
                      default=DEFAULT_CASES,
                      help='Comma-separated STYLE@SITES or STYLE@SITESxROWS (default: every '
                      'style at 300 sites).')
  parser.add_argument('--rows',
                      type=int,
                      default=100,
                      help='Rows per site of the cases that give none (default 100).')
  parser.add_argument('--runs',
                      default=DEFAULT_RUNS,
                      help='Comma-separated runs: naive, ' + ', '.join(PIPELINE_CONFIGS) +
                      ', beam-all, beam-H (default: %(default)s).')
  parser.add_argument('--rows_per_chunk',
                      type=int,
                      default=None,
                      help='Passed to the pipeline (default: the job default).')
  parser.add_argument('--memory_curve',
                      default='',
                      help='Comma-separated site counts for a peak-RSS curve, e.g. 300,1000,3000.')
  parser.add_argument('--data_dir',
                      default=site_bench_data.DEFAULT_DATA_DIR,
                      help='Cache folder for generated models and inputs (default: %(default)s).')
  parser.add_argument('--time_limit_s',
                      type=float,
                      default=None,
                      help='Stop any run still going after this many seconds; its figures '
                      'are then bounds ("> T s, stopped"). Default: no limit.')
  parser.add_argument('--keep_outputs', action='store_true', help='Keep the runs\' logs.')
  args = parser.parse_args(argv)
  table = []
  ok = True
  if args.runs:
    for style, sites, rows in _cases(args.cases, args.rows):
      results = benchmark(args, style, sites, rows)
      ok = ok and all(succeeded(r) for r in results)
      ok = ok and not any(r.check.startswith('MISMATCH') for r in results)
      table.append(_table_row(style, sites, rows, results))
    names = args.runs.split(',')
    print('| style | sites x rows | ' + ' | '.join(names) +
          f' | {RECOMMENDED} vs best Beam-native | fast path |')
    print('|---|---|' + '---|' * len(names) + '---|---|')
    print('\n'.join(table), flush=True)
  if args.memory_curve:
    memory_curve(args)
  return 0 if ok else 1


if __name__ == '__main__':
  sys.exit(main())
