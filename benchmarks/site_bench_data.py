"""Benchmark data for the per-site job: site SavedModels made by real exports, and their rows.

Each export *style* is how some team makes its per-site models
(``site_bench_export.py`` does the exporting, in worker processes):

=================  ==========================================================
``loop-named``     one training loop: a fresh Keras model per site, explicit
                   layer names, ``model.export``, no ``clear_session``
``loop-generated`` the same loop with Keras-generated layer names
``processes``      every site as if exported by its own process (names of a
                   fresh session), spread over ``PROCESSES`` processes whose
                   variable orders differ as separate trainings' do
``module``         a plain ``tf.Module`` with unnamed variables,
                   ``tf.saved_model.save``, in a loop
``versions``       sites retrained and re-exported: version 1 of every site
                   from one loop, version 2 of every other site from a later
                   loop in another process (the pool serves the highest)
``mixed``          one loop over sites of three architectures (i mod 3)
``distinct``       one loop, every site its own architecture (hidden units
                   differ): nothing can share a graph
=================  ==========================================================

Model roots are cached under the data folder (by default ``.bench-cache/``
in the checkout, git-ignored): a root made for N sites serves every smaller
size too (the benchmark feeds rows of the first n sites only) and is
extended when more are asked for. Exports run in ``WORKERS`` processes at a
time (about 0.4 s per Keras site on one core).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, NamedTuple, Tuple

import numpy as np

import site_bench_export
from site_bench_export import site_name  # pylint: disable=unused-import

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA_DIR = os.path.join(REPO, '.bench-cache', 'site-bench')
WORKERS = 2
PROCESSES = 6
_MIXED = ('energy', 'wide', 'deep')
_DONE = '.complete'
_COUNT = '.sites'


class Job(NamedTuple):
  """One worker process: how it exports, and its sites (index, version, architecture)."""
  how: str
  sites: List[Tuple[int, int, str]]


def _loop(how: str,
          indices: range,
          architecture=lambda i: 'energy',
          version: int = 1,
          workers: int = WORKERS) -> List[Job]:
  """A training loop over ``indices``, cut into ``workers`` contiguous loops run in parallel."""
  indices = list(indices)
  step = max(1, -(-len(indices) // workers))
  return [
      Job(how, [(i, version, architecture(i)) for i in indices[k:k + step]])
      for k in range(0, len(indices), step)
  ]


def plan(style: str, start: int, stop: int) -> List[List[Job]]:
  """Export jobs for sites [start, stop) of ``style``, in phases run one after another."""
  sites = range(start, stop)
  if style == 'loop-named':
    return [_loop('keras-named', sites)]
  if style == 'loop-generated':
    return [_loop('keras-generated', sites)]
  if style == 'processes':
    return [[
        Job('keras-fresh', [(i, 1, 'energy') for i in sites if i % PROCESSES == p])
        for p in range(PROCESSES) if any(i % PROCESSES == p for i in sites)
    ]]
  if style == 'module':
    return [_loop('module', sites)]
  if style == 'versions':
    retrained = range(start + start % 2, stop, 2)
    return [_loop('keras-named', sites, version=1), _loop('keras-named', retrained, version=2)]
  if style == 'mixed':
    return [_loop('keras-named', sites, lambda i: _MIXED[i % len(_MIXED)])]
  if style == 'distinct':
    return [_loop('keras-named', sites, lambda i: f'u{2 + i}')]
  raise ValueError(f'unknown style {style!r}; known: {", ".join(STYLES)}')


STYLES = ('loop-named', 'loop-generated', 'processes', 'module', 'versions', 'mixed', 'distinct')


def child_env() -> Dict[str, str]:
  """This checkout first on the path; local-run settings for Google libraries."""
  env = dict(os.environ)
  env['PYTHONPATH'] = REPO + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
  env.setdefault('GOOGLE_APPLICATION_CREDENTIALS',
                 os.path.join(REPO, 'samples', 'local_credentials.json'))
  env.setdefault('NO_GCE_CHECK', 'true')
  env.setdefault('GOOGLE_CLOUD_PROJECT', 'local-project')
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  return env


def _run_jobs(root: str, jobs: List[Job], workers: int) -> None:
  script = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'site_bench_export.py')
  with tempfile.TemporaryDirectory(prefix='site-bench-jobs-') as tmp:
    pending = list(enumerate(jobs))
    running = []
    while pending or running:
      while pending and len(running) < workers:
        k, job = pending.pop(0)
        spec = os.path.join(tmp, f'job-{k}.json')
        with open(spec, 'w', encoding='utf-8') as f:
          json.dump({'how': job.how, 'root': root, 'sites': job.sites}, f)
        running.append(
            (job, subprocess.Popen([sys.executable, script, spec], env=child_env(), cwd=REPO)))
      job, proc = running.pop(0)
      if proc.wait() != 0:
        raise RuntimeError(f'exporting {len(job.sites)} {job.how} sites failed '
                           f'(exit {proc.returncode})')


def model_root(data_dir: str, style: str, sites: int, workers: int = WORKERS) -> str:
  """``{root}/{site}/{version}/`` holding at least ``sites`` sites of ``style`` (cached)."""
  root = os.path.join(data_dir, f'models-{style}')
  have = 0
  if os.path.exists(os.path.join(root, _COUNT)):
    with open(os.path.join(root, _COUNT), encoding='ascii') as f:
      have = int(f.read())
  if have >= sites:
    return root
  if have == 0:
    shutil.rmtree(root, ignore_errors=True)
  os.makedirs(root, exist_ok=True)
  print(
      f'  exporting sites {have}..{sites - 1} of style {style} '
      f'({workers} worker processes at a time)',
      flush=True)
  for phase in plan(style, have, sites):
    _run_jobs(root, phase, workers)
  with open(os.path.join(root, _COUNT), 'w', encoding='ascii') as f:
    f.write(str(sites))
  return root


def input_dir(data_dir: str, sites: int, rows: int, files: int = 8) -> str:
  """``rows`` hourly readings per site as JSON-lines, sites interleaved, in ``files`` parts."""
  folder = os.path.join(data_dir, f'input-{sites}x{rows}')
  if os.path.exists(os.path.join(folder, _DONE)):
    return folder
  shutil.rmtree(folder, ignore_errors=True)
  os.makedirs(folder)
  rng = np.random.default_rng(rows)
  outs = [
      open(os.path.join(folder, f'part-{k:02d}.jsonl'), 'w', encoding='utf-8') for k in range(files)
  ]
  try:
    n = 0
    for hour in range(rows):
      temperature = np.round(rng.normal(15, 9, sites), 1)
      occupancy = np.round(rng.uniform(0, 1, sites), 2)
      area = rng.integers(300, 5000, sites)
      for i in range(sites):
        site = site_name(i)
        outs[n % files].write(
            json.dumps({
                'site_id': site,
                'reading_id': f'{site}-h{hour:04d}',
                'hour': hour,
                'temperature_c': float(temperature[i]),
                'occupancy': float(occupancy[i]),
                'floor_area_m2': int(area[i])
            }) + '\n')
        n += 1
  finally:
    for f in outs:
      f.close()
  open(os.path.join(folder, _DONE), 'w').close()
  return folder


def site_list(sites: int) -> List[str]:
  return [site_name(i) for i in range(sites)]
