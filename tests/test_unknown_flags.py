"""A mistyped flag fails at launch (exit 2, one line with Beam's closest flag), in both
jobs, from the console scripts, run() and the Flex template entry point alike."""
import gc
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs import detect_images
from beam_jobs import site_predictions
from beam_jobs import usage

REPO = pathlib.Path(__file__).resolve().parents[1]
JOBS = {'site_predictions': site_predictions, 'detect_images': detect_images}

# What Dataflow's Python Flex template launcher adds to the template parameters
# when it runs FLEX_TEMPLATE_PYTHON_PY_FILE (it stages the job with
# --template_location=.../template_launches/<id>/job_object), plus the
# launch-time environment options gcloud/the API turn into pipeline flags.
LAUNCHER_FLAGS = [
    '--runner=DataflowRunner',
    '--project=my-project',
    '--region=europe-west4',
    '--job_name=site-predictions-20261120',
    '--temp_location=gs://my-bucket/tmp',
    '--staging_location=gs://my-bucket/staging',
    '--template_location=gs://my-bucket/staging/template_launches/2026-11-20_01-123/job_object',
    '--sdk_container_image=europe-west4-docker.pkg.dev/my-project/jobs/site_predictions:abc',
    '--service_account_email=jobs@my-project.iam.gserviceaccount.com',
    '--labels=job=site_predictions',
    '--labels=goog-dataflow-provided-template-type=flex',
    '--setup_file=/template/setup.py',
    '--requirements_file=/template/requirements.txt',
    '--sdk_location=container',
    '--experiments=use_runner_v2',
    '--dataflow_service_options=enable_prime',
    '--max_num_workers=20',
    '--num_workers=2',
    '--worker_machine_type=n1-standard-4',
    '--subnetwork=regions/europe-west4/subnetworks/jobs',
    '--network=jobs',
    '--no_use_public_ips',
    '--worker_region=europe-west4',
    '--dataflow_kms_key=projects/p/locations/l/keyRings/r/cryptoKeys/k',
    '--flexrs_goal=COST_OPTIMIZED',
    '--disk_size_gb=50',
    '--autoscaling_algorithm=THROUGHPUT_BASED',
    '--save_main_session',
]


def _one_line(capsys) -> str:
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1, err
  return err[0]


@pytest.mark.parametrize('job, args, line', [
    ('site_predictions', ['--key_feild=reading_id'
                          ], 'error: unknown flag --key_feild (did you mean --key_field?)'),
    ('site_predictions', ['--input=x.jsonl', '--max_failed_fracton', '0.2'],
     'error: unknown flag --max_failed_fracton (did you mean --max_failed_fraction?)'),
    ('detect_images', ['--score_treshold=0.3'
                       ], 'error: unknown flag --score_treshold (did you mean --score_threshold?)'),
    ('detect_images', ['--score_treshold', '0.3'
                       ], 'error: unknown flag --score_treshold (did you mean --score_threshold?)'),
    ('detect_images', ['--overwirte'
                       ], 'error: unknown flag --overwirte (did you mean --overwrite?)'),
    ('site_predictions', ['--qqqqqqqqqqqqqq=1'
                          ], 'error: unknown flag --qqqqqqqqqqqqqq (see --help)'),
    ('site_predictions', ['--input', 'a.jsonl', 'b.jsonl'
                          ], "error: unexpected argument 'b.jsonl' (flags are --name=value)"),
    ('site_predictions', ['--rows_per_chunk=many'
                          ], "error: --rows_per_chunk: invalid int value: 'many'"),
    ('detect_images', ['--device=tpu'
                       ], "error: --device: invalid choice: 'tpu' (choose from 'cpu', 'cuda')"),
    ('detect_images', ['--overwrite=maybe'
                       ], "error: --overwrite: expected true or false, got 'maybe'"),
])
def test_mistakes_in_flags_are_one_line_and_exit_2(job, args, line, tmp_path, capsys):
  argv = args + [f'--output={tmp_path}/out']
  assert JOBS[job].main(argv) == 2
  assert _one_line(capsys) == line
  assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('job', JOBS)
def test_run_raises_before_anything_runs(job, tmp_path):
  with pytest.raises(usage.UnknownFlagError,
                     match=r'^unknown flag --outptu \(did you mean --output\?\)$'):
    JOBS[job].run([f'--outptu={tmp_path}/out'])


@pytest.mark.parametrize('job', JOBS)
def test_flex_launcher_flags_and_every_template_parameter_are_known(job):
  parameters = json.loads((REPO / 'templates' / job / 'metadata.json').read_text())['parameters']
  usage.check_flags(LAUNCHER_FLAGS + [f'--{p["name"]}={_valid_value(p)}' for p in parameters])
  options = PipelineOptions(LAUNCHER_FLAGS).get_all_options()
  assert options['template_location'].endswith('/job_object')
  assert options['runner'] == 'DataflowRunner'


def _valid_value(parameter) -> str:
  """A value the template's regexes accept (what the launcher would pass)."""
  for value in ('true', '1', '416', '0.5', 'jsonl', 'FILE_LOADS', 'cpu', 'gs://my-bucket/x',
                'p:d.t', 'x', 'auto', 'object'):
    if all(re.fullmatch(r, value) for r in parameter['regexes']):
      return value
  raise AssertionError(parameter['name'])


def test_every_registered_options_class_counts_including_later_ones():

  class LateOptions(PipelineOptions):

    @classmethod
    def _add_argparse_args(cls, parser):
      parser.add_argument('--late_flag_for_this_test')

  try:
    usage.check_flags([
        '--late_flag_for_this_test=1', '--direct_num_workers=2', '--input=x', '--model_root=y',
        '--classes=cup'
    ])
    assert any(c.__name__ == 'GoogleCloudOptions' for c in usage.options_classes())
  finally:
    # A class lives until the collector breaks its cycles; until then Beam's registry
    # would show its flag to every later test (get_all_options of any options).
    del LateOptions
    gc.collect()
  assert not any(c.__name__ == 'LateOptions' for c in usage.options_classes())


def _script(job, *args):
  """The job as the Flex template launcher starts it: the .py file, not the module."""
  env = dict(os.environ, PYTHONPATH=str(REPO))
  return subprocess.run(
      [sys.executable, str(REPO / 'beam_jobs' / f'{job}.py'), *args],
      cwd='/',
      env=env,
      capture_output=True,
      text=True,
      timeout=600,
      check=False)


@pytest.mark.e2e
def test_template_entry_point_accepts_launcher_flags_and_refuses_typos(tmp_path):
  proc = _script('site_predictions', *LAUNCHER_FLAGS, f'--input={tmp_path}/none/*.jsonl',
                 f'--model_root={tmp_path}', '--output=gs://my-bucket/out', '--key_feild=rid')
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines()[-1] == (
      'error: unknown flag --key_feild (did you mean --key_field?)')
  proc = _script('site_predictions', *LAUNCHER_FLAGS, f'--input={tmp_path}/none/*.jsonl',
                 f'--model_root={tmp_path}', '--output=gs://my-bucket/out', '--key_field=rid')
  assert proc.returncode == 2, proc.stderr[-2000:]
  # Past the flag check: the launcher's own flags are accepted.
  assert proc.stderr.strip().splitlines()[-1] == (
      f"error: --input: no files match '{tmp_path}/none/*.jsonl'")
  proc = _script('detect_images', *LAUNCHER_FLAGS, f'--input={tmp_path}/none',
                 '--output=gs://my-bucket/out', '--score_treshold=0.5')
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines()[-1] == (
      'error: unknown flag --score_treshold (did you mean --score_threshold?)')
