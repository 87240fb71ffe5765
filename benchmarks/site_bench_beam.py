"""The Beam-native peer: what a Beam user writes with Beam's own per-key model API.

One minimal SavedModel ``ModelHandler`` per site (``load_model``:
``tf.saved_model.load(path).signatures['serving_default']``; ``run_inference``:
the batch's rows stacked per input, one signature call), all of them in one
``KeyedModelHandler([KeyModelMapping([site], handler) ...],
max_models_per_worker_hint=H)`` inside ``RunInference``, on the local runner
with one worker, as the pipeline runs. Every site and its model folder
(highest integer version) must be known when the pipeline is built, which
is what Beam's API asks for.

Rows are grouped by site before ``RunInference`` (``GroupByKey``, then one
element per row again): RunInference's batches then hold one or a few sites
each. Without it (``--ungrouped``), the batches of an interleaved input mix
hundreds of sites and, below ``H`` = all sites, the handler reloads models
for nearly every batch.

  python benchmarks/site_bench_beam.py INPUT_GLOB MODEL_ROOT OUTPUT_PREFIX \
      --sites 300 --max_models 256
"""
import argparse
import json
import os
import sys
from typing import Any, Dict, Iterable, List, Optional, Sequence

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler
from apache_beam.ml.inference.base import KeyModelMapping
from apache_beam.ml.inference.base import ModelHandler
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions
import numpy as np


class SavedModelHandler(ModelHandler[Dict[str, Any], PredictionResult, Any]):
  """``row -> PredictionResult(row, {output: value})`` with one site's SavedModel signature."""

  def __init__(self, path: str):
    super().__init__()
    self._path = path

  def load_model(self):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf.saved_model.load(self._path).signatures['serving_default']

  def run_inference(self,
                    batch: Sequence[Dict[str, Any]],
                    model,
                    inference_args: Optional[Dict[str, Any]] = None) -> Iterable[PredictionResult]:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    _, specs = model.structured_input_signature
    feed = {}
    for name, spec in specs.items():
      values = np.asarray([row[name] for row in batch], spec.dtype.as_numpy_dtype)
      feed[name] = tf.constant(values.reshape([-1] + spec.shape.as_list()[1:]))
    outputs = {name: value.numpy() for name, value in model(**feed).items()}
    return [
        PredictionResult(row, {
            name: value[i].tolist()
            for name, value in outputs.items()
        }) for i, row in enumerate(batch)
    ]


def model_folder(model_root: str, site: str) -> str:
  site_dir = os.path.join(model_root, site)
  versions = [v for v in os.listdir(site_dir) if v.isdigit()]
  return os.path.join(site_dir, max(versions, key=int)) if versions else site_dir


def format_line(element) -> str:
  site, result = element
  return json.dumps(
      {
          'site_id': site,
          'key': result.example.get('reading_id'),
          'prediction': result.inference
      },
      separators=(',', ':'))


def run(input_glob: str,
        model_root: str,
        output_prefix: str,
        sites: List[str],
        max_models: int,
        grouped: bool = True) -> None:
  handler = KeyedModelHandler([
      KeyModelMapping([site], SavedModelHandler(model_folder(model_root, site))) for site in sites
  ],
                              max_models_per_worker_hint=max_models)
  options = PipelineOptions(runner='DirectRunner',
                            direct_num_workers=1,
                            direct_running_mode='in_memory')
  with beam.Pipeline(options=options) as pipeline:
    rows = (pipeline
            | 'Read' >> beam.io.ReadFromText(input_glob)
            | 'Parse' >> beam.Map(json.loads)
            | 'BySite' >> beam.Map(lambda row: (str(row['site_id']), row)))
    if grouped:
      rows = (rows
              | 'GroupBySite' >> beam.GroupByKey()
              | 'Rows' >> beam.FlatMap(lambda kv: ((kv[0], row) for row in kv[1])))
    _ = (rows
         | 'RunInference' >> RunInference(handler)
         | 'Format' >> beam.Map(format_line)
         | 'Write' >> beam.io.WriteToText(output_prefix, file_name_suffix='.jsonl'))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('input_glob')
  parser.add_argument('model_root')
  parser.add_argument('output_prefix')
  parser.add_argument('--sites',
                      type=int,
                      required=True,
                      help='Sites site-00000 .. site-{N-1} (every site the input holds).')
  parser.add_argument('--max_models', type=int, required=True, help='max_models_per_worker_hint.')
  parser.add_argument('--ungrouped',
                      action='store_true',
                      help='Do not group rows by site before RunInference.')
  args = parser.parse_args(argv)
  sites = [f'site-{i:05d}' for i in range(args.sites)]
  run(args.input_glob,
      args.model_root,
      args.output_prefix,
      sites,
      args.max_models,
      grouped=not args.ungrouped)
  return 0


if __name__ == '__main__':
  sys.exit(main())
