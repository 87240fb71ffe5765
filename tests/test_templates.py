"""Flex templates kept honest without a registry: metadata vs. job options, regexes,
the image definition vs. the package's pins and extras, and build.sh's build args."""
import argparse
import importlib
import json
import os
import pathlib
import re
import stat
import subprocess

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
JOBS = {'site_predictions': 'SitePredictionOptions', 'detect_images': 'DetectImagesOptions'}
# The extras of the wheel each job's image installs (test_launchers checks that
# the per-site job runs without torch and that the detection job needs it).
JOB_EXTRAS = {'site_predictions': set(), 'detect_images': {'detect'}}
# What the wheel-building stage may copy: setup.py's inputs and the packages it ships.
BUILD_INPUTS = {
    'setup.py', 'pyproject.toml', 'MANIFEST.in', 'requirements.txt', 'requirements-test.txt'
}
PACKAGES = {'beam_jobs', 'transforms', 'models', 'common'}
BAD_GCS_PATHS = [
    'gs://', 'gs://b', '/local/path', 'http://example.com/x', 'gs://UPPER/x', 'gs://bucket/a/../b',
    'gs://bucket/./a', 'gs://bucket/a\nb', 's3://bucket/x', 'gs://bucket//x'
]


def metadata(job):
  return json.loads((REPO / 'templates' / job / 'metadata.json').read_text())


def job_options(job):
  from beam_jobs.io_options import JobIOOptions  # pylint: disable=import-outside-toplevel
  module = importlib.import_module(f'beam_jobs.{job}')
  parser = argparse.ArgumentParser()
  JobIOOptions._add_argparse_args(parser)  # pylint: disable=protected-access
  getattr(module, JOBS[job])._add_argparse_args(parser)  # pylint: disable=protected-access
  return {a.dest: a for a in parser._actions if a.dest != 'help'}  # pylint: disable=protected-access


@pytest.mark.parametrize('job', JOBS)
def test_metadata_and_job_options_are_the_same_set(job):
  names = [p['name'] for p in metadata(job)['parameters']]
  assert len(names) == len(set(names))
  assert set(names) == set(job_options(job))


@pytest.mark.parametrize('job', JOBS)
def test_every_parameter_is_documented_and_constrained(job):
  options = job_options(job)
  for p in metadata(job)['parameters']:
    assert p['label'] and len(p['helpText']) > 20 and p['regexes'], p['name']
    assert isinstance(p['isOptional'], bool)
    for regex in p['regexes']:
      re.compile(regex)
    # Optional in the template <=> the job has a default or does not need it.
    option = options[p['name']]
    if not p['isOptional']:
      assert option.default is None, f'{p["name"]} is required but the job has a default'


@pytest.mark.parametrize('job', JOBS)
def test_examples_in_help_texts_match_their_regexes(job):
  examples = 0
  for p in metadata(job)['parameters']:
    match = re.search(r'Example: (.+)$', p['helpText'])
    if match:
      examples += 1
      assert all(re.fullmatch(r, match.group(1)) for r in p['regexes']), p['name']
  assert examples >= 3


@pytest.mark.parametrize('job', JOBS)
def test_path_parameters_reject_malformed_paths(job):
  path_params = [p for p in metadata(job)['parameters'] if 'gs://' in p['regexes'][0]]
  assert path_params
  for p in path_params:
    for bad in BAD_GCS_PATHS:
      assert not re.fullmatch(p['regexes'][0], bad), (p['name'], bad)


def test_site_template_regexes_match_the_readme_examples():
  readme = (REPO / 'README.md').read_text()
  params = {p['name']: p['regexes'][0] for p in metadata('site_predictions')['parameters']}
  for flag, value in re.findall(
      r"--(input|model_root|output|input_table|output_table|"
      r"errors_table|key_field|selected_fields)='?([^'\s\\]+)'?", readme):
    if value.startswith('gs://') or flag.endswith('table') or flag in ('key_field',
                                                                       'selected_fields'):
      assert re.fullmatch(params[flag], value), (flag, value)


def pins():
  found = {}
  for line in (REPO / 'requirements.txt').read_text().splitlines():
    match = re.match(r'^([a-zA-Z0-9_.-]+)(\[[^\]]+\])?==([^\s;]+)', line)
    if match:
      found[match.group(1).lower()] = match.group(3)
  return found


def dockerfile():
  return (REPO / 'templates' / 'Dockerfile').read_text()


def stages():
  """[(FROM line, instructions)] of the Dockerfile; comments dropped, continuations joined."""
  lines = [l for l in dockerfile().splitlines() if not l.lstrip().startswith('#')]
  text = '\n'.join(lines).replace('\\\n', ' ')
  parts = re.split(r'^FROM ', text, flags=re.M)[1:]
  return [tuple((p + '\n').split('\n', 1)) for p in parts]


