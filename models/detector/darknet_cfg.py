"""Darknet ``.cfg`` files: parsing, validation and the weights-file layout.

Pure Python (no torch) so the job can check a model at launch: the class
count against the names file, and the ``.weights`` size against what the cfg
needs, before any worker starts.

Weights layout (Darknet's ``load_weights``): int32 major, minor, revision;
``seen`` as int64 when ``major * 10 + minor >= 2`` (and both < 1000), else
int32; then float32 values per ``[convolutional]`` layer in cfg order: with
batch norm ``bias, scale, running mean, running var``, without it ``bias``;
then the kernel ``[out, in / groups, kh, kw]``.
"""
import dataclasses
import struct
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

HEADER_PROBE_BYTES = 12
"""Bytes to read from a ``.weights`` file to know its header size."""

SUPPORTED_LAYERS = ('convolutional', 'maxpool', 'upsample', 'route', 'shortcut', 'yolo')
ACTIVATIONS = ('leaky', 'linear', 'relu', 'mish', 'swish', 'logistic')


class DarknetError(ValueError):
  """The cfg, the weights or the names do not describe one valid model."""


@dataclasses.dataclass(frozen=True)
class Layer:
  """One cfg section after the ``[net]`` one, with its resolved shapes.

  Attributes:
    index: position among layers (what ``route``/``shortcut`` refer to).
    kind: section name, e.g. ``convolutional``.
    options: the section's ``key=value`` pairs as written.
    in_channels: channels entering the layer (first source for route).
    out_channels: channels leaving it.
    sources: absolute indices of earlier layers it reads (route, shortcut).
    num_weights: float32 values it takes from the ``.weights`` file.
  """
  index: int
  kind: str
  options: Mapping[str, str]
  in_channels: int
  out_channels: int
  sources: Tuple[int, ...] = ()
  num_weights: int = 0

  def get_int(self, key: str, default: Optional[int] = None) -> int:
    return _int(self, key, default)

  def get_float(self, key: str, default: float) -> float:
    value = self.options.get(key)
    return default if value is None else float(value)

  def get_ints(self, key: str) -> List[int]:
    value = self.options.get(key, '')
    try:
      return [int(v) for v in value.split(',') if v.strip()]
    except ValueError as e:
      raise DarknetError(f'layer {self.index} [{self.kind}]: bad {key}={value!r}') from e


@dataclasses.dataclass(frozen=True)
class DarknetConfig:
  """A parsed and checked cfg."""
  net: Mapping[str, str]
  layers: Tuple[Layer, ...]
  num_classes: int

  @property
  def num_weights(self) -> int:
    """float32 values the ``.weights`` file must hold after its header."""
    return sum(layer.num_weights for layer in self.layers)

  @property
  def input_size(self) -> int:
    return int(self.net.get('width', 416))


def parse_sections(text: str) -> List[Tuple[str, Dict[str, str]]]:
  """``[name]`` sections with their ``key=value`` options, in order."""
  sections: List[Tuple[str, Dict[str, str]]] = []
  for number, raw in enumerate(text.splitlines(), start=1):
    line = raw.split('#', 1)[0].split(';', 1)[0].strip()
    if not line:
      continue
    if line.startswith('['):
      if not line.endswith(']'):
        raise DarknetError(f'cfg line {number}: unclosed section header {line!r}')
      sections.append((line[1:-1].strip().lower(), {}))
    elif '=' in line and sections:
      key, value = line.split('=', 1)
      sections[-1][1][key.strip()] = value.strip()
    else:
      raise DarknetError(f'cfg line {number}: expected [section] or key=value, got {line!r}')
  return sections


def parse_cfg(text: str) -> DarknetConfig:
  """Parses and checks a cfg: supported layers, consistent shapes and classes."""
  sections = parse_sections(text)
  if not sections or sections[0][0] not in ('net', 'network'):
    raise DarknetError('cfg must start with a [net] section')
  net = sections[0][1]
  channels = [int(net.get('channels', 3))]
  layers: List[Layer] = []
  for index, (kind, options) in enumerate(sections[1:]):
    if kind not in SUPPORTED_LAYERS:
      raise DarknetError(
          f'layer {index} [{kind}] is not supported (supported: {", ".join(SUPPORTED_LAYERS)})')
    layer = _plan_layer(index, kind, options, channels[-1], layers)
    layers.append(layer)
    channels.append(layer.out_channels)
  yolo = [layer for layer in layers if layer.kind == 'yolo']
  if not yolo:
    raise DarknetError('cfg has no [yolo] layer: not a YOLO detector')
  classes = {layer.get_int('classes') for layer in yolo}
  if len(classes) != 1:
    raise DarknetError(f'[yolo] layers disagree on classes: {sorted(classes)}')
  return DarknetConfig(net=net, layers=tuple(layers), num_classes=classes.pop())


