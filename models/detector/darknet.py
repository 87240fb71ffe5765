"""Darknet YOLO (``.cfg`` + ``.weights``) as a torch module.

``build(config)`` makes the network, ``load_weights(net, data)`` fills it
from a ``.weights`` file that must match the cfg byte for byte, and
:class:`DarknetYolo`'s ``forward`` returns decoded boxes and class scores, the
same contract as :mod:`models.detector.ultralytics_torchscript`:

  input   float32 ``[B, 3, S, S]`` RGB in 0-1 (letterboxed, S a multiple of 32)
  output  ``(boxes [B, N, 4] x1,y1,x2,y2 in input pixels, scores [B, N, C])``

with score = objectness x class probability, as Darknet reports it.

Batch norm is folded into the convolutions at load time with Darknet's own
formula (``(x - mean) / (sqrt(var) + 1e-6)``): same numbers, fewer ops.
"""
import math
from typing import List, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.detector.darknet_cfg import DarknetConfig
from models.detector.darknet_cfg import DarknetError
from models.detector.darknet_cfg import Layer
from models.detector.darknet_cfg import weights_header_size

_DARKNET_BN_EPS = 1e-6
_LEAKY_SLOPE = 0.1


class _Activation(nn.Module):

  def __init__(self, name: str):
    super().__init__()
    self.name = name

  def forward(self, x):
    if self.name == 'leaky':
      return F.leaky_relu(x, _LEAKY_SLOPE, inplace=True)
    if self.name == 'relu':
      return F.relu(x, inplace=True)
    if self.name == 'mish':
      return F.mish(x)
    if self.name == 'swish':
      return F.silu(x)
    if self.name == 'logistic':
      return torch.sigmoid(x)
    return x


class _MaxPool(nn.Module):
  """Darknet maxpool: ``padding`` (default size-1) split as ``pad // 2`` before.

  Darknet skips out-of-image cells; replicate padding gives the same maximum
  (the edge value is inside every window that reaches past the edge). This
  is what keeps yolov3-tiny's ``size=2 stride=1`` layer at 13x13.
  """

  def __init__(self, layer: Layer):
    super().__init__()
    self.size = layer.get_int('size', 2)
    self.stride = layer.get_int('stride', 1)
    self.padding = layer.get_int('padding', self.size - 1)

  def forward(self, x):
    h, w = x.shape[-2:]
    before = self.padding // 2
    out_h = (h + self.padding - self.size) // self.stride + 1
    out_w = (w + self.padding - self.size) // self.stride + 1
    after_h = max(0, (out_h - 1) * self.stride + self.size - h - before)
    after_w = max(0, (out_w - 1) * self.stride + self.size - w - before)
    if before or after_h or after_w:
      x = F.pad(x, (before, after_w, before, after_h), mode='replicate')
    return F.max_pool2d(x, self.size, self.stride)


class _YoloHead(nn.Module):
  """Decodes one ``[yolo]`` layer's raw map into boxes and scores."""

  def __init__(self, layer: Layer):
    super().__init__()
    anchors = layer.get_ints('anchors')
    mask = layer.get_ints('mask') or list(range(layer.get_int('num', 1)))
    pairs = [(anchors[2 * m], anchors[2 * m + 1]) for m in mask]
    self.register_buffer('anchors', torch.tensor(pairs, dtype=torch.float32), persistent=False)
    self.num_classes = layer.get_int('classes', 80)
    self.scale_xy = layer.get_float('scale_x_y', 1.0)

  def forward(self, x, input_h: int, input_w: int) -> Tuple[torch.Tensor, torch.Tensor]:
    b, _, h, w = x.shape
    a = self.anchors.shape[0]
    p = x.view(b, a, 5 + self.num_classes, h, w).permute(0, 1, 3, 4, 2)
    ys = torch.arange(h, device=x.device, dtype=x.dtype).view(1, 1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, 1, w)
    xy = torch.sigmoid(p[..., 0:2]) * self.scale_xy - 0.5 * (self.scale_xy - 1)
    cx = (xy[..., 0] + xs) * (input_w / w)
    cy = (xy[..., 1] + ys) * (input_h / h)
    anchors = self.anchors.to(x.dtype).view(1, a, 1, 1, 2)
    wh = torch.exp(p[..., 2:4]) * anchors
    boxes = torch.stack(
        (cx - wh[..., 0] / 2, cy - wh[..., 1] / 2, cx + wh[..., 0] / 2, cy + wh[..., 1] / 2), -1)
    scores = torch.sigmoid(p[..., 4:5]) * torch.sigmoid(p[..., 5:])
    return boxes.reshape(b, -1, 4), scores.reshape(b, -1, self.num_classes)


