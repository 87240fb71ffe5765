"""Benchmark: where a local per-site run's fixed time goes, from process start to exit.

Runs the per-site job's console script (``site-predictions``, in-memory
runner, one worker) on a tiny input (``--rows`` rows of one site, exported
as ``--style`` by :mod:`site_bench_data`) ``--repeats`` times, each in a
fresh interpreter, and prints the median time from the parent's spawn of
the process to each point of its timeline:

- ``launch``: the job's modules imported (Beam, TensorFlow for the
  in-process workers, the job), flags parsed and validated;
- ``built``: the pipeline constructed (the launcher's heap freeze);
- ``first bundle``: the runner starts its first bundle (its set-up done:
  the pipeline's conversion to Beam's portable form, stage fusion);
- ``run done``: the pipeline finished (every bundle, the run report);
- ``exit``: the process ended (summary printed, interpreter shut down).

The child is the real console script, with Beam's bundle processor and the
launcher's freeze wrapped only to note the time of their first call (it
imports Beam before the script does, as the script imports it and with the
collector deferred as the script defers it, so the sum is the same).

    python benchmarks/start_up.py
    python benchmarks/start_up.py --repeats 5 --rows 100
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import site_bench_data

# Runs in the child: notes when the first bundle starts and when the pipeline is built.
_CHILD = """
import json, sys, time
marks = {}
def mark(name):
    marks.setdefault(name, time.time())
from common import heap
from common import lean_imports
heap.defer_collection()  # what the console script does first; imports below run as under it
lean_imports.import_beam()  # as the console script imports Beam (without pandas)
from apache_beam.runners.worker import bundle_processor
from beam_jobs import cli, runtime
_process_bundle = bundle_processor.BundleProcessor.process_bundle
def process_bundle(self, *args, **kwargs):
    mark('first bundle')
    return _process_bundle(self, *args, **kwargs)
bundle_processor.BundleProcessor.process_bundle = process_bundle
_freeze = heap.freeze_set_up_objects
def freeze():
    mark('built')
    _freeze()
heap.freeze_set_up_objects = freeze
_launch = runtime.launch
def launch(*args, **kwargs):
    mark('launch')
    try:
        return _launch(*args, **kwargs)
    finally:
        mark('run done')
runtime.launch = launch
try:
    status = cli.site_predictions(sys.argv[2:])
finally:
    with open(sys.argv[1], 'w') as f:
        json.dump(marks, f)
sys.exit(status)
"""
POINTS = ('launch', 'built', 'first bundle', 'run done', 'exit')


def _run_once(models: str, inputs: str, work: str, index: int) -> Dict[str, float]:
  marks_path = os.path.join(work, f'marks-{index}.json')
  command = [
      sys.executable, '-c', _CHILD, marks_path, f'--input={os.path.join(inputs, "*.jsonl")}',
      f'--model_root={models}', f'--output={os.path.join(work, f"out-{index}")}',
      '--runner=DirectRunner', '--direct_num_workers=1', '--direct_running_mode=in_memory'
  ]
  started = time.time()
  done = subprocess.run(command,
                        env=site_bench_data.child_env(),
                        cwd=site_bench_data.REPO,
                        capture_output=True,
                        text=True,
                        check=False)
  ended = time.time()
  if done.returncode != 0:
    raise SystemExit(f'run {index} failed (exit {done.returncode}):\n{done.stderr[-3000:]}')
  with open(marks_path, encoding='utf-8') as f:
    marks = json.load(f)
  marks['exit'] = ended
  return {point: marks[point] - started for point in POINTS}


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--rows', type=int, default=1, help='Rows of the one site.')
  parser.add_argument('--style', default='loop-named', choices=site_bench_data.STYLES)
  parser.add_argument('--data_dir', default=site_bench_data.DEFAULT_DATA_DIR)
  args = parser.parse_args(argv)
  models = site_bench_data.model_root(args.data_dir, args.style, 1)
  inputs = site_bench_data.input_dir(args.data_dir, 1, args.rows)
  with tempfile.TemporaryDirectory(prefix='start-up-') as work:
    runs = [_run_once(models, inputs, work, i) for i in range(args.repeats)]
  print(f'1 site x {args.rows} row(s), style {args.style}, in-memory runner, one worker; '
        f'seconds from spawn, median of {len(runs)} (min-max)')
  previous = 0.0
  for point in POINTS:
    values = [run[point] for run in runs]
    median = statistics.median(values)
    print(f'{point:<14}{median:7.2f}  (+{median - previous:5.2f})   '
          f'{min(values):.2f}-{max(values):.2f}')
    previous = median
  print(json.dumps({point: round(statistics.median(r[point] for r in runs), 3)
                    for point in POINTS}))
  return 0


if __name__ == '__main__':
  sys.exit(main())
