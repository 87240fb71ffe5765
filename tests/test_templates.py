"""Flex templates kept honest without a registry: metadata vs. job options, regexes,
and the image definition vs. the package's pins."""
import argparse
import importlib
import json
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
JOBS = {'site_predictions': 'SitePredictionOptions', 'detect_images': 'DetectImagesOptions'}
BAD_GCS_PATHS = ['gs://', 'gs://b', '/local/path', 'http://example.com/x', 'gs://UPPER/x',
                 'gs://bucket/a/../b', 'gs://bucket/./a', 'gs://bucket/a\nb', 's3://bucket/x',
                 'gs://bucket//x']


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
  for flag, value in re.findall(r"--(input|model_root|output|input_table|output_table|"
                                r"errors_table|key_field|selected_fields)='?([^'\s\\]+)'?",
                                readme):
    if value.startswith('gs://') or flag.endswith('table') or flag in ('key_field', 'selected_fields'):
      assert re.fullmatch(params[flag], value), (flag, value)


def pins():
  found = {}
  for line in (REPO / 'requirements.txt').read_text().splitlines():
    match = re.match(r'^([a-zA-Z0-9_.-]+)(\[[^\]]+\])?==([^\s;]+)', line)
    if match:
      found[match.group(1).lower()] = match.group(3)
  return found


def test_image_definition_agrees_with_the_pins():
  dockerfile = (REPO / 'templates' / 'Dockerfile').read_text()
  args = dict(re.findall(r'^ARG (\w+)=(\S+)$', dockerfile, re.M))
  assert args['BEAM_VERSION'] == pins()['apache-beam']
  assert args['TORCH_VERSION'] == pins()['torch']
  setup = (REPO / 'setup.py').read_text()
  assert f">={args['PYTHON_VERSION']}," in setup
  assert 'python311-template-launcher-base' in dockerfile and args['PYTHON_VERSION'] == '3.11'
  assert re.search(r'FROM apache/beam_python\$\{PYTHON_VERSION\}_sdk:\$\{BEAM_VERSION\}', dockerfile)
  assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in dockerfile
  assert 'ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/beam_jobs/${JOB}.py' in dockerfile
  assert 'latest' not in args['LAUNCHER_TAG']
  for job in JOBS:
    assert (REPO / 'beam_jobs' / f'{job}.py').is_file()


def test_files_the_image_copies_exist():
  dockerfile = (REPO / 'templates' / 'Dockerfile').read_text()
  for line in re.findall(r'^COPY (?!--from)(.+)$', dockerfile, re.M):
    for source in line.split()[:-1]:
      assert (REPO / source).exists(), source


def test_build_script_builds_both_templates_from_their_metadata():
  script = (REPO / 'templates' / 'build.sh').read_text()
  for job in JOBS:
    assert re.search(rf'^build {job} ', script, re.M)
    assert (REPO / 'templates' / job / 'metadata.json').is_file()
  assert '--metadata-file "templates/$job/metadata.json"' in script
  assert "sed -n 's/^torch==//p' requirements.txt" in script


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