def weights_header_size(probe: bytes) -> int:
  """Header bytes of a ``.weights`` file given its first 12 bytes."""
  if len(probe) < HEADER_PROBE_BYTES:
    raise DarknetError(f'weights file is {len(probe)} bytes: too short for a header')
  major, minor, _ = struct.unpack('<3i', probe[:HEADER_PROBE_BYTES])
  wide_seen = (major * 10 + minor) >= 2 and major < 1000 and minor < 1000
  return HEADER_PROBE_BYTES + (8 if wide_seen else 4)


def check_weights_size(config: DarknetConfig, size_bytes: int, header_bytes: int) -> None:
  """Raises unless a weights file of ``size_bytes`` fits ``config`` exactly."""
  expected = header_bytes + 4 * config.num_weights
  if size_bytes == expected:
    return
  if size_bytes < expected:
    why = 'the file is truncated or belongs to a smaller model'
  else:
    why = 'the file belongs to a different (larger) model'
  raise DarknetError(f'weights file has {size_bytes} bytes but the cfg needs exactly {expected} '
                     f'({header_bytes}-byte header + {config.num_weights} float32 values): {why}')


def check_class_names(config: DarknetConfig, names: Sequence[str]) -> None:
  if len(names) != config.num_classes:
    raise DarknetError(f'the class names file lists {len(names)} names but the cfg\'s [yolo] '
                       f'layers have classes={config.num_classes}')


def parse_names(text: str) -> List[str]:
  """One class name per line (``coco.names``); blank lines are skipped."""
  return [line.strip() for line in text.splitlines() if line.strip()]


def _int(layer: Layer, key: str, default: Optional[int]) -> int:
  value = layer.options.get(key)
  if value is None:
    if default is None:
      raise DarknetError(f'layer {layer.index} [{layer.kind}]: {key}= is required')
    return default
  try:
    return int(value)
  except ValueError as e:
    raise DarknetError(f'layer {layer.index} [{layer.kind}]: bad {key}={value!r}') from e


def _absolute(index: int, ref: int, kind: str) -> int:
  target = index + ref if ref < 0 else ref
  if not 0 <= target < index:
    raise DarknetError(f'layer {index} [{kind}] refers to layer {ref}, which is not before it')
  return target


def _plan_layer(index: int, kind: str, options: Mapping[str, str], in_channels: int,
                previous: Sequence[Layer]) -> Layer:
  probe = Layer(index, kind, options, in_channels, in_channels)
  if kind == 'convolutional':
    filters = probe.get_int('filters')
    size = probe.get_int('size', 1)
    groups = probe.get_int('groups', 1)
    if filters < 1 or size < 1 or groups < 1 or in_channels % groups:
      raise DarknetError(f'layer {index} [convolutional]: bad filters/size/groups')
    activation = options.get('activation', 'logistic')
    if activation not in ACTIVATIONS:
      raise DarknetError(f'layer {index} [convolutional]: activation={activation} not supported')
    per_filter = 4 if probe.get_int('batch_normalize', 0) else 1
    count = filters * per_filter + filters * (in_channels // groups) * size * size
    return dataclasses.replace(probe, out_channels=filters, num_weights=count)
  if kind == 'route':
    refs = probe.get_ints('layers')
    if not refs:
      raise DarknetError(f'layer {index} [route]: layers= is required')
    sources = tuple(_absolute(index, ref, kind) for ref in refs)
    total = sum(previous[s].out_channels for s in sources)
    groups = probe.get_int('groups', 1)
    if groups < 1 or total % groups:
      raise DarknetError(f'layer {index} [route]: groups={groups} does not divide {total} channels')
    return dataclasses.replace(probe,
                               in_channels=previous[sources[0]].out_channels,
                               out_channels=total // groups,
                               sources=sources)
  if kind == 'shortcut':
    refs = probe.get_ints('from')
    if len(refs) != 1:
      raise DarknetError(f'layer {index} [shortcut]: exactly one from= layer is supported')
    source = _absolute(index, refs[0], kind)
    if previous[source].out_channels != in_channels:
      raise DarknetError(f'layer {index} [shortcut]: channel counts differ')
    if options.get('activation', 'linear') != 'linear':
      raise DarknetError(f'layer {index} [shortcut]: only activation=linear is supported')
    return dataclasses.replace(probe, sources=(source, ))
  if kind == 'yolo':
    classes = probe.get_int('classes', 80)
    mask = probe.get_ints('mask') or list(range(probe.get_int('num', 1)))
    anchors = probe.get_ints('anchors')
    if len(anchors) % 2 or max(mask, default=0) * 2 + 1 >= len(anchors):
      raise DarknetError(f'layer {index} [yolo]: mask {mask} does not fit anchors {anchors}')
    if int(options.get('new_coords', 0)):
      raise DarknetError(f'layer {index} [yolo]: new_coords=1 is not supported')
    expected = len(mask) * (classes + 5)
    if in_channels != expected:
      raise DarknetError(f'layer {index} [yolo]: the layer before it has {in_channels} filters, '
                         f'but {len(mask)} anchors x ({classes} classes + 5) need {expected}')
    return probe
  return probe  # maxpool, upsample: channels unchanged
