"""JobOptions: Beam's options with each view made once, and nothing else different."""
import json
import pickle

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.options.pipeline_options import TypeOptions

from beam_jobs import runtime
from beam_jobs import site_predictions
from beam_jobs.io_options import JobIOOptions
from beam_jobs.job_options import JobOptions
from beam_jobs.usage import UnknownFlagError
import pytest
import savedmodel_builders

FLAGS = [
    '--input=gs://b/in/*.jsonl', '--output=gs://b/out', '--runner=DataflowRunner',
    '--experiments=a', '--experiments=b'
]


def test_views_are_made_once_and_share_their_values():
  options = JobOptions(FLAGS)
  standard = options.view_as(StandardOptions)
  assert options.view_as(StandardOptions) is standard
  standard.runner = 'FnApiRunner'
  # Values live in the shared store: a new view of the same options and a view of
  # another class made afterwards see them.
  assert options.view_as(StandardOptions).runner == 'FnApiRunner'
  assert PipelineOptions.view_as(options, StandardOptions).runner == 'FnApiRunner'
  assert options.get_all_options()['runner'] == 'FnApiRunner'
  assert options.view_as(JobIOOptions).output == 'gs://b/out'


def test_same_values_as_beams_options():
  assert JobOptions(FLAGS).get_all_options() == PipelineOptions(FLAGS).get_all_options()
  assert (JobOptions(FLAGS).view_as(TypeOptions).runtime_type_check == PipelineOptions(
      FLAGS).view_as(TypeOptions).runtime_type_check)


def test_parse_options_still_refuses_unknown_flags():
  assert isinstance(runtime.parse_options(FLAGS), JobOptions)
  with pytest.raises(UnknownFlagError):
    runtime.parse_options(FLAGS + ['--outptu=x'])


def test_a_job_built_with_either_options_has_the_same_graph(tmp_path):
  savedmodel_builders.save_linear(str(tmp_path / 'models' / 'a' / '1'), [1.0, 2.0], 0.5)
  (tmp_path / 'in.jsonl').write_text(json.dumps({'site_id': 'a', 'x': [1.0, 2.0]}) + '\n')
  flags = [
      f'--input={tmp_path}/in.jsonl', f'--model_root={tmp_path}/models', f'--output={tmp_path}/out',
      '--run_id=fixed'
  ]
  graphs = []
  for options in (PipelineOptions(flags), JobOptions(flags)):
    pipeline = beam.Pipeline(runner='FnApiRunner', options=options)
    site_predictions.build_pipeline(pipeline, options, started_at=0.0)
    proto = pipeline.to_runner_api()
    graphs.append(
        sorted((t.unique_name, t.spec.urn, tuple(sorted(t.inputs)), tuple(sorted(t.outputs)))
               for t in proto.components.transforms.values()))
  assert graphs[0] == graphs[1]
  assert len(graphs[0]) > 100


def test_a_pickle_leaves_out_submission_only_values_and_keeps_one_store_of_values():
  options = JobOptions(FLAGS + ['--impersonate_service_account=launcher@p.iam.gserviceaccount.com'])
  assert options.view_as(GoogleCloudOptions).impersonate_service_account  # views cached
  assert options.view_as(StandardOptions).runner == 'DataflowRunner'
  restored = pickle.loads(pickle.dumps(options))
  assert isinstance(restored, JobOptions)
  assert restored.view_as(GoogleCloudOptions).impersonate_service_account is None
  assert restored.view_as(JobIOOptions).output == 'gs://b/out'
  assert options.view_as(GoogleCloudOptions).impersonate_service_account  # the original keeps it
  # Values set through a view of the restored options are the restored options' values.
  restored.view_as(StandardOptions).runner = 'FnApiRunner'
  assert restored.get_all_options()['runner'] == 'FnApiRunner'
  assert restored.view_as(TypeOptions).view_as(StandardOptions).runner == 'FnApiRunner'
