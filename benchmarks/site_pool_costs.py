"""Per-site cost of a worker's model pool, phase by phase, without Beam around it.

For the sites of ``MODEL_ROOT`` (the first ``--sites``), in a fresh process:
the steps a first load takes, each timed over all sites on its own (locate
the version folder, parse ``saved_model.pb`` and compute the architecture
key, the same with the functions of earlier sites known as a pool knows
them, read the variables), then ``SiteModelPool.get`` of every site (the
whole load: those steps plus registering or binding, bookkeeping and
eviction at the pool's default bound of 256; sites beyond it are evicted and
loaded again, timed on their own) and ``predict`` of ``--rows`` rows per site
(first call per site), and last the naive loop's ``tf.saved_model.load``
plus one call, for reference. Prints CPU and wall milliseconds per site.

  python benchmarks/site_pool_costs.py MODEL_ROOT --sites 300
"""
import argparse
import os
import sys
import time
from typing import Callable, List

import numpy as np


def _timed(label: str, sites: List[str], step: Callable[[str], object]) -> None:
  wall, cpu = time.perf_counter(), time.process_time()
  for site in sites:
    step(site)
  wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
  print(f'{label:<34}{cpu * 1000 / len(sites):9.3f}{wall * 1000 / len(sites):9.3f}', flush=True)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('model_root')
  parser.add_argument('--sites', type=int, default=300)
  parser.add_argument('--rows', type=int, default=100)
  parser.add_argument('--naive', type=int, default=30, help='Sites loaded naively (0: none).')
  args = parser.parse_args(argv)
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from models.site import architecture_key  # pylint: disable=import-outside-toplevel
  from models.site import variable_restore  # pylint: disable=import-outside-toplevel
  from models.site.known_functions import KnownFunctions  # pylint: disable=import-outside-toplevel
  from models.site.layout import locate  # pylint: disable=import-outside-toplevel
  from models.site.pool import SiteModelPool  # pylint: disable=import-outside-toplevel

  sites = sorted(s for s in os.listdir(args.model_root)
                 if os.path.isdir(os.path.join(args.model_root, s)))[:args.sites]
  rng = np.random.default_rng(0)
  rows = [{
      'temperature_c': float(rng.normal(15, 9)),
      'occupancy': float(rng.uniform()),
      'floor_area_m2': int(rng.integers(300, 5000))
  } for _ in range(args.rows)]
  warm = SiteModelPool(model_root=args.model_root, signature='serving_default')
  warm.get(sites[0]).model.predict(rows)  # TF's one-time start-up costs
  print(f'{len(sites)} sites of {args.model_root}, {args.rows} rows each')
  print(f'{"step":<34}{"cpu_ms":>9}{"wall_ms":>9}   (per site)')
  locations = {}
  _timed('locate', sites, lambda s: locations.__setitem__(s, locate(args.model_root, s)))
  found = {}
  _timed(
      'parse + architecture key', sites, lambda s: found.__setitem__(
          s, architecture_key.read_architecture(locations[s].path, 'serving_default')))
  known = KnownFunctions()
  _timed(
      '  the same, architectures known', sites, lambda s: architecture_key.read_architecture(
          locations[s].path, 'serving_default', known=known))
  _timed('read variables', sites,
         lambda s: variable_restore.read_weights(locations[s].path, found[s]))
  pool = SiteModelPool(model_root=args.model_root, signature='serving_default')
  models = {}
  _timed('pool.get (whole load)', sites, lambda s: models.__setitem__(s, pool.get(s).model))
  evicted = sites[:len(sites) - pool.size]  # least recently used first
  if evicted:
    _timed(f'pool.get (reload of {len(evicted)} evicted)', evicted, pool.get)
  _timed(f'predict {args.rows} rows (first call)', sites[-256:], lambda s: models[s].predict(rows))
  _timed(f'predict {args.rows} rows (again)', sites[-256:], lambda s: models[s].predict(rows))
  fast = sum(1 for m in models.values() if getattr(m, 'fast_path', False))
  print(f'fast path: {fast} of {len(sites)} sites; pool holds {pool.size}, '
        f'{pool.num_graphs} graphs')
  if args.naive:
    feed = {
        n: tf.constant(np.asarray([[r[n]] for r in rows], np.float32))
        for n in ('temperature_c', 'occupancy', 'floor_area_m2')
    }
    _timed('naive: tf.saved_model.load + call', sites[:args.naive],
           lambda s: tf.saved_model.load(locations[s].path).signatures['serving_default'](**feed))
  return 0


if __name__ == '__main__':
  sys.exit(main())