class DarknetYolo(nn.Module):
  """A Darknet YOLO network (v3, v3-tiny and relatives)."""

  def __init__(self, config: DarknetConfig):
    super().__init__()
    self.config = config
    self.kinds = [layer.kind for layer in config.layers]
    self.sources = [layer.sources for layer in config.layers]
    self.route_groups = [(layer.get_int('groups', 1),
                          layer.get_int('group_id', 0)) if layer.kind == 'route' else (1, 0)
                         for layer in config.layers]
    self.blocks = nn.ModuleList(_make_block(layer) for layer in config.layers)
    needed = {s for sources in self.sources for s in sources}
    self.keep = [i in needed for i in range(len(config.layers))]

  @property
  def num_classes(self) -> int:
    return self.config.num_classes

  def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    input_h, input_w = x.shape[-2:]
    outputs: List = []
    boxes, scores = [], []
    for i, block in enumerate(self.blocks):
      kind = self.kinds[i]
      if kind == 'route':
        parts = [outputs[s] for s in self.sources[i]]
        x = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        groups, group_id = self.route_groups[i]
        if groups > 1:
          x = torch.chunk(x, groups, dim=1)[group_id]
      elif kind == 'shortcut':
        x = x + outputs[self.sources[i][0]]
      elif kind == 'yolo':
        layer_boxes, layer_scores = block(x, input_h, input_w)
        boxes.append(layer_boxes)
        scores.append(layer_scores)
      else:
        x = block(x)
      outputs.append(x if self.keep[i] else None)
    return torch.cat(boxes, 1), torch.cat(scores, 1)


def build(config: DarknetConfig) -> DarknetYolo:
  """The network for ``config`` with zero weights (fill with :func:`load_weights`)."""
  return DarknetYolo(config)


def load_weights(net: DarknetYolo, data: bytes, name: str = 'weights') -> None:
  """Fills ``net`` from a Darknet ``.weights`` file's bytes.

  Raises:
    DarknetError: unless the file holds exactly the values the cfg needs
      (a truncated file, or weights of another model, never loads silently).
  """
  header = weights_header_size(data[:16])
  body = len(data) - header
  expected = net.config.num_weights
  if body != 4 * expected:
    state = 'truncated' if body < 4 * expected else 'longer than the cfg needs'
    raise DarknetError(
        f'{name}: {len(data)} bytes, but the cfg needs exactly {header + 4 * expected} '
        f'({header}-byte header + {expected} float32 values): the file is {state}, '
        'or cfg and weights are of different models')
  values = np.frombuffer(data, dtype='<f4', offset=header)
  offset = 0
  for layer, block in zip(net.config.layers, net.blocks):
    if layer.kind == 'convolutional':
      offset = _load_conv(layer, block, values, offset)
  if offset != expected:  # the cfg and the plan disagree: a bug, not user input
    raise AssertionError(f'consumed {offset} of {expected} weight values')


def _make_block(layer: Layer) -> nn.Module:
  if layer.kind == 'convolutional':
    size = layer.get_int('size', 1)
    pad = size // 2 if layer.get_int('pad', 0) else layer.get_int('padding', 0)
    conv = nn.Conv2d(layer.in_channels,
                     layer.out_channels,
                     size,
                     stride=layer.get_int('stride', 1),
                     padding=pad,
                     groups=layer.get_int('groups', 1),
                     bias=True)
    return nn.Sequential(conv, _Activation(layer.options.get('activation', 'logistic')))
  if layer.kind == 'maxpool':
    return _MaxPool(layer)
  if layer.kind == 'upsample':
    return nn.Upsample(scale_factor=layer.get_int('stride', 2), mode='nearest')
  if layer.kind == 'yolo':
    return _YoloHead(layer)
  return nn.Identity()  # route, shortcut: handled in DarknetYolo.forward


def _take(values: np.ndarray, offset: int, count: int) -> Tuple[np.ndarray, int]:
  return values[offset:offset + count], offset + count


def _load_conv(layer: Layer, block: nn.Sequential, values: np.ndarray, offset: int) -> int:
  conv: nn.Conv2d = block[0]
  filters = layer.out_channels
  if layer.get_int('batch_normalize', 0):
    bias, offset = _take(values, offset, filters)
    scale, offset = _take(values, offset, filters)
    mean, offset = _take(values, offset, filters)
    var, offset = _take(values, offset, filters)
  else:
    bias, offset = _take(values, offset, filters)
  kernel, offset = _take(values, offset, math.prod(conv.weight.shape))
  kernel = kernel.reshape(conv.weight.shape)
  if layer.get_int('batch_normalize', 0):
    # float32 throughout, as Darknet computes it.
    factor = scale / (np.sqrt(var) + np.float32(_DARKNET_BN_EPS))
    kernel = kernel * factor.reshape(-1, 1, 1, 1)
    bias = bias - mean * factor
  with torch.no_grad():
    conv.weight.copy_(torch.tensor(kernel, dtype=torch.float32))  # copies: values is read-only
    conv.bias.copy_(torch.tensor(bias, dtype=torch.float32))
  return offset
