"""Building a job's pipeline leaves its options as given (so one options object can build
two pipelines, and what was launched is what the user passed)."""
import json

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline

from beam_jobs import site_predictions
import savedmodel_builders


def test_site_build_pipeline_does_not_mutate_options(tmp_path):
  savedmodel_builders.save_linear(str(tmp_path / 'models' / 'a' / '1'), [1.0, 2.0], 0.5)
  (tmp_path / 'in.jsonl').write_text(json.dumps({'site_id': 'a', 'x': [1.0, 2.0]}) + '\n')
  options = PipelineOptions([
      f'--input={tmp_path}/in.jsonl', f'--model_root={tmp_path}/models', f'--output={tmp_path}/out'
  ])
  before = options.get_all_options()
  assert before['run_id'] is None
  site_predictions.build_pipeline(TestPipeline(options=options), options)
  assert options.get_all_options() == before