def copy_sources(instructions, job):
  """The build-context sources of every COPY in instructions, with ${JOB} set to job."""
  sources = []
  for line in re.findall(r'^COPY (?!--from)(.+)$', instructions, re.M):
    sources += [s.replace('${JOB}', job) for s in line.split()[:-1]]
  return sources


def install_commands(job):
  """The arguments of each pip install the final stage runs for JOB=job, in order."""
  run = re.search(r'case "\$\{JOB\}" in(.*?)esac', stages()[-1][1], re.S)
  assert run, 'the final stage chooses what to install by ${JOB}'
  arms = dict(re.findall(r'(\S+)\)(.*?);;', run.group(1), re.S))
  assert set(arms) == set(JOBS) | {'*'}
  return [c.strip() for c in re.findall(r'pip install ([^&;]+)', arms[job])]


def test_image_definition_agrees_with_the_pins():
  text = dockerfile()
  args = dict(re.findall(r'^ARG (\w+)=(\S+)$', text, re.M))
  assert args['BEAM_VERSION'] == pins()['apache-beam']
  assert args['TORCH_VERSION'] == pins()['torch']
  setup = (REPO / 'setup.py').read_text()
  assert f">={args['PYTHON_VERSION']}," in setup
  assert 'python311-template-launcher-base' in text and args['PYTHON_VERSION'] == '3.11'
  froms = [f for f, _ in stages()]
  assert len(froms) == 3, froms
  for line in froms[1:]:
    assert line.startswith('apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION}'), line
  assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in text
  assert 'latest' not in args['LAUNCHER_TAG']


def test_templates_start_from_the_thin_launchers():
  final = stages()[-1][1]
  assert re.search(r'^COPY templates/\$\{JOB\}/main\.py /template/main\.py$', final, re.M)
  assert re.search(r'^ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/main\.py$', final, re.M)
  for job in JOBS:
    assert (REPO / 'templates' / job / 'main.py').is_file()


@pytest.mark.parametrize('job', JOBS)
def test_each_job_installs_the_wheel_with_exactly_its_extras(job):
  commands = install_commands(job)
  wheel_installs = [c for c in commands if '${wheel}' in c]
  assert len(wheel_installs) == 1, commands
  extras = re.fullmatch(r'--no-cache-dir "\$\{wheel\}(?:\[([^\]]*)\])?"', wheel_installs[0])
  assert extras, wheel_installs[0]
  assert set(filter(None, (extras.group(1) or '').split(','))) == JOB_EXTRAS[job]
  torch_installs = [c for c in commands if 'torch' in c]
  if 'detect' in JOB_EXTRAS[job]:
    # torch first, from the chosen index, at the pinned version.
    assert torch_installs == [
        '--no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"'
    ]
    assert commands.index(torch_installs[0]) < commands.index(wheel_installs[0])
  else:
    assert not torch_installs, commands


def test_the_site_image_build_fails_if_torch_is_installed():
  arm = re.search(r'site_predictions\)(.*?);;', stages()[-1][1], re.S).group(1)
  assert "find_spec('torch')" in arm


def test_detect_extra_holds_the_torch_pin_and_the_base_does_not():
  lines = (REPO / 'requirements.txt').read_text().splitlines()
  marker = lines.index(next(l for l in lines if l.startswith('# [extra: detect]')))
  torch_lines = [i for i, l in enumerate(lines) if re.match(r'^torch\b', l)]
  assert torch_lines and all(i > marker for i in torch_lines)


def test_files_the_image_copies_exist():
  for job in JOBS:
    for _, instructions in stages():
      for source in copy_sources(instructions, job):
        assert (REPO / source).exists(), (job, source)


def test_the_image_copies_only_what_the_wheel_is_built_from():
  """The wheel stage copies setup.py's inputs and the shipped packages; the
  final stage copies the built wheel and the job's launcher, nothing else."""
  (_, wheel_stage), (_, final) = stages()[1:]
  for job in JOBS:
    assert set(copy_sources(wheel_stage, job)) == BUILD_INPUTS | PACKAGES
    assert copy_sources(final, job) == [f'templates/{job}/main.py']
  instructions = ''.join(i for _, i in stages())
  assert 'samples' not in instructions and 'tests' not in instructions
  froms = re.findall(r'^COPY --from=(\S+) (\S+)', final, re.M)
  assert froms == [('launcher', '/opt/google/dataflow/python_template_launcher'),
                   ('wheel', '/wheels')]
  assert re.search(r'^RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels \.$', wheel_stage,
                   re.M)


