"""Input clean-up: only processed inputs, only after every output is committed."""
import json
import pathlib

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to

import detect_helpers
from beam_jobs import detect_images
from transforms.detection import input_cleanup


def _inputs(root: pathlib.Path) -> dict:
  """Two good images, one corrupt one, one non-image; returns name -> bytes."""
  detect_helpers.save(root / 'cam1' / 'coffee.jpg', detect_helpers.coffee())
  detect_helpers.save(root / 'cam2' / 'bike.png', detect_helpers.motorcycle()[::2, ::2])
  (root / 'cam2' / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 broken')
  (root / 'notes.txt').write_text('keep me')
  return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob('*') if p.is_file()}


def _files(root: pathlib.Path) -> list:
  return sorted(p.relative_to(root).as_posix() for p in root.rglob('*') if p.is_file())


@pytest.mark.e2e
def test_delete_inputs_removes_only_processed_images(tmp_path):
  _inputs(tmp_path / 'in')
  detect_images.run([
      '--input',
      str(tmp_path / 'in'), '--output',
      str(tmp_path / 'out'), '--delete_inputs', '--max_failed_fraction=1'
  ] + detect_helpers.darknet_flags())
  assert _files(tmp_path / 'in') == ['cam2/broken.jpg', 'notes.txt']
  lines = detect_helpers.by_image(detect_helpers.read_jsonl(tmp_path / 'out' / 'detections'))
  assert set(lines) == {'coffee.jpg', 'bike.png'}
  assert _files(tmp_path / 'out' / 'annotated') == ['cam1/coffee-det.jpg', 'cam2/bike-det.png']
  assert json.loads((tmp_path / 'out' / 'summary.json').read_text())['reconciled']


@pytest.mark.e2e
def test_move_inputs_keeps_paths_and_bytes_and_leaves_failures(tmp_path):
  original = _inputs(tmp_path / 'in')
  detect_images.run([
      '--input',
      str(tmp_path / 'in'), '--output',
      str(tmp_path / 'out'), '--move_inputs_to',
      str(tmp_path / 'done'), '--max_failed_fraction=1'
  ] + detect_helpers.darknet_flags())
  assert _files(tmp_path / 'in') == ['cam2/broken.jpg', 'notes.txt']
  assert _files(tmp_path / 'done') == ['cam1/coffee.jpg', 'cam2/bike.png']
  for name in ('cam1/coffee.jpg', 'cam2/bike.png'):
    assert (tmp_path / 'done' / name).read_bytes() == original[name]
  (letter, ) = detect_helpers.read_jsonl(tmp_path / 'out' / 'errors')
  assert letter['source'] == str(tmp_path / 'in' / 'cam2' / 'broken.jpg')


@pytest.mark.e2e
def test_a_run_that_crashes_before_its_summary_deletes_nothing(tmp_path):
  before = _inputs(tmp_path / 'in')
  (tmp_path / 'out' / 'summary.json').mkdir(parents=True)  # the summary write will fail
  with pytest.raises(Exception):
    detect_images.run(
        ['--input',
         str(tmp_path / 'in'), '--output',
         str(tmp_path / 'out'), '--delete_inputs'] + detect_helpers.darknet_flags())
  assert _files(tmp_path / 'in') == sorted(before)
  # The run got as far as the outputs: clean-up waited for the summary.
  assert (tmp_path / 'out' / 'annotated' / 'cam1' / 'coffee-det.jpg').is_file()


def test_cleanup_waits_for_a_reconciled_summary(tmp_path):
  for name in ('a.jpg', 'b.jpg'):
    (tmp_path / name).write_bytes(b'x')
  uris = [str(tmp_path / 'a.jpg'), str(tmp_path / 'b.jpg')]
  with test_pipeline.TestPipeline(runner='FnApiRunner') as p:
    committed = p | 'Summary' >> beam.Create([{'reconciled': False}])
    done = p | beam.Create(uris) | input_cleanup.CleanUpInputs(committed, input_root=str(tmp_path))
    assert_that(done, equal_to([]))
  assert _files(tmp_path) == ['a.jpg', 'b.jpg']
  with test_pipeline.TestPipeline(runner='FnApiRunner') as p:
    committed = p | 'Summary' >> beam.Create([{'reconciled': True}])
    done = p | beam.Create(uris[:1]) | input_cleanup.CleanUpInputs(committed,
                                                                   input_root=str(tmp_path))
    assert_that(done, equal_to(uris[:1]))
  assert _files(tmp_path) == ['b.jpg']


def test_names_with_glob_characters_delete_only_themselves(tmp_path):
  for name in ('a*.jpg', 'ab.jpg', 'a[1].jpg', 'a1.jpg', 'q?.jpg', 'qx.jpg'):
    (tmp_path / name).write_bytes(b'x')
  input_cleanup.delete_files([str(tmp_path / n) for n in ('a*.jpg', 'a[1].jpg', 'q?.jpg')])
  assert _files(tmp_path) == ['a1.jpg', 'ab.jpg', 'qx.jpg']


def test_retried_operations_are_idempotent(tmp_path):
  (tmp_path / 'in').mkdir()
  (tmp_path / 'in' / 'a.jpg').write_bytes(b'A')
  (tmp_path / 'in' / 'b.jpg').write_bytes(b'B')
  input_cleanup.delete_files([str(tmp_path / 'in' / 'a.jpg')])
  input_cleanup.delete_files([str(tmp_path / 'in' / 'a.jpg')])  # a retry: already gone
  src = str(tmp_path / 'in' / 'b.jpg')
  dst = str(tmp_path / 'done' / 'sub' / 'b.jpg')
  input_cleanup.move_files([src], [dst])
  input_cleanup.move_files([src], [dst])  # a retry after the move completed
  assert (tmp_path / 'done' / 'sub' / 'b.jpg').read_bytes() == b'B'
  assert _files(tmp_path / 'in') == []
  with pytest.raises(FileNotFoundError):  # neither source nor copy: never silently "moved"
    input_cleanup.move_files([str(tmp_path / 'in' / 'zzz.jpg')], [str(tmp_path / 'z.jpg')])
