"""--output (and --move_inputs_to) never hold what --input can match: Beam's glob rules,
local and gs://, checked against Beam's own pattern translation."""
import json
import re

import pytest
from apache_beam.io.filesystem import FileSystem
from hypothesis import assume
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import detect_helpers
import savedmodel_builders
from beam_jobs import detect_images
from beam_jobs import output_folder
from beam_jobs import site_predictions
from beam_jobs.usage import UsageError
from common import paths

SEGMENTS = st.sampled_from(['a', 'b', 'ab', 'data', 'run1', 'x.jsonl', 'a.jpg', '.x', 'a-b'])
ROOTS = st.sampled_from(['/', 'gs://bkt/'])


def beam_matches(pattern: str, path: str) -> bool:
  """What FileSystems.match decides for one listed path (patterns ending in / get *)."""
  if pattern.endswith('/'):
    pattern += '*'
  return re.match(FileSystem.translate_pattern(pattern), path) is not None


def under(path: str, folder: str) -> bool:
  folder = folder.rstrip('/')
  return path == folder or path.startswith(folder + '/')


@st.composite
def glob_of(draw, path: str) -> str:
  """A pattern that matches ``path``: some characters and segments replaced by wildcards."""
  scheme, rest = ('gs://', path[5:]) if path.startswith('gs://') else ('', path)
  out = []
  i = 0
  while i < len(rest):
    choice = draw(st.integers(0, 9))
    end = i
    if choice == 1 and rest[i] != '/':  # * over some of this segment
      j = rest.find('/', i)
      out.append('*')
      end = draw(st.integers(i, len(rest) if j < 0 else j))
    elif choice == 2:  # ** over anything
      out.append('**')
      end = draw(st.integers(i, len(rest)))
    elif choice == 3:
      out.append('?')
      end = i + 1
    elif choice == 4 and rest[i] not in '!]^\\':
      out.append(f'[{rest[i]}z]')
      end = i + 1
    elif choice == 5 and rest[i] not in '!]^\\q':
      out.append('[!q]')
      end = i + 1
    if end == i:  # a literal character (always progress)
      out.append(rest[i])
      end = i + 1
    i = end
  return scheme + ''.join(out)


@st.composite
def paths_under(draw):
  root = draw(ROOTS)
  return root + '/'.join(draw(st.lists(SEGMENTS, min_size=1, max_size=5)))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_a_witness_is_returned_whenever_a_matched_path_is_in_the_folder(data):
  path = data.draw(paths_under())
  pattern = data.draw(glob_of(path))
  assume(beam_matches(pattern, path))
  shortest = len('gs://bkt') if path.startswith('gs://') else 0
  cut = data.draw(st.integers(shortest, len(path)))
  folder = path[:cut].rstrip('/') or '/'
  example = paths.overlap_example(pattern, folder)
  if under(path, folder):
    assert example is not None, (pattern, folder, path)
  if example is not None:
    assert under(example, folder) and beam_matches(pattern, example), (pattern, folder, example)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_no_witness_means_no_path_in_the_folder_matches(data):
  root = data.draw(ROOTS)
  pattern = root + data.draw(
      st.lists(st.sampled_from(
          ['a', 'b', '*', '**', '?', '[ab]', '[!a]', 'x.jsonl', '*.jsonl', 'run1', '/']),
               min_size=1,
               max_size=6).map(''.join))
  folder = root + '/'.join(data.draw(st.lists(SEGMENTS, min_size=1, max_size=3)))
  tails = data.draw(st.lists(st.lists(SEGMENTS, min_size=0, max_size=3), min_size=1, max_size=8))
  example = paths.overlap_example(pattern, folder)
  if example is None:
    for tail in tails:
      candidate = '/'.join([folder] + tail)
      assert not beam_matches(pattern, candidate), (pattern, folder, candidate)
  else:
    assert under(example, folder) and beam_matches(pattern, example)


@pytest.mark.parametrize(
    'pattern, folder, overlaps',
    [
        ('gs://b/data/*.jsonl', 'gs://b/data/run1', False),  # * stops at /
        ('gs://b/data/*.jsonl', 'gs://b/data', True),  # contains the inputs
        ('gs://b/data/*.jsonl', 'gs://b/data/', True),
        ('gs://b/data/*.jsonl', 'gs://b', True),
        ('gs://b/data/**', 'gs://b/data/run1', True),  # ** crosses /
        ('gs://b/data/**.jsonl', 'gs://b/data/run1', True),  # run1/predictions/x.jsonl
        ('gs://b/data/*/*.jsonl', 'gs://b/data/run1', True),  # run1/x.jsonl
        ('gs://b/data/', 'gs://b/data/run1', True),  # a prefix: everything below
        ('gs://b/data/x.jsonl', 'gs://b/data/run1', False),
        ('gs://b/data/x.jsonl', 'gs://b/data/x.jsonl', True),  # the input file itself
        ('gs://b/dat?/x.jsonl', 'gs://b/data', True),
        ('gs://b/data-[0-9]/*', 'gs://b/data-7', True),
        ('gs://b/data-[!0-9]/*', 'gs://b/data-7', False),
        ('gs://b/data/*', 'gs://c/data', False),
        ('gs://b/data/*', '/data', False),
        ('/in/**', '/in/out', True),
    ])
