"""Darknet cfg parsing, exact weights loading and YOLO decoding."""
import math
import os
import struct

import numpy as np
import pytest
import torch

import detect_helpers
from models.detector import darknet
from models.detector import darknet_cfg
from models.detector.darknet_cfg import DarknetError

TINY_WEIGHTS_BYTES = 35_434_956


@pytest.fixture(scope='module')
def tiny_cfg():
  with open(os.path.join(detect_helpers.model_dir(), 'yolov3-tiny.cfg'), encoding='utf-8') as f:
    return darknet_cfg.parse_cfg(f.read())


@pytest.fixture(scope='module')
def tiny_weights():
  with open(os.path.join(detect_helpers.model_dir(), 'yolov3-tiny.weights'), 'rb') as f:
    return f.read()


def test_yolov3_tiny_cfg_accounts_for_every_weights_byte(tiny_cfg, tiny_weights):
  header = darknet_cfg.weights_header_size(tiny_weights[:12])
  assert len(tiny_weights) == TINY_WEIGHTS_BYTES
  assert header == 20  # version 0.2: int64 'seen'
  assert header + 4 * tiny_cfg.num_weights == TINY_WEIGHTS_BYTES
  assert tiny_cfg.num_classes == 80
  darknet_cfg.check_weights_size(tiny_cfg, len(tiny_weights), header)


