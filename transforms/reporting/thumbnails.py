"""Contact-sheet thumbnails of the detection job: small inline JPEGs, matched images first.

The images shown are chosen in the pipeline (``Top`` of at most
``DEFAULT_THUMBNAILS`` detection lines, matched first, best score first);
each thumbnail is made from the image's annotated copy when one was
written, else from the input image. An image that cannot be read any more
(moved or deleted since, unreadable) gets a caption without a picture:
the report never fails for a thumbnail.
"""
import base64
import io
import logging
from typing import Any, Dict, Optional, Tuple

import apache_beam as beam
from PIL import Image
from PIL import ImageOps

from common import paths
from transforms.detection.image_files import annotated_path

_LOGGER = logging.getLogger(__name__)

DEFAULT_THUMBNAILS = 60
THUMBNAIL_SIDE = 240
JPEG_QUALITY = 80
MAX_SOURCE_PIXELS = 200_000_000


def _best_score(record: Dict[str, Any]) -> float:
  return max((float(d.get('score') or 0.0) for d in record.get('detections') or ()), default=0.0)


def contact_order(record: Dict[str, Any]) -> Tuple[bool, float, str]:
  """Sort key: images with detections first, then by best score, then by image path."""
  return (not record.get('detections'), -_best_score(record), str(record.get('image')))


def thumbnail_data_uri(data: bytes, side: int = THUMBNAIL_SIDE) -> str:
  """Image bytes -> ``data:image/jpeg;base64,...`` at most ``side`` pixels on its longer side."""
  with Image.open(io.BytesIO(data)) as image:
    if image.width * image.height > MAX_SOURCE_PIXELS:
      raise ValueError(f'{image.width}x{image.height} is too large for a thumbnail')
    image.draft('RGB', (side * 2, side * 2))  # JPEG: decode at reduced scale
    image = ImageOps.exif_transpose(image)
    image = image.convert('RGB')
    image.thumbnail((side, side))
    out = io.BytesIO()
    image.save(out, 'JPEG', quality=JPEG_QUALITY)
  return 'data:image/jpeg;base64,' + base64.b64encode(out.getvalue()).decode('ascii')


def _relative(image: str, input_root: str) -> Optional[str]:
  try:
    return paths.relative_to(image, input_root)
  except ValueError:
    return None


def make_thumbnail(record: Dict[str, Any], *, output_dir: str, input_root: str) -> Dict[str, Any]:
  """Detection line -> ``{'image', 'relative_path', 'annotated', 'site_id', 'detections',
  'src'}``; ``src`` is a data URI or None, ``annotated`` the copy's path relative to
  the output folder (None when there is no copy)."""
  image = str(record.get('image'))
  relative = _relative(image, input_root)
  candidates = []
  annotated_rel = None
  if relative is not None:
    annotated = annotated_path(output_dir, relative)
    annotated_rel = paths.relative_to(annotated, output_dir)
    candidates.append(annotated)
  candidates.append(image)
  src = None
  shown_annotated = False
  for candidate in candidates:
    try:
      src = thumbnail_data_uri(paths.read_bytes(candidate))
      shown_annotated = candidate is not image
      break
    except Exception as e:  # pylint: disable=broad-except
      # Missing file (no annotated copy, input moved), unreadable image: caption only.
      _LOGGER.debug('no thumbnail from %s: %s', candidate, e)
  return {
      'image': image,
      'relative_path': relative or image,
      'annotated': annotated_rel if shown_annotated else None,
      'site_id': record.get('site_id'),
      'detections': sorted(record.get('detections') or (),
                           key=lambda d: -float(d.get('score') or 0.0)),
      'src': src,
  }


def _each(chosen):
  return chosen


def _in_order(made):
  return sorted(made, key=contact_order)


class ContactSheet(beam.PTransform):
  """Detection lines -> one list of at most ``max_images`` thumbnails (:func:`make_thumbnail`),
  in :func:`contact_order`. Thumbnails are made in parallel after a reshuffle."""

  def __init__(self, *, output_dir: str, input_root: str, max_images: int = DEFAULT_THUMBNAILS):
    super().__init__()
    self._output_dir = output_dir
    self._input_root = input_root
    self._max_images = max_images

  def expand(self, records):
    return (records
            | 'Choose' >> beam.combiners.Top.Of(self._max_images, key=contact_order, reverse=True)
            | 'Each' >> beam.FlatMap(_each)
            | 'Spread' >> beam.Reshuffle()
            | 'Thumbnail' >> beam.Map(
                make_thumbnail, output_dir=self._output_dir, input_root=self._input_root)
            | 'Collect' >> beam.combiners.ToList()
            | 'InOrder' >> beam.Map(_in_order))
