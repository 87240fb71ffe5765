"""The trigger function refuses trigger files and parameter sets the jobs would refuse, and
still launches their near misses (gcp-storage-emulator, recording Dataflow server)."""
import json

import pytest

from trigger_support import DETECT_FIXED
from trigger_support import SITE_TRIGGER
from trigger_support import client  # noqa: F401  pylint: disable=unused-import
from trigger_support import dataflow  # noqa: F401  pylint: disable=unused-import
from trigger_support import deliver
from trigger_support import emulator_env  # noqa: F401  pylint: disable=unused-import
from trigger_support import log_lines
from trigger_support import upload

pytestmark = pytest.mark.gcs


@pytest.fixture
def env(emulator_env):  # pylint: disable=redefined-outer-name
  return emulator_env


DETECT_TRIGGER = {
    'job': 'detect_images',
    'parameters': {
        **DETECT_FIXED, 'input': 'gs://test-bucket/cameras/',
        'output': 'gs://test-bucket/detections/run-1'
    }
}


def _edited(trigger, **changes):
  """``trigger`` as JSON, its parameters changed by ``changes`` (a None value drops one)."""
  parameters = {**trigger['parameters'], **changes}
  return json.dumps({
      **trigger, 'parameters': {
          key: value
          for key, value in parameters.items() if value is not None
      }
  })


def _with(**changes):
  return _edited(SITE_TRIGGER, **changes)


def _detect(**changes):
  return _edited(DETECT_TRIGGER, **changes)


@pytest.mark.parametrize('content,reason', [
    ('{"job": "site_predictions", ', 'not JSON'),
    ('["site_predictions"]', 'must be a JSON object'),
    (json.dumps({
        'job': 'mine_bitcoin',
        'parameters': {}
    }), 'unknown job'),
    (json.dumps({
        **SITE_TRIGGER, 'environment': {
            'machineType': 'huge'
        }
    }), 'unknown trigger file fields'),
    (json.dumps({
        'job': 'site_predictions',
        'parameters': 'input=x'
    }), '"parameters" must be'),
    (_with(model_root='gs://attacker-bucket/models'), "bucket 'attacker-bucket'"),
    (_with(output='gs://test-bucket/predictions/../triggers/x'), 'does not match'),
    (_with(runner='DirectRunner'), "'runner' is not a parameter"),
    (_with(sdk_container_image='evil/image'), "'sdk_container_image' is not a parameter"),
    (_with(rows_per_chunk='0'), "'rows_per_chunk' value '0' does not match"),
    (_with(output_format='csv'), 'does not match'),
    (_with(input='/etc/passwd'), 'does not match'),
    (_with(model_root=None), 'missing required parameters: model_root'),
    (_with(output='gs://test-bucket/triggers/out'), 'watched prefix'),
    (_with(output='gs://test-bucket/input-images/out'), 'watched prefix'),
    (_with(key_field=['a']), 'must be a string or number'),
    ('{"job": "site_predictions", "parameters": {}, "pad": "' + 'x' * 70000 + '"}',
     'bytes, more than'),
])
def test_hostile_or_malformed_trigger_files_are_rejected(client, env, dataflow, capsys, content,
                                                         reason):
  gen = upload('triggers/t.json', content)
  assert deliver(client, 'triggers/t.json', gen).status_code == 200
  assert dataflow.requests == []
  logged = [json.loads(l) for l in capsys.readouterr().out.splitlines() if l.startswith('{')]
  assert [l['outcome'] for l in logged] == ['rejected']
  assert logged[0]['severity'] == 'WARNING' and reason in logged[0]['reason'], logged[0]