def test_loader_puts_the_first_values_into_the_first_conv(tiny_cfg, tiny_weights):
  net = darknet.build(tiny_cfg)
  darknet.load_weights(net, tiny_weights)
  # Layer 0: batch norm, 16 filters, 3x3x3 kernel: bias, scale, mean, var, kernel.
  values = np.frombuffer(tiny_weights, dtype='<f4', offset=20)
  bias, scale, mean, var = (values[i * 16:(i + 1) * 16].astype(np.float64) for i in range(4))
  kernel = values[64:64 + 16 * 27].reshape(16, 3, 3, 3).astype(np.float64)
  factor = scale / (np.sqrt(var) + 1e-6)
  conv = net.blocks[0][0]
  np.testing.assert_allclose(conv.weight.detach().numpy(),
                             kernel * factor[:, None, None, None],
                             rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(conv.bias.detach().numpy(), bias - mean * factor, rtol=1e-5, atol=1e-5)
  # Last layer (1x1, 255 filters, no batch norm): its bias then kernel end the file.
  last = net.blocks[len(tiny_cfg.layers) - 2][0]
  tail = values[-(255 + 255 * 256):]
  np.testing.assert_array_equal(last.bias.detach().numpy(), tail[:255])
  np.testing.assert_array_equal(last.weight.detach().numpy().ravel(), tail[255:])


def test_truncated_weights_are_a_clear_error(tiny_cfg, tiny_weights):
  net = darknet.build(tiny_cfg)
  with pytest.raises(DarknetError, match='truncated'):
    darknet.load_weights(net, tiny_weights[:-4], name='yolov3-tiny.weights')
  with pytest.raises(DarknetError, match='truncated'):
    darknet_cfg.check_weights_size(tiny_cfg, TINY_WEIGHTS_BYTES - 1000, 20)


def test_weights_of_another_model_are_a_clear_error(tiny_cfg, tiny_weights):
  text = open(os.path.join(detect_helpers.model_dir(), 'yolov3-tiny.cfg')).read()
  other = darknet_cfg.parse_cfg(text.replace('filters=1024', 'filters=512', 1))
  with pytest.raises(DarknetError, match='different'):
    darknet.load_weights(darknet.build(other), tiny_weights)
  with pytest.raises(DarknetError, match=str(TINY_WEIGHTS_BYTES)):
    darknet_cfg.check_weights_size(other, TINY_WEIGHTS_BYTES, 20)


def test_names_count_must_match_cfg_classes(tiny_cfg):
  darknet_cfg.check_class_names(tiny_cfg, ['x'] * 80)
  with pytest.raises(DarknetError, match='79 names.*classes=80'):
    darknet_cfg.check_class_names(tiny_cfg, ['x'] * 79)


def test_tiny_maxpool_stride_one_keeps_the_13x13_grid(tiny_cfg):
  net = darknet.build(tiny_cfg).eval()
  with torch.inference_mode():
    boxes, scores = net(torch.zeros(1, 3, 416, 416))
    assert boxes.shape == (1, 3 * (13 * 13 + 26 * 26), 4)
    assert scores.shape == (1, 3 * (13 * 13 + 26 * 26), 80)
    boxes, _ = net(torch.zeros(2, 3, 320, 320))
    assert boxes.shape == (2, 3 * (10 * 10 + 20 * 20), 4)


def test_maxpool_size2_stride1_pads_right_and_bottom_by_replication():
  layer = darknet_cfg.Layer(0, 'maxpool', {'size': '2', 'stride': '1'}, 1, 1)
  x = torch.tensor([[1., 5., 2.], [3., 4., 9.], [0., 8., 6.]]).view(1, 1, 3, 3)
  out = darknet._MaxPool(layer)(x)  # pylint: disable=protected-access
  # Window at (i, j) covers rows i..i+1, cols j..j+1; beyond the edge counts as the edge.
  expected = torch.tensor([[5., 9., 9.], [8., 9., 9.], [8., 8., 6.]])
  assert torch.equal(out.view(3, 3), expected)


def test_yolo_head_decodes_by_hand():
  layer = darknet_cfg.Layer(0, 'yolo', {'mask': '1', 'anchors': '5,6, 10,20', 'classes': '2'}, 7, 7)
  head = darknet._YoloHead(layer)  # pylint: disable=protected-access
  raw = torch.zeros(1, 7, 2, 2)  # 1 anchor x (4 box + 1 objectness + 2 classes), 2x2 grid
  raw[0, 5] = math.log(3.0)  # class 0 probability 0.75
  raw[0, 6] = -100.0  # class 1 probability ~0
  raw[0, 2, 1, 0] = math.log(2.0)  # cell (row 1, col 0): width 2 x anchor
  boxes, scores = head(raw, 64, 64)  # stride 32
  assert boxes.shape == (1, 4, 4) and scores.shape == (1, 4, 2)
  # Cells in row-major order; tx = ty = 0 puts centres mid-cell; anchor 10x20.
  expected = torch.tensor(
      [[16 - 5, 16 - 10, 16 + 5, 16 + 10], [48 - 5, 16 - 10, 48 + 5, 16 + 10],
       [16 - 10, 48 - 10, 16 + 10, 48 + 10], [48 - 5, 48 - 10, 48 + 5, 48 + 10]],
      dtype=torch.float32)
  torch.testing.assert_close(boxes[0], expected)
  torch.testing.assert_close(scores[0, :, 0], torch.full((4, ), 0.5 * 0.75))
  assert float(scores[0, :, 1].max()) < 1e-10


def _yolo_head(mask):
  """A 1x1 linear convolution to one anchor's 5 + 9 values and the [yolo] layer reading it."""
  return f"""[convolutional]
size=1
stride=1
pad=1
filters=14
activation=linear
[yolo]
mask={mask}
anchors=4,4, 8,8
classes=9
num=2
"""


MINI_V3 = ("""
[net]
width=64
height=64
channels=3
[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky
[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky
[convolutional]
filters=8
size=1
stride=1
pad=1
activation=leaky
[shortcut]
from=-2
activation=linear
""" + _yolo_head(1) + """\
[route]
layers=-3
[upsample]
stride=2
[route]
layers=-1, 0
""" + _yolo_head(0))


def test_yolov3_layers_route_shortcut_upsample_load_in_cfg_order(tmp_path):
  config = darknet_cfg.parse_cfg(MINI_V3)
  sizes = [4 * 4 + 4 * 27, 4 * 8 + 8 * 36, 8 + 64, 14 + 14 * 8, 14 + 14 * 12]
  assert config.num_weights == sum(sizes)
  values = np.arange(config.num_weights, dtype='<f4') / 1000.0
  data = struct.pack('<3iq', 0, 2, 0, 0) + values.tobytes()
  net = darknet.build(config).eval()
  darknet.load_weights(net, data)
  convs = [b[0] for k, b in zip(net.kinds, net.blocks) if k == 'convolutional']
  starts = np.cumsum([0] + sizes)
  # Convs without batch norm: bias first, then the kernel, straight from the file.
  for conv, start in ((convs[2], starts[2]), (convs[4], starts[4])):
    n = conv.out_channels
    np.testing.assert_array_equal(conv.bias.detach().numpy(), values[start:start + n])
    np.testing.assert_array_equal(conv.weight.detach().numpy().ravel(),
                                  values[start + n:starts[list(starts).index(start) + 1]])
  with torch.inference_mode():
    boxes, scores = net(torch.rand(2, 3, 64, 64))
  assert boxes.shape == (2, 32 * 32 + 64 * 64, 4)  # one anchor each on 32x32 and 64x64
  assert scores.shape == (2, 32 * 32 + 64 * 64, 9)
  with pytest.raises(DarknetError, match='truncated'):
    darknet.load_weights(net, data[:-8])


@pytest.mark.parametrize('cfg, message', [
    ('[net]\n[convolutional]\nfilters=8\n[reorg]\n[yolo]\n', r'\[reorg\] is not supported'),
    ('[net]\n[convolutional]\nfilters=8\nsize=1\n[yolo]\nmask=0\nanchors=1,1\nclasses=2\n',
     'has 8 filters.*need 7'),
    ('[convolutional]\nfilters=8\n', r'start with a \[net\]'),
    ('[net]\n[route]\nlayers=3\n', 'not before it'),
    ('[net]\n[convolutional]\nfilters=8\nsize=1\n', r'no \[yolo\] layer'),
])
def test_bad_cfgs_are_clear_errors(cfg, message):
  with pytest.raises(DarknetError, match=message):
    darknet_cfg.parse_cfg(cfg)


def _yolov3_cfg() -> str:
  """YOLOv3 (Darknet-53 + three heads, 80 classes) written out layer by layer."""

  def conv(filters, size, stride=1, bn=True, activation='leaky'):
    return (f'[convolutional]\n{"batch_normalize=1" if bn else ""}\nfilters={filters}\n'
            f'size={size}\nstride={stride}\npad=1\nactivation={activation}\n')

  def yolo(mask):
    return (f'[yolo]\nmask={mask}\nanchors=10,13, 16,30, 33,23, 30,61, 62,45, 59,119, '
            '116,90, 156,198, 373,326\nclasses=80\nnum=9\n')

  def head(filters):
    return [conv(filters, 1), conv(2 * filters, 3)] * 3 + [
        conv(255, 1, bn=False, activation='linear')
    ]

  parts = ['[net]\nwidth=416\nheight=416\nchannels=3\n', conv(32, 3)]
  for filters, blocks in ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)):
    parts.append(conv(filters, 3, stride=2))
    parts += [conv(filters // 2, 1), conv(filters, 3), '[shortcut]\nfrom=-3\n'] * blocks
  parts += head(512) + [
      yolo('6,7,8'), '[route]\nlayers=-4\n',
      conv(256, 1), '[upsample]\nstride=2\n', '[route]\nlayers=-1, 61\n'
  ]
  parts += head(256) + [
      yolo('3,4,5'), '[route]\nlayers=-4\n',
      conv(128, 1), '[upsample]\nstride=2\n', '[route]\nlayers=-1, 36\n'
  ]
  return '\n'.join(parts + head(128) + [yolo('0,1,2')])


def test_full_yolov3_needs_exactly_the_published_weights_size():
  config = darknet_cfg.parse_cfg(_yolov3_cfg())
  assert len(config.layers) == 107
  assert 20 + 4 * config.num_weights == 248_007_048  # size of the public yolov3.weights
  with torch.inference_mode():
    boxes, scores = darknet.build(config).eval()(torch.rand(1, 3, 64, 64))
  assert boxes.shape == (1, 3 * (2 * 2 + 4 * 4 + 8 * 8), 4) and scores.shape[-1] == 80
