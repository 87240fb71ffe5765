"""The YOLO ModelHandler: Beam's contract, TorchScript layout, real yolov3-tiny."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import detect_helpers
from transforms.detection import letterbox
from models.detector.yolo_handler import DarknetModel
from models.detector.yolo_handler import InferenceError
from models.detector.yolo_handler import TorchScriptModel
from models.detector.yolo_handler import YoloDetector
from models.detector.yolo_handler import YoloModelHandler
from transforms.detection.image_decode import DecodeImageFn
from transforms.detection.image_files import ImageFile


def _darknet_model():
  root = detect_helpers.model_dir()
  return DarknetModel(os.path.join(root, 'yolov3-tiny.cfg'),
                      os.path.join(root, 'yolov3-tiny.weights'), os.path.join(root, 'coco.names'))


def _decoded(tmp_path, name, array, handler):
  path = detect_helpers.save(tmp_path / name, array)
  fn = DecodeImageFn(image_size=handler.image_size, pad_value=handler.pad_value, max_pixels=10**8)
  (element, ) = fn.process(ImageFile(str(path), name, 'default', path.stat().st_size))
  return element


@pytest.fixture(scope='module')
def tiny_handler():
  return YoloModelHandler(model=_darknet_model())


@pytest.fixture(scope='module')
def tiny_model(tiny_handler):
  return tiny_handler.load_model()


def test_batching_is_explicit():
  assert YoloModelHandler(model=_darknet_model()).batch_elements_kwargs() == {
      'min_batch_size': 8,
      'max_batch_size': 8
  }
  assert YoloModelHandler(model=_darknet_model(), batch_size=3).batch_elements_kwargs() == {
      'min_batch_size': 3,
      'max_batch_size': 3
  }


def test_num_bytes_is_the_batch_tensor_size(tmp_path, tiny_handler):
  element = _decoded(tmp_path, 'c.png', detect_helpers.coffee(), tiny_handler)
  assert tiny_handler.get_num_bytes([element, element, element]) == 3 * 416 * 416 * 3


def test_constructor_is_keyword_only_and_rejects_unknown_arguments():
  with pytest.raises(TypeError):
    YoloModelHandler(_darknet_model())  # pylint: disable=too-many-function-args
  with pytest.raises(TypeError):
    YoloModelHandler(model=_darknet_model(), devcie='cuda')  # pylint: disable=unexpected-keyword-arg
  with pytest.raises(ValueError, match='multiple of 32'):
    YoloModelHandler(model=_darknet_model(), image_size=400)
  with pytest.raises(ValueError, match='device'):
    YoloModelHandler(model=_darknet_model(), device='tpu')
  with pytest.raises(ValueError, match='inference_args'):
    YoloModelHandler(model=_darknet_model()).validate_inference_args({'x': 1})


def test_model_placement_per_device():
  cpu = YoloModelHandler(model=_darknet_model())
  gpu = YoloModelHandler(model=_darknet_model(), device='cuda')
  assert not cpu.share_model_across_processes()
  assert gpu.share_model_across_processes() and gpu.model_copies() == 1


def test_cpu_threads_are_set_when_the_model_loads():
  before = torch.get_num_threads()
  try:
    handler = YoloModelHandler(model=TorchScriptModel('unused'), cpu_threads=1)
    with pytest.raises(Exception):
      handler.load_model()  # the file does not exist; threads are set before loading
    assert torch.get_num_threads() == 1
  finally:
    torch.set_num_threads(before)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the no-GPU message')
def test_cuda_requested_without_gpu_fails_at_load_with_a_clear_message():
  with pytest.raises(RuntimeError, match='--device cuda was requested.*--device cpu'):
    YoloModelHandler(model=_darknet_model(), device='cuda').load_model()


def test_yolov3_tiny_finds_the_cup_in_the_coffee_photo(tmp_path, tiny_handler, tiny_model):
  element = _decoded(tmp_path, 'coffee.jpg', detect_helpers.coffee(), tiny_handler)
  (result, ) = tiny_handler.run_inference([element], tiny_model)
  cups = [d for d in result.inference if d['label'] == 'cup']
  assert cups and cups[0]['score'] > 0.5 and cups[0]['class_id'] == 41
  assert detect_helpers.iou(cups[0]['box'], detect_helpers.COFFEE_CUP_REGION) > 0.5
  assert result.model_id.endswith('yolov3-tiny.weights') and result.example is element


def test_batched_results_equal_single_results(tmp_path, tiny_handler, tiny_model):
  elements = [
      _decoded(tmp_path, 'a.png', detect_helpers.coffee(), tiny_handler),
      _decoded(tmp_path, 'b.png', detect_helpers.motorcycle(), tiny_handler),
      _decoded(tmp_path, 'c.png', np.zeros((30, 90, 3), np.uint8), tiny_handler)
  ]
  batched = [r.inference for r in tiny_handler.run_inference(elements, tiny_model)]
  single = [tiny_handler.run_inference([e], tiny_model)[0].inference for e in elements]
  assert [[d['label'] for d in r] for r in batched] == [['cup'], ['motorbike'], []]
  for got, want in zip(batched, single):
    assert [d['label'] for d in got] == [d['label'] for d in want]
    np.testing.assert_allclose([d['box'] for d in got], [d['box'] for d in want], atol=0.2)


class _FailsOnBlack(torch.nn.Module):
  """Raises for any batch holding an all-black image; else one box per image."""

  def forward(self, x):
    if (x.flatten(1).max(1).values == 0).any():
      raise RuntimeError('black image')
    boxes = torch.tensor([[1., 1., 5., 5.]]).expand(x.shape[0], 1, 4)
    return boxes, torch.full((x.shape[0], 1, 1), 0.9)


def test_one_bad_element_does_not_fail_its_batch():
  detector = YoloDetector(_FailsOnBlack(), ['thing'],
                          torch.device('cpu'),
                          score_threshold=0.25,
                          iou_threshold=0.45,
                          max_detections=10)
  images = np.full((3, 32, 32, 3), 50, np.uint8)
  images[1] = 0
  geometry = letterbox.Geometry(32, 32, 1.0, 1.0, 0, 0)
  results = detector.detect(images, [geometry] * 3)
  assert isinstance(results[1], InferenceError) and 'black image' in results[1].message
  assert results[0] == results[2] == [{
      'label': 'thing',
      'class_id': 0,
      'score': 0.9,
      'box': [1.0, 1.0, 5.0, 5.0]
  }]


class _UltralyticsLayout(torch.nn.Module):
  """[B, 4 + 3, 5]: cx, cy, w, h, then 3 class scores, for 5 candidates (64x64 input)."""

  def __init__(self):
    super().__init__()
    table = torch.tensor([
        # c0    c1    c2    c3    c4
        [32.0, 33.0, 33.0, 10.0, 8.0],  # cx
        [32.0, 32.0, 32.0, 50.0, 24.0],  # cy
        [16.0, 16.0, 16.0, 4.0, 8.0],  # w
        [8.0, 8.0, 8.0, 4.0, 8.0],  # h
        [0.9, 0.8, 0.0, 0.2, 0.0],  # zebra
        [0.0, 0.0, 0.7, 0.0, 0.0],  # person
        [0.0, 0.0, 0.0, 0.0, 0.0],  # car: c4 gets the input's top-left red value
    ])
    self.register_buffer('table', table)

  def forward(self, x):
    out = self.table.unsqueeze(0).repeat(x.shape[0], 1, 1)
    out[:, 6, 4] = x[:, 0, 0, 0]
    return out


def _save_torchscript(path, metadata):
  traced = torch.jit.trace(_UltralyticsLayout(), torch.rand(1, 3, 64, 64))
  torch.jit.save(traced, str(path), _extra_files={'config.txt': json.dumps(metadata)})
  return str(path)


def test_torchscript_ultralytics_layout_boxes_by_hand(tmp_path):
  model = _save_torchscript(tmp_path / 'fake.torchscript', {
      'names': {
          '0': 'zebra',
          '1': 'person',
          '2': 'car'
      },
      'imgsz': [64, 64]
  })
  handler = YoloModelHandler(model=TorchScriptModel(model), image_size=64)
  assert handler.pad_value == 114
  # 128x64 photo -> scale 0.5 into 64x32, padded 16 rows above and below.
  element = _decoded(tmp_path, 'wide.png', np.full((64, 128, 3), (200, 50, 50), np.uint8), handler)
  (result, ) = handler.run_inference([element], handler.load_model())
  # c0 (24,28,40,36) -> ((24-0)/.5, (28-16)/.5, 40/.5, (36-16)/.5); c1 is c0's duplicate
  # (IoU 0.88) and goes; c2 is another class and stays; c3 scores 0.2 < 0.25; c4 scores
  # the padding value 114/255 as "car".
  assert result.inference == [
      {
          'label': 'zebra',
          'class_id': 0,
          'score': 0.9,
          'box': [48.0, 24.0, 80.0, 40.0]
      },
      {
          'label': 'person',
          'class_id': 1,
          'score': 0.7,
          'box': [50.0, 24.0, 82.0, 40.0]
      },
      {
          'label': 'car',
          'class_id': 2,
          'score': round(114 / 255, 4),
          'box': [8.0, 8.0, 24.0, 24.0]
      },
  ]


def test_torchscript_class_names_file_overrides_and_is_checked(tmp_path):
  model = _save_torchscript(tmp_path / 'plain.torchscript', {})
  names = tmp_path / 'names.txt'
  names.write_text('a\nb\nc\n')
  handler = YoloModelHandler(model=TorchScriptModel(model, str(names)), image_size=64)
  assert handler.load_model().class_names() == ['a', 'b', 'c']
  names.write_text('a\nb\n')
  with pytest.raises(ValueError, match='scores 3 classes but 2 class names'):
    handler.load_model()
  with pytest.raises(ValueError, match='no class names'):
    YoloModelHandler(model=TorchScriptModel(model), image_size=64).load_model()


def test_image_given_as_pil_is_unchanged_by_inference(tmp_path, tiny_handler, tiny_model):
  element = _decoded(tmp_path, 'c.png', detect_helpers.coffee(), tiny_handler)
  before = np.asarray(element.image).copy()
  tiny_handler.run_inference([element], tiny_model)
  assert isinstance(element.image, Image.Image)
  np.testing.assert_array_equal(np.asarray(element.image), before)
