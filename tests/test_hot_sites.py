"""A hot site (a third of all rows) is predicted by more than one worker process.

Multi-process local runner (two worker processes): after the site grouping,
the chunks of one site are spread over workers (``GroupRowsBySite``'s
Reshuffle), every row still comes out exactly once, and each worker process
that predicts the hot site loads its model once.
"""
import json
import os
import pathlib

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that

import savedmodel_builders as builders
from transforms.site.grouping import GroupRowsBySite
from transforms.site.inference import PredictPerSite

HOT_ROWS, COLD_SITES, COLD_ROWS, ROWS_PER_CHUNK = 300, 6, 100, 10
WEIGHTS, BIAS = (2.0, -1.0), 0.5


def _lines():
  rng = np.random.default_rng(7)
  lines, i = [], 0
  sites = ['hot'] * HOT_ROWS + [f'cold-{k}' for k in range(COLD_SITES) for _ in range(COLD_ROWS)]
  for site in [sites[j] for j in rng.permutation(len(sites))]:
    x = np.round(rng.normal(size=2), 3).tolist()
    lines.append(('in.jsonl', json.dumps({'site_id': site, 'i': i, 'x': x})))
    i += 1
  return lines


def _predicted(batch):
  return [('row', os.getpid(), p.site_id, p.instance['i'], p.outputs['y']) for p in batch]


def _letter(letter):
  return 'row', None, letter['site_id'], letter['record']['i'], letter['reason']


def _load(element):
  site_id, _ = element
  return 'load', os.getpid(), site_id, None, None


def _check(lines):
  rows = {json.loads(text)['i']: json.loads(text) for _, text in lines}

  def check(outputs):
    seen = sorted(o[3] for o in outputs if o[0] == 'row')
    assert seen == sorted(rows), 'every row exactly once (predicted or dead letter)'
    hot = [o for o in outputs if o[0] == 'row' and o[2] == 'hot']
    assert len(hot) == HOT_ROWS
    for _, _, _, i, y in hot:
      want = np.float32(np.dot(np.asarray(rows[i]['x'], np.float32), WEIGHTS) + BIAS)
      assert y == pytest.approx(float(want), rel=1e-6)
    cold = [o for o in outputs if o[0] == 'row' and o[2] != 'hot']
    assert {o[4] for o in cold} == {'no_model'}
    workers = {o[1] for o in hot}
    assert len(workers) > 1, f'the hot site ran in one worker process only: {workers}'
    loads = [o[1] for o in outputs if o[0] == 'load' and o[2] == 'hot']
    # The model cost of spreading: one load of the hot site per worker process that predicts it.
    assert sorted(loads) == sorted(workers), (loads, workers)

  return check


@pytest.mark.slow
def test_chunks_of_a_hot_site_are_predicted_in_several_worker_processes(tmp_path, monkeypatch):
  builders.save_linear(str(tmp_path / 'models' / 'hot' / '1'), WEIGHTS, BIAS)
  tests_dir = str(pathlib.Path(__file__).resolve().parent)
  monkeypatch.setenv(
      'PYTHONPATH',
      os.pathsep.join([tests_dir] +
                      [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
  lines = _lines()
  options = PipelineOptions(['--direct_num_workers=2', '--direct_running_mode=multi_processing'])
  with beam.Pipeline(runner='DirectRunner', options=options) as pipeline:
    grouped = (pipeline
               | beam.Create(lines)
               | GroupRowsBySite('site_id', json_lines=True, rows_per_chunk=ROWS_PER_CHUNK))
    result = grouped.chunks | PredictPerSite(model_root=str(tmp_path / 'models'))
    outputs = (
        result.prediction_batches | 'Rows' >> beam.FlatMap(_predicted),
        (grouped.failed, result.failed) | 'Failed' >> beam.Flatten()
        | 'Letters' >> beam.Map(_letter),
        result.model_loads | 'Loads' >> beam.Map(_load),
    ) | beam.Flatten()
    assert_that(outputs, _check(lines))
