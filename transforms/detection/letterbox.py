"""Letterboxing: scale an image into a square without distortion, and back.

The letterboxed array stays ``uint8`` HWC until the handler stacks a batch
(4x less to copy and pickle than float32); the geometry needed to map boxes
back to the original pixels travels with it
(:meth:`Geometry.to_original`). The pad value is a property of the model
(:mod:`models.detector.yolo_handler`), passed in by the decoder.
"""
import dataclasses

import numpy as np
from PIL import Image


@dataclasses.dataclass(frozen=True)
class Geometry:
  """How an original image sits in the letterboxed square."""
  width: int  # original image, after EXIF orientation
  height: int
  scale_x: float  # resized width / original width
  scale_y: float
  pad_x: int  # left padding in letterboxed pixels
  pad_y: int

  def to_original(self, boxes: np.ndarray) -> np.ndarray:
    """Maps ``[K, 4]`` x1,y1,x2,y2 from letterboxed to original pixels, clipped."""
    out = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale_x
    out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale_y
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, self.width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, self.height)
    return out


@dataclasses.dataclass(frozen=True)
class Letterboxed:
  """A model input: ``array`` is ``[size, size, 3]`` uint8 RGB."""
  array: np.ndarray
  geometry: Geometry


def letterbox(image: Image.Image, size: int, pad_value: int) -> Letterboxed:
  """Resizes an RGB image to fit ``size`` x ``size`` keeping aspect, centred, padded."""
  width, height = image.size
  scale = min(size / width, size / height)
  new_w = min(size, max(1, round(width * scale)))
  new_h = min(size, max(1, round(height * scale)))
  if (new_w, new_h) != (width, height):
    # reducing_gap: shrink big photos by a cheap integer box filter first.
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
  canvas = np.full((size, size, 3), pad_value, dtype=np.uint8)
  pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
  canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = np.asarray(image)
  return Letterboxed(
      canvas,
      Geometry(width=width,
               height=height,
               scale_x=new_w / width,
               scale_y=new_h / height,
               pad_x=pad_x,
               pad_y=pad_y))
