"""Per-site version manifests, instance config and their flag checks, through the job.

End to end on the local runner (``site_predictions.run``) with real exported
SavedModels; flag mistakes exit 2 with one line before anything runs.
"""
import json
import os

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to

from beam_jobs import site_predictions
from transforms.site.inference import PredictPerSite
from transforms.site.grouping import GroupRowsBySite
import savedmodel_builders
import vertex_job_data as data

pytestmark = pytest.mark.e2e


class _ParsesExamples(tf.Module):
  """serving_default(examples: string[None]) -> {"score"}: parses tf.Examples itself."""

  def __init__(self):
    super().__init__()
    self.w = tf.Variable([2.0, -1.0])

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
  def serve(self, examples):
    parsed = tf.io.parse_example(examples, {'v': tf.io.FixedLenFeature([2], tf.float32)})
    return {'score': tf.linalg.matvec(parsed['v'], self.w)}


@pytest.fixture(scope='module')
def models(tmp_path_factory):
  root = tmp_path_factory.mktemp('models')
  dirs = savedmodel_builders.build_model_root(str(root))
  module = _ParsesExamples()
  dirs['parser'] = str(root / 'parser' / '1')
  tf.saved_model.save(module, dirs['parser'], signatures={'serving_default': module.serve})
  return str(root), dirs


ROWS = [{
    'site_id': 'lin-a',
    'rid': 'a1',
    'x': [1.0, 2.0, 3.0],
    'note': 'n1'
}, {
    'site_id': 'lin-a',
    'rid': 'a2',
    'x': [0.5, -1.0, 4.0]
}, {
    'site_id': 'lin-b',
    'rid': 'b1',
    'x': [1.0, 2.0, 3.0]
}, {
    'site_id': 'echo',
    'rid': 'e1',
    'key': 'k',
    'x': [0.1, 0.2]
}]


def _version_dir(model_root, site, version):
  return os.path.join(model_root, site, version)


def _by_key(found):
  return {line['key']: line for line in found['predictions']}


def _run_with_manifest(model_root, tmp_path, name, manifest, rows=ROWS, *flags):
  """Runs the job on ``rows`` with ``--model_versions`` a file ``name`` holding ``manifest``."""
  (tmp_path / name).write_text(manifest)
  path = data.write_rows(tmp_path / 'in', 'jsonl', rows)
  return data.run_job(path, model_root, tmp_path / 'out', f'--model_versions={tmp_path}/{name}',
                      *flags)


def test_a_manifest_pins_an_older_version_for_its_site_only(models, tmp_path):
  model_root, _ = models
  found = _run_with_manifest(model_root, tmp_path, 'pins.csv', 'site_id,version\r\nlin-a,1\r\n')
  by_key = _by_key(found)
  assert sorted(by_key) == ['a1', 'a2', 'b1', 'e1']
  for row, version in zip(ROWS, ('1', '1', '10', '3')):
    data.assert_outputs_equal(by_key[row['rid']]['prediction'],
                              data.direct(_version_dir(model_root, row['site_id'], version), row))
  assert {
      site: line['model_versions']
      for site, line in found['sites'].items()
  } == {
      'lin-a': ['1'],
      'lin-b': ['10'],
      'echo': ['3']
  }


def test_a_pinned_version_that_does_not_exist_fails_that_site_only(models, tmp_path):
  model_root, model_dirs = models
  found = _run_with_manifest(model_root, tmp_path, 'pins.json', '{"lin-a": "7"}')
  letters = {l['record']['rid']: l for l in found['errors']}
  assert sorted(letters) == ['a1', 'a2']
  assert all(l['reason'] == 'no_model' and 'version 7' in l['message'] for l in letters.values())
  by_key = _by_key(found)
  assert sorted(by_key) == ['b1', 'e1']
  for row in ROWS[2:]:
    data.assert_outputs_equal(by_key[row['rid']]['prediction'],
                              data.direct(model_dirs[row['site_id']], row))
  assert found['sites']['lin-a']['status'] == 'failed'
  assert found['summary']['failed'] == {'no_model': 2}
  assert found['summary']['reconciled'] is True


def test_sites_not_in_the_manifest_take_model_version(models, tmp_path):
  model_root, _ = models
  found = _run_with_manifest(model_root, tmp_path, 'pins.json', '{"lin-b": 9}', ROWS[:3],
                             '--model_version=1')
  by_key = _by_key(found)
  for row, version in zip(ROWS, ('1', '1', '9')):
    data.assert_outputs_equal(by_key[row['rid']]['prediction'],
                              data.direct(_version_dir(model_root, row['site_id'], version), row))
  assert found['sites']['lin-b']['model_versions'] == ['9']