def test_build_script_builds_both_templates_from_their_metadata():
  script = (REPO / 'templates' / 'build.sh').read_text()
  for job in JOBS:
    assert re.search(rf'^build {job}\b', script, re.M)
    assert (REPO / 'templates' / job / 'metadata.json').is_file()
  assert '--metadata-file "templates/$job/metadata.json"' in script
  assert "sed -n 's/^torch==//p' requirements.txt" in script


def _fake_command(path, body):
  path.write_text('#!/usr/bin/env bash\n' + body)
  path.chmod(path.stat().st_mode | stat.S_IEXEC)


def build_script_calls(tmp_path, **env):
  """Runs templates/build.sh with fake gcloud and git; {job: (docker build args, image)}."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  log = tmp_path / 'builds.yaml'
  # `gcloud builds submit ... --config FILE` appends FILE (the Cloud Build config) to the log.
  _fake_command(bin_dir / 'gcloud',
                ('if [ "$1 $2" = "builds submit" ]; then\n'
                 '  while [ $# -gt 0 ]; do\n'
                 f'    [ "$1" = --config ] && {{ cat "$2"; echo ---; }} >>"{log}"\n'
                 '    shift\n'
                 '  done\n'
                 'fi\n'))
  _fake_command(bin_dir / 'git', 'echo abc1234\n')
  subprocess.run(
      ['bash', str(REPO / 'templates' / 'build.sh')],
      check=True,
      timeout=60,
      env={
          'PATH': f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
          'PROJECT': 'proj',
          'REGION': 'europe-west4',
          'BUCKET': 'bkt',
          **env
      })
  calls = {}
  for config in yaml.safe_load_all(log.read_text()):
    if not config:
      continue
    (step, ) = config['steps']
    args = step['args']
    assert args[:3] == ['build', '-f', 'templates/Dockerfile'] and args[-1] == '.', args
    build_args = dict(args[i + 1].split('=', 1) for i, a in enumerate(args) if a == '--build-arg')
    image = args[args.index('-t') + 1]
    assert config['images'] == [image]
    calls[build_args['JOB']] = (build_args, image)
  return calls


def test_build_script_passes_each_job_its_build_args(tmp_path):
  calls = build_script_calls(tmp_path)
  assert set(calls) == set(JOBS)
  site_args, site_image = calls['site_predictions']
  assert site_args == {'JOB': 'site_predictions'}
  assert site_image == 'europe-west4-docker.pkg.dev/proj/batch-inference/site_predictions:abc1234'
  detect_args, _ = calls['detect_images']
  assert detect_args == {
      'JOB': 'detect_images',
      'TORCH_VERSION': pins()['torch'],
      'TORCH_INDEX_URL': 'https://pypi.org/simple'
  }


def test_build_script_detection_torch_index_can_be_the_cpu_one(tmp_path):
  cpu = 'https://download.pytorch.org/whl/cpu'
  calls = build_script_calls(tmp_path, DETECT_TORCH_INDEX_URL=cpu)
  assert calls['detect_images'][0]['TORCH_INDEX_URL'] == cpu
  assert calls['site_predictions'][0] == {'JOB': 'site_predictions'}


def test_function_requirements_cover_the_clients_it_imports():
  reqs = (REPO / 'functions' / 'trigger' / 'requirements.txt').read_text()
  for name in ('functions-framework', 'google-cloud-storage', 'google-cloud-dataflow-client'):
    assert re.search(rf'^{name}\b', reqs, re.M), name


@pytest.mark.parametrize('job', JOBS)
def test_flex_template_style_boolean_parameters_parse(job):
  """The launcher passes every parameter as --name=value, booleans included."""
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=import-outside-toplevel
  importlib.import_module(f'beam_jobs.{job}')
  booleans = [p['name'] for p in metadata(job)['parameters'] if p['regexes'] == ['^(true|false)$']]
  assert 'overwrite' in booleans
  for name in booleans:
    for text, expected in (('true', True), ('false', False)):
      parsed = PipelineOptions([f'--{name}={text}']).get_all_options()
      assert parsed[name] is expected, (name, text)


def test_both_jobs_can_be_imported_in_one_process():
  """Beam parses every imported PipelineOptions subclass with one parser."""
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=import-outside-toplevel
  for job in JOBS:
    importlib.import_module(f'beam_jobs.{job}')
  options = PipelineOptions(['--input=gs://b/x', '--output=gs://b/y']).get_all_options()
  assert options['input'] == 'gs://b/x' and options['output'] == 'gs://b/y'
