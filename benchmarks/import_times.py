"""Benchmark: what a job process pays to import its libraries, each in a fresh interpreter.

Start-up is a fixed cost of every job and worker process (the per-site job's
local run spends about a third of a 3,000-site run before its first bundle).
Each import below runs ``--repeats`` times in a new ``python -c``, timed
inside the child (interpreter start-up excluded); the median is printed, and
each figure is also given relative to importing NumPy alone.

    python benchmarks/import_times.py
    python benchmarks/import_times.py --path /tmp/ml_dtypes-0.7.0   # another copy first on sys.path

``--path`` puts a folder first on the children's ``sys.path`` (e.g. a
``pip install --target`` of another ml_dtypes version) to compare versions
within one run.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

IMPORTS = {
    'numpy': 'import numpy',
    'ml_dtypes': 'import numpy; _t = time.perf_counter(); import ml_dtypes',
    'apache_beam': 'import apache_beam',
    'tensorflow (no Keras)': 'from common import tensorflow_import; tensorflow_import.import_without_keras()',
    'per-site job module': 'import beam_jobs.site_predictions',
}

_CHILD = """
import json, sys, time
_t = time.perf_counter()
{statement}
_s = time.perf_counter() - _t
import ml_dtypes
print(json.dumps({{'s': _s, 'ml_dtypes': ml_dtypes.__version__}}))
"""


def _time_once(statement: str, path: Optional[str]) -> Dict[str, object]:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  env['PYTHONPATH'] = os.pathsep.join(p for p in (path, REPO, env.get('PYTHONPATH')) if p)
  out = subprocess.run(
      [sys.executable, '-c', _CHILD.format(statement=statement)],
      env=env,
      cwd=REPO,
      capture_output=True,
      text=True,
      check=True).stdout
  return json.loads(out.strip().splitlines()[-1])


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--path', default=None, help='A folder first on the children\'s path.')
  args = parser.parse_args(argv)
  rows = []
  for name, statement in IMPORTS.items():
    runs = [_time_once(statement, args.path) for _ in range(args.repeats)]
    rows.append((name, statistics.median(r['s'] for r in runs), runs[0]['ml_dtypes']))
  base = rows[0][1]
  print(
      f'{"import":<24} {"median_s":>9} {"x numpy":>8}  ml_dtypes   (python {sys.version.split()[0]}, '
      f'{args.repeats} fresh processes each{", path " + args.path if args.path else ""})')
  for name, seconds, version in rows:
    print(f'{name:<24} {seconds:>9.3f} {seconds / base:>8.1f}  {version}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