def _prediction_versions(batch):
  return [(p.instance['rid'], p.model_version) for p in batch]


def test_every_prediction_carries_the_version_that_made_it(models):
  model_root, _ = models
  with TestPipeline(runner='FnApiRunner') as p:
    grouped = (p | beam.Create([('rows', row) for row in ROWS]) | GroupRowsBySite('site_id'))
    result = grouped.chunks | PredictPerSite(model_root=model_root,
                                             model_versions={
                                                 'lin-a': '1',
                                                 'echo': '9'
                                             })
    assert_that(result.prediction_batches | beam.FlatMap(_prediction_versions),
                equal_to([('a1', '1'), ('a2', '1'), ('b1', '10')]),
                label='versions')
    assert_that(result.failed | beam.Map(lambda l: (l['record']['rid'], l['reason'])),
                equal_to([('e1', 'no_model')]),
                label='failed')


CONFIG_ROWS = [
    {
        'site_id': 'lin-a',
        'rid': 'a1',
        'x': [1.0, 2.0, 3.0],
        'note': 'n',
        'extra': 5
    },
    {
        'site_id': 'lin-a',
        'rid': 'a2',
        'x': [2.0, 0.0, -1.0],
        'extra': 6
    },
    {
        'site_id': 'multi',
        'rid': 'm1',
        'a': 1.5,
        'b': 3,
        'note': 'm'
    },
]


def _run_on_config_rows(models, tmp_path, flag, echoed):
  """Runs the job on CONFIG_ROWS with ``flag``; checks that each lin-a row is predicted
  as the model predicts it and echoed as ``echoed(row)``; returns the one dead letter
  (a missing_feature one)."""
  model_root, model_dirs = models
  path = data.write_rows(tmp_path / 'in', 'jsonl', CONFIG_ROWS)
  found = data.run_job(path, model_root, tmp_path / 'out', flag)
  by_key = _by_key(found)
  for row in CONFIG_ROWS[:2]:
    line = by_key[row['rid']]
    assert line['instance'] == echoed(row)
    data.assert_outputs_equal(line['prediction'], data.direct(model_dirs['lin-a'], row))
  [letter] = found['errors']
  assert letter['reason'] == 'missing_feature'
  return letter


def test_included_fields_are_all_that_is_fed_and_echoed(models, tmp_path):
  letter = _run_on_config_rows(models,
                               tmp_path,
                               '--included_fields=x',
                               echoed=lambda row: {
                                   'site_id': 'lin-a',
                                   'rid': row['rid'],
                                   'x': row['x']
                               })
  assert letter['record'] == CONFIG_ROWS[2]


def test_excluded_fields_are_neither_fed_nor_echoed(models, tmp_path):
  letter = _run_on_config_rows(models,
                               tmp_path,
                               '--excluded_fields=note,b',
                               echoed=lambda row: {
                                   k: v
                                   for k, v in row.items() if k != 'note'
                               })
  assert "'b'" in letter['message']


def test_array_instances_of_csv_cells_feed_a_one_tensor_signature(models, tmp_path):
  model_root, model_dirs = models
  rows = [{
      'site_id': 'lin-a',
      'rid': 'a1',
      't0': 1.5,
      't1': -2,
      't2': 0.25,
      'note': 'n'
  }, {
      'site_id': 'lin-b',
      'rid': 'b1',
      't0': 3.0,
      't1': 1.0,
      't2': 2.0
  }, {
      'site_id': 'lin-a',
      'rid': 'gap',
      't0': 1.0,
      't2': 2.0
  }, {
      'site_id': 'lin-a',
      'rid': 'word',
      't0': 1.0,
      't1': 2.0,
      't2': 'abc'
  }, {
      'site_id': 'multi',
      'rid': 'two',
      't0': 1.0,
      't1': 2.0,
      't2': 3.0
  }]
  path = data.write_rows(tmp_path / 'in', 'csv', rows)
  found = data.run_job(path, model_root, tmp_path / 'out', '--instance_type=array',
                       '--included_fields=t0,t1,t2')
  by_key = _by_key(found)
  assert sorted(by_key) == ['a1', 'b1']
  for row in rows[:2]:
    assert by_key[row['rid']]['instance'] == {
        k: data._cell(row[k])
        for k in ('site_id', 'rid', 't0', 't1', 't2')
    }  # pylint: disable=protected-access
    data.assert_outputs_equal(
        by_key[row['rid']]['prediction'],
        data.direct(model_dirs[row['site_id']], {'x': [row['t0'], row['t1'], row['t2']]}))
  reasons = {l['record']['rid']: (l['reason'], l['message']) for l in found['errors']}
  assert {
      rid: reason
      for rid, (reason, _) in reasons.items()
  } == {
      'gap': 'missing_feature',
      'word': 'bad_feature',
      'two': 'bad_feature'
  }
  assert 'takes 2 inputs' in reasons['two'][1]
  assert found['summary']['reconciled'] is True


