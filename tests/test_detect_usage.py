"""Launch-time validation: clear one-line errors naming the flag, before any pipeline runs."""
import json
import os
import shutil

import pytest
import torch

import detect_helpers
from beam_jobs import detect_images


@pytest.fixture
def layout(tmp_path):
  """An input folder with one image and a copy of the model files that tests may break."""
  detect_helpers.save(tmp_path / 'in' / 'a.jpg', detect_helpers.coffee()[:64, :64])
  models = tmp_path / 'model'
  models.mkdir()
  for name in ('yolov3-tiny.cfg', 'coco.names'):
    shutil.copy(os.path.join(detect_helpers.model_dir(), name), models / name)
  os.symlink(os.path.join(detect_helpers.model_dir(), 'yolov3-tiny.weights'),
             models / 'yolov3-tiny.weights')
  return tmp_path


def _main(layout, *extra, model=None):
  model_flags = detect_helpers.darknet_flags(str(layout / 'model')) if model is None else model
  return detect_images.main(
      ['--input', str(layout / 'in'), '--output',
       str(layout / 'out')] + model_flags + list(extra))


def _error(capsys) -> str:
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) >= 1
  return err[-1]


def test_missing_weights_file_names_the_flag(layout, capsys):
  os.remove(layout / 'model' / 'yolov3-tiny.weights')
  assert _main(layout) == 2
  message = _error(capsys)
  assert message.startswith('error: --model_weights:') and 'does not exist' in message
  assert not (layout / 'out').exists()


def test_missing_class_names_file_names_the_flag(layout, capsys):
  os.remove(layout / 'model' / 'coco.names')
  assert _main(layout) == 2
  assert _error(capsys).startswith('error: --class_names:')


def test_class_count_differing_from_the_cfg_is_a_clear_error(layout, capsys):
  names = layout / 'model' / 'coco.names'
  names.write_text('\n'.join(names.read_text().splitlines()[:79]) + '\n')
  assert _main(layout) == 2
  message = _error(capsys)
  assert message.startswith('error: --class_names:')
  assert '79 names' in message and 'classes=80' in message


def test_truncated_weights_are_refused_at_launch(layout, capsys):
  weights = layout / 'model' / 'yolov3-tiny.weights'
  data = weights.read_bytes()[:100_000]
  os.remove(weights)
  weights.write_bytes(data)
  assert _main(layout) == 2
  message = _error(capsys)
  assert message.startswith('error: --model_weights:') and 'truncated' in message


@pytest.mark.parametrize('extra, flag, words', [
    (['--classes', 'cup,unicorn'], 'classes', "unknown label(s) ['unicorn']"),
    (['--image_size', '400'], 'image_size', 'multiple of 32'),
    (['--score_threshold', '1.5'], 'score_threshold', 'within [0, 1]'),
    (['--batch_size', '0'], 'batch_size', 'at least 1'),
    (['--cpu_threads', '0'], 'cpu_threads', 'at least 1'),
    (['--delete_inputs', '--move_inputs_to', '/tmp/x'], 'move_inputs_to', 'not both'),
])
def test_bad_flag_values(layout, capsys, extra, flag, words):
  assert _main(layout, *extra) == 2
  message = _error(capsys)
  assert message.startswith(f'error: --{flag}:') and words in message


def test_no_model_or_two_models(layout, capsys):
  assert _main(layout, model=[]) == 2
  assert 'a model is required' in _error(capsys)
  assert _main(layout, '--model', str(layout / 'm.pt')) == 2
  assert _error(capsys).startswith('error: --model: give either --model or')
  config_only = ['--model_config', str(layout / 'model' / 'yolov3-tiny.cfg')]
  assert _main(layout, model=config_only) == 2
  assert _error(capsys) == 'error: --model_weights: is required with a Darknet model'


def test_empty_input_and_output_inside_input(layout, capsys):
  (layout / 'empty').mkdir()
  assert detect_images.main(
      ['--input', str(layout / 'empty'), '--output',
       str(layout / 'o')] + detect_helpers.darknet_flags()) == 2
  assert _error(capsys).startswith('error: --input: no files match')
  assert detect_images.main(
      ['--input', str(layout / 'in'), '--output',
       str(layout / 'in' / 'o')] + detect_helpers.darknet_flags()) == 2
  message = _error(capsys)
  assert message.startswith('error: --output:') and f"--input={str(layout / 'in')!r}" in message
  assert 'a later run with the same --input would read these files back' in message


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the no-GPU message')
def test_cuda_without_a_gpu_fails_before_the_pipeline(layout, capsys):
  assert _main(layout, '--device', 'cuda') == 2
  message = _error(capsys)
  assert message.startswith('error: --device:') and 'no CUDA device' in message


def test_torchscript_without_names_needs_class_names(layout, capsys):
  module = torch.jit.trace(torch.nn.Conv2d(3, 7, 1), torch.rand(1, 3, 32, 32))
  path = layout / 'm.torchscript'
  torch.jit.save(module, str(path), _extra_files={'config.txt': json.dumps({'imgsz': 32})})
  assert _main(layout, model=['--model', str(path)]) == 2
  assert _error(capsys).startswith('error: --class_names:')
  (layout / 'junk.pt').write_bytes(b'not a zip')
  assert _main(layout, model=['--model', str(layout / 'junk.pt')]) == 2
  assert 'not a TorchScript file' in _error(capsys)


def test_help_lists_every_flag(capsys):
  assert detect_images.main(['--help']) == 0
  text = capsys.readouterr().out
  for flag in ('--input', '--output', '--model', '--model_config', '--model_weights',
               '--class_names', '--classes', '--image_size', '--score_threshold', '--iou_threshold',
               '--max_detections', '--batch_size', '--device', '--cpu_threads',
               '--max_image_pixels', '--delete_inputs', '--move_inputs_to', '--overwrite',
               '--max_failed_fraction'):
    assert flag in text
