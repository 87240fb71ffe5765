"""TorchScript YOLO exports with the Ultralytics (v8 and later) output layout.

An export made with ``model.export(format="torchscript")`` takes RGB 0-1
``[B, 3, S, S]`` (letterboxed, padding 114) and returns ``[B, 4 + nc, N]``:
``cx, cy, w, h`` in input pixels, then one score per class, no objectness.
Its metadata (class names, image size) is the JSON extra file
``config.txt``. The ``ultralytics`` package is never needed: this module reads
the file with torch and ``zipfile`` only.
"""
import io
import json
import zipfile
from typing import BinaryIO, List, Optional, Tuple, Union

import torch
from torch import nn

CONFIG_EXTRA_FILE = 'config.txt'
DEFAULT_IMAGE_SIZE = 640


class TorchScriptModelError(ValueError):
  """The file is not a usable TorchScript YOLO export."""


def read_metadata(source: Union[bytes, BinaryIO]) -> dict:
  """The export's ``config.txt`` metadata without loading the model ({} if none).

  TorchScript files are zip archives with extra files under ``<name>/extra/``;
  reading that entry directly (from bytes or a seekable file) keeps
  launch-time checks cheap.
  """
  try:
    archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
  except zipfile.BadZipFile as e:
    raise TorchScriptModelError('not a TorchScript file (not a zip archive)') from e
  with archive:
    entries = [n for n in archive.namelist() if n.endswith('/extra/' + CONFIG_EXTRA_FILE)]
    if not entries:
      return {}
    text = archive.read(entries[0]).decode('utf-8').strip()
  if not text:
    return {}
  try:
    metadata = json.loads(text)
  except json.JSONDecodeError as e:
    raise TorchScriptModelError(f'{CONFIG_EXTRA_FILE} in the model is not JSON: {e}') from e
  return metadata if isinstance(metadata, dict) else {}


def class_names_from_metadata(metadata: dict) -> Optional[List[str]]:
  """``names`` as a list ordered by class id (JSON turns int keys into strings)."""
  names = metadata.get('names')
  if isinstance(names, list):
    return [str(n) for n in names]
  if isinstance(names, dict):
    try:
      by_id = {int(k): str(v) for k, v in names.items()}
    except ValueError as e:
      raise TorchScriptModelError(f'class names keys must be ids: {e}') from e
    if sorted(by_id) != list(range(len(by_id))):
      raise TorchScriptModelError('class names ids are not 0..n-1')
    return [by_id[i] for i in range(len(by_id))]
  return None


def image_size_from_metadata(metadata: dict) -> Optional[int]:
  """The export's square input size, if its metadata says so."""
  size = metadata.get('imgsz')
  if isinstance(size, int):
    return size
  if isinstance(size, list) and len(size) == 2 and size[0] == size[1]:
    return int(size[0])
  return None


class UltralyticsYolo(nn.Module):
  """Wraps the export so ``forward`` returns ``(boxes [B,N,4] xyxy, scores [B,N,C])``."""

  def __init__(self, scripted: torch.jit.ScriptModule):
    super().__init__()
    self.scripted = scripted

  def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    out = self.scripted(x)
    if isinstance(out, (list, tuple)):  # some exports add auxiliary outputs
      out = out[0]
    if out.dim() != 3 or out.shape[1] < 5:
      raise TorchScriptModelError(
          f'model output has shape {tuple(out.shape)}; expected [B, 4 + classes, N]')
    pred = out.transpose(1, 2)
    cx, cy, w, h = pred[..., 0], pred[..., 1], pred[..., 2], pred[..., 3]
    boxes = torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), -1)
    return boxes, pred[..., 4:]


def load(data: bytes, device: torch.device) -> Tuple[UltralyticsYolo, dict]:
  """Loads an export from its bytes; returns the wrapped model and its metadata."""
  extra = {CONFIG_EXTRA_FILE: ''}
  try:
    scripted = torch.jit.load(io.BytesIO(data), map_location=device, _extra_files=extra)
  except RuntimeError as e:
    raise TorchScriptModelError(f'cannot load as TorchScript: {e}') from e
  scripted.eval()
  return UltralyticsYolo(scripted), read_metadata(data)