def test_tfrecord_rows_can_carry_their_serialized_example(models, tmp_path):
  model_root, model_dirs = models
  rows = [{
      'site_id': 'parser',
      'rid': 'p1',
      'v': [1.5, 2.0]
  }, {
      'site_id': 'parser',
      'rid': 'p2',
      'v': [-1.0, 0.25]
  }, {
      'site_id': 'lin-a',
      'rid': 'a1',
      'x': [1.0, 2.0, 3.0]
  }]
  path = data.write_rows(tmp_path / 'in', 'tfrecord', rows)
  found = data.run_job(path, model_root, tmp_path / 'out', '--tfrecord_serialized_field=examples')
  by_key = _by_key(found)
  assert sorted(by_key) == ['a1', 'p1', 'p2']
  for row in rows[:2]:
    data.assert_outputs_equal(
        by_key[row['rid']]['prediction'],
        data.direct(model_dirs['parser'], {'examples': data.example_bytes(row)}))
  data.assert_outputs_equal(by_key['a1']['prediction'], data.direct(model_dirs['lin-a'], rows[2]))


@pytest.fixture
def flag_files(tmp_path):
  (tmp_path / 'in').mkdir()
  (tmp_path / 'in' / 'a.jsonl').write_text(json.dumps(ROWS[0]) + '\n')
  (tmp_path / 'in' / 'b.csv').write_text('site_id,x\nlin-a,"[1, 2, 3]"\n')
  (tmp_path / 'bad.json').write_text('{\n  "lin-a": "1",\n  "lin-b": "v2"\n}\n')
  (tmp_path / 'bad.csv').write_text('site_id,version\nlin-a,1\nlin-a,2\n')
  (tmp_path / 'missing.txt').write_text('in/a.jsonl\nin/gone.jsonl\n')
  (tmp_path / 'mixed.txt').write_text('in/a.jsonl\nin/b.csv\n')
  (tmp_path / 'models').mkdir()
  return tmp_path


@pytest.mark.parametrize('flags,line', [
    (['--model_versions={t}/bad.json'
      ], "error: --model_versions: {t}/bad.json: line 3: version 'v2' of site 'lin-b'"),
    (['--model_versions={t}/bad.csv'
      ], "error: --model_versions: {t}/bad.csv: line 3: site 'lin-a' is listed twice"),
    (['--model_versions={t}/none.json'], "error: --model_versions: '{t}/none.json' does not"),
    (['--included_fields=x', '--excluded_fields=note'
      ], 'error: --excluded_fields: cannot be combined with --included_fields'),
    (['--instance_type=array'], 'error: --instance_type: array instances need --included_fields'),
    (['--instance_type=tensor'], "error: --instance_type: 'tensor' is not one of object, array"),
    (['--included_fields=x,,y'], 'error: --included_fields: '),
    (['--input_format=parquet'], "error: --input_format: input format 'parquet' is not one of"),
    (['--file_list_format=csv'], 'error: --file_list_format: only applies with '
     '--input_format=file_list'),
    (['--tfrecord_serialized_field=ex'], 'error: --tfrecord_serialized_field: only applies to '
     'TFRecord input (this input is jsonl)'),
    (['--input={t}/missing.txt', '--input_format=file_list'
      ], 'error: --input: file list {t}/missing.txt: line 2: '),
    (['--input={t}/mixed.txt', '--input_format=file_list'
      ], 'error: --input: {t}/mixed.txt mixes input formats'),
    (['--input={t}/mixed.txt', '--input_format=file_list', '--file_list_format=xml'
      ], "error: --file_list_format: --file_list_format 'xml' is not one of"),
])
def test_flag_mistakes_exit_2_with_one_line_before_anything_runs(flag_files, flags, line, capsys):
  t = str(flag_files)
  argv = [f'--input={t}/in/a.jsonl', f'--model_root={t}/models', f'--output={t}/out']
  argv += [flag.format(t=t) for flag in flags]
  assert site_predictions.main(argv) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith(line.format(t=t)), err
  assert not (flag_files / 'out').exists()


def test_input_format_flags_do_not_apply_to_bigquery_input(flag_files, capsys):
  t = str(flag_files)
  assert site_predictions.main([
      '--input_table=my-project:d.t', '--input_format=csv', f'--model_root={t}/models',
      f'--output={t}/out'
  ]) == 2
  assert capsys.readouterr().err.strip() == 'error: --input_format: only applies with --input'
