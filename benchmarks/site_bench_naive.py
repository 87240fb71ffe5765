"""The naive baseline: a plain Python loop, per site ``tf.saved_model.load``, predict, write.

What a per-site script without Beam does: read every JSON line, group rows
by site, then for each site load its SavedModel (highest integer version),
run its rows in one call and write one prediction line per row, in the
pipeline's format. Run as a script so it gets a process of its own::

  python benchmarks/site_bench_naive.py INPUT_GLOB MODEL_ROOT OUTPUT_FILE
"""
import collections
import glob
import json
import os
import sys

import numpy as np


def _highest_version(site_dir: str) -> str:
  versions = [v for v in os.listdir(site_dir) if v.isdigit()]
  return os.path.join(site_dir, max(versions, key=int)) if versions else site_dir


def run(input_glob: str, model_root: str, output_file: str, key_field: str = 'reading_id') -> int:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  rows_by_site = collections.defaultdict(list)
  for path in sorted(glob.glob(input_glob)):
    with open(path, encoding='utf-8') as f:
      for line in f:
        row = json.loads(line)
        rows_by_site[str(row['site_id'])].append(row)
  written = 0
  with open(output_file, 'w', encoding='utf-8') as out:
    for site, rows in rows_by_site.items():
      signature = tf.saved_model.load(_highest_version(os.path.join(
          model_root, site))).signatures['serving_default']
      _, specs = signature.structured_input_signature
      feed = {}
      for name, spec in specs.items():
        values = np.asarray([row[name] for row in rows], spec.dtype.as_numpy_dtype)
        feed[name] = tf.constant(values.reshape([-1] + spec.shape.as_list()[1:]))
      outputs = {name: value.numpy() for name, value in signature(**feed).items()}
      for i, row in enumerate(rows):
        out.write(
            json.dumps(
                {
                    'site_id': site,
                    'key': row.get(key_field),
                    'instance': row,
                    'prediction': {
                        name: value[i].tolist()
                        for name, value in outputs.items()
                    },
                },
                separators=(',', ':')) + '\n')
        written += 1
  return written


if __name__ == '__main__':
  print(f'naive: wrote {run(*sys.argv[1:4])} predictions')