# What the jobs refuse at start (job_rules): (trigger file, parameter, code, reason).
JOB_WOULD_REFUSE = [
    (_with(output='gs://test-bucket/instances/2026-11-20'), 'output', 'output_overlaps_input',
     'overlaps the input'),  # output holds the input files
    (_with(output='gs://test-bucket/instances'), 'output', 'output_overlaps_input',
     'overlaps the input'),  # ... two levels up
    (_with(input='gs://test-bucket/data/**', output='gs://test-bucket/data/out'), 'output',
     'output_overlaps_input', 'overlaps the input'),  # ** crosses "/"
    (_with(input='gs://test-bucket/data/*/part-*.jsonl', output='gs://test-bucket/data/x'),
     'output', 'output_overlaps_input', 'overlaps the input'),  # data/x/part-1.jsonl
    (_with(input='gs://test-bucket/data/p?rt/*', output='gs://test-bucket/data/p/rt'), 'output',
     'output_overlaps_input', 'overlaps the input'),  # unsure: ? may be "/"
    (_with(input='gs://test-bucket/day/a.jsonl', output='gs://test-bucket/day/a.jsonl/'), 'output',
     'output_overlaps_input', 'is the input'),
    (_with(input=None), 'input', 'missing_parameter', 'exactly one of input'),
    (_with(input_table='p-roject:ds.t'), 'input_table', 'conflicting_parameters',
     'exactly one of input'),
    (_with(row_restriction="day = '1'"), 'row_restriction', 'conflicting_parameters',
     'only applies with input_table'),
    (_detect(output='gs://test-bucket/cameras/out'), 'output', 'output_overlaps_input',
     'inside the input folder'),
    (_detect(output='gs://test-bucket/cameras'), 'output', 'output_overlaps_input',
     'inside the input folder'),
    (_detect(output='gs://test-bucket'), 'output', 'output_overlaps_input', 'overlaps the input'),
    (_detect(input='gs://test-bucket/cameras/*.jpg', output='gs://test-bucket/cameras/out'),
     'output', 'output_overlaps_input', 'inside the input folder'),  # the job's root rule
    (_detect(input='gs://test-bucket/cam', output='gs://test-bucket/cam-out'), 'output',
     'output_overlaps_input', 'inside the input folder'),  # no cam/ folder: a name prefix
    (_detect(move_inputs_to='gs://test-bucket/cameras/done/'), 'move_inputs_to',
     'output_overlaps_input', 'inside the input folder'),
    (_detect(move_inputs_to='gs://test-bucket/detections/run-1/moved'), 'move_inputs_to',
     'output_overlaps_input', 'overlaps the output'),
    (_detect(move_inputs_to='gs://test-bucket/done/',
             delete_inputs='true'), 'move_inputs_to', 'conflicting_parameters', 'not both'),
    (_detect(model='gs://models-bucket/y.torchscript'), 'model', 'conflicting_parameters',
     'not both'),
    (_detect(class_names=None), 'class_names', 'missing_parameter', 'class_names'),
    (_detect(image_size='100'), 'image_size', 'bad_value', 'multiple of 32'),
    (_detect(score_threshold='1.5'), 'score_threshold', 'bad_value', 'does not match'),
    (_with(overwrite='yes'), 'overwrite', 'bad_value', 'does not match'),
    (_with(max_failed_fraction='2'), 'max_failed_fraction', 'bad_value', 'does not match'),
]


@pytest.mark.parametrize('content,parameter,code,reason', JOB_WOULD_REFUSE)
def test_parameter_sets_the_job_would_refuse_are_not_launched(client, env, dataflow, capsys,
                                                              content, parameter, code, reason):
  gen = upload('triggers/t.json', content)
  assert deliver(client, 'triggers/t.json', gen).status_code == 200
  assert dataflow.requests == []
  logged = log_lines(capsys.readouterr().out)
  assert len(logged) == 1 and logged[0]['outcome'] == 'rejected', logged
  assert (logged[0]['parameter'], logged[0]['code']) == (parameter, code), logged[0]
  assert reason in logged[0]['reason'], logged[0]


@pytest.mark.parametrize(
    'changes',
    [
        {
            'input': 'gs://test-bucket/data/*.jsonl',
            'output': 'gs://test-bucket/data/out'
        },  # * stays
        {
            'input': 'gs://test-bucket/data/a.jsonl',
            'output': 'gs://test-bucket/data/a-out'
        },
        {
            'input': 'gs://test-bucket/in/**',
            'output': 'gs://test-bucket/in-out'
        },
        {
            'overwrite': 'true',
            'max_failed_fraction': '0.01'
        },
    ])
def test_near_misses_still_launch(client, env, dataflow, changes):
  gen = upload('triggers/t.json', _with(**changes))
  assert deliver(client, 'triggers/t.json', gen).status_code == 200
  assert len(dataflow.launches) == 1
  assert dataflow.launches[0]['parameters'] == {**SITE_TRIGGER['parameters'], **changes}


@pytest.mark.parametrize(
    'layout,refused',
    [
        ({
            'cam/a.jpg': b'x'
        }, False),  # gs://test-bucket/cam is a folder: root is cam
        ({
            'cam-1.jpg': b'x'
        }, True),  # a name prefix: root is the bucket
    ])
def test_detection_input_root_is_read_from_storage_like_the_job_does(client, env, dataflow, layout,
                                                                     refused):
  for name, content in layout.items():
    upload(name, content)
  gen = upload('triggers/t.json',
               _detect(input='gs://test-bucket/cam', output='gs://test-bucket/detections/run-1'))
  assert deliver(client, 'triggers/t.json', gen).status_code == 200
  assert len(dataflow.requests) == (0 if refused else 1)