def test_examples(pattern, folder, overlaps):
  assert (paths.overlap_example(pattern, folder) is not None) == overlaps


def test_relative_local_paths_are_compared_absolutely(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(UsageError, match=r"^--output: 'data/\./run1' overlaps what --input='"):
    output_folder.require_outside('output', 'data/./run1', 'input', f'{tmp_path}/data/**')
  output_folder.require_outside('output', 'data/run1', 'input', 'data/*.jsonl')
  with pytest.raises(UsageError, match=r"it can match '.*/data/x\.jsonl'"):
    output_folder.require_outside('output', f'../{tmp_path.name}/data', 'input', 'data/*.jsonl')


@pytest.fixture
def site_layout(tmp_path):
  savedmodel_builders.save_linear(str(tmp_path / 'models' / 'lin' / '1'), [1.0, 2.0], 0.5)
  (tmp_path / 'data').mkdir()
  (tmp_path / 'data' / 'a.jsonl').write_text('{"site_id": "lin", "x": [1, 2]}\n')
  return tmp_path


def _site(layout, input_glob, output):
  return site_predictions.main([
      f'--input={layout}/{input_glob}', f'--model_root={layout}/models',
      f'--output={layout}/{output}'
  ])


@pytest.mark.parametrize('input_glob, output', [('data/**', 'data/run1'), ('data/*.jsonl', 'data'),
                                                ('data/**.jsonl', 'data/run1'),
                                                ('data/', 'data/run1'), ('**', 'out')])
def test_site_job_refuses_an_output_its_input_can_read(site_layout, capsys, input_glob, output):
  assert _site(site_layout, input_glob, output) == 2
  (line, ) = capsys.readouterr().err.strip().splitlines()
  assert line.startswith(f"error: --output: '{site_layout}/{output}' overlaps what "
                         f"--input='{site_layout}/{input_glob}' reads (it can match ")
  assert not (site_layout / output / 'summary.json').exists()


@pytest.mark.e2e
def test_site_job_second_run_does_not_read_the_first_runs_outputs(site_layout):
  # * stays in one folder, so data/run1/... is not input: allowed, and counts stay honest.
  assert _site(site_layout, 'data/*.jsonl', 'data/run1') == 0
  assert _site(site_layout, 'data/*.jsonl', 'data/run2') == 0
  for run in ('run1', 'run2'):
    summary = json.loads((site_layout / 'data' / run / 'summary.json').read_text())
    assert summary['records_read'] == 1 and summary['predictions_written'] == 1


@pytest.fixture
def image_layout(tmp_path):
  detect_helpers.save(tmp_path / 'in' / 'cam1' / 'a.jpg', detect_helpers.coffee()[:64, :64])
  return tmp_path


@pytest.mark.parametrize('extra, flag', [
    (['--output', '{t}/in/cam1/out'], 'output'),
    (['--output', '{t}/out', '--move_inputs_to', '{t}/in/done'], 'move_inputs_to'),
    (['--output', '{t}/out', '--move_inputs_to', '{t}/in'], 'move_inputs_to'),
    (['--output', '{t}'], 'output'),
])
def test_detection_refuses_output_or_move_target_its_input_can_read(image_layout, capsys, extra,
                                                                    flag):
  args = ['--input', f'{image_layout}/in'] + [a.format(t=image_layout) for a in extra]
  assert detect_images.main(args + detect_helpers.darknet_flags()) == 2
  (line, ) = capsys.readouterr().err.strip().splitlines()
  assert line.startswith(f'error: --{flag}: ') and f"--input='{image_layout}/in'" in line
  assert not (image_layout / 'out').exists()


def test_detection_glob_input_allows_a_folder_it_cannot_match(image_layout):
  config = detect_images.validate(detect_images.PipelineOptions(
      ['--input', f'{image_layout}/in/*/*.jpg', '--output', f'{image_layout}/in/cam1/out'] +
      detect_helpers.darknet_flags()).view_as(detect_images.DetectImagesOptions),
                                  local_runner=True)
  assert config.output == f'{image_layout}/in/cam1/out'
