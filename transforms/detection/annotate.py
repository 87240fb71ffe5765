"""Annotated copies: boxes, label and score drawn with Pillow, written beside the outputs.

Line width and font size scale with the image so labels stay readable on a
thumbnail and on a 48 MP photo; the font is Pillow's built-in scalable one
(``ImageFont.load_default(size=N)``), nothing is downloaded.
"""
import io
import posixpath
from typing import Callable, Dict, NamedTuple, Sequence, Tuple

import apache_beam as beam
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

from common import failures
from common import paths
from transforms import dead_letters
from transforms.detection.image_files import annotated_path

STAGE = failures.ANNOTATE
ANNOTATED = 'annotated'
JPEG_QUALITY = 90
# zlib's run-length strategy (Z_RLE): measured on a 741x500 photo, 32 ms and
# 641 KB against Pillow's default 180 ms and 643 KB.
PNG_OPTIONS = {'compress_level': 6, 'compress_type': 3}
_PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
            (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
            (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
            (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128))

FontFor = Callable[[int], ImageFont.FreeTypeFont]


def style_for(width: int, height: int) -> Tuple[int, int]:
  """``(line width, font size)`` in pixels for an image of this size."""
  short = min(width, height)
  return max(1, round(short / 150)), max(8, round(short / 28))


def color_for(class_id: int) -> Tuple[int, int, int]:
  return _PALETTE[class_id % len(_PALETTE)]


def draw_detections(image: Image.Image, detections: Sequence[dict], font_for: FontFor) -> None:
  """Draws each detection's box and ``label score`` on ``image`` (RGB, in place)."""
  if not detections:
    return
  line, font_size = style_for(*image.size)
  font = font_for(font_size)
  draw = ImageDraw.Draw(image)
  for det in detections:
    x1, y1, x2, y2 = det['box']
    color = color_for(det['class_id'])
    draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=color, width=line)
    text = f"{det['label']} {det['score']:.2f}"
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    text_w, text_h = right - left + 2 * line, bottom - top + 2 * line
    label_y = y1 - text_h if y1 - text_h >= 0 else y1  # above the box, else inside it
    draw.rectangle((x1, label_y, x1 + text_w, label_y + text_h), fill=color)
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    draw.text((x1 + line - left, label_y + line - top),
              text,
              font=font,
              fill=(0, 0, 0) if luminance > 150 else (255, 255, 255))


def encode(image: Image.Image, relative_path: str) -> Tuple[bytes, str]:
  """``(bytes, mime type)`` in the format the file's extension names."""
  out = io.BytesIO()
  if posixpath.splitext(relative_path)[1].lower() == '.png':
    image.save(out, 'PNG', **PNG_OPTIONS)
    return out.getvalue(), 'image/png'
  image.save(out, 'JPEG', quality=JPEG_QUALITY)
  return out.getvalue(), 'image/jpeg'


class AnnotatedOutputs(NamedTuple):
  records: beam.PCollection  # detection line dicts of images fully processed
  written: beam.PCollection  # str: annotated file paths
  failed: beam.PCollection  # dead letters


class _AnnotateFn(beam.DoFn):
  """Detected -> its detection record; annotated path on ``annotated``.

  Error policy: an image Pillow cannot draw or encode is dead-lettered
  (``annotate_failed``) and its record is not emitted; write errors raise
  (transient: the runner retries, the write is idempotent).
  """

  def __init__(self, output_dir: str, only_with_detections: bool):
    self._output_dir = output_dir
    self._only_with_detections = only_with_detections
    self._fonts: Dict[int, ImageFont.FreeTypeFont] = {}

  def setup(self):
    self._fonts = {}

  def _font(self, size: int) -> ImageFont.FreeTypeFont:
    if size not in self._fonts:
      self._fonts[size] = ImageFont.load_default(size=size)
    return self._fonts[size]

  def process(self, item):
    record = item.record
    if record['detections'] or not self._only_with_detections:
      target = annotated_path(self._output_dir, item.source.relative_path)
      try:
        draw_detections(item.image, record['detections'], self._font)
        data, mime = encode(item.image, item.source.relative_path)
      except (OSError, ValueError) as e:
        yield dead_letters.failed(
            dead_letters.dead_letter(STAGE,
                                     failures.ANNOTATE_FAILED,
                                     f'{type(e).__name__}: {e}',
                                     site_id=item.source.site_id,
                                     source=item.source.uri,
                                     record=item.source.as_record()))
        return
      paths.write_bytes(target, data, mime)
      yield beam.pvalue.TaggedOutput(ANNOTATED, target)
    yield record


class AnnotateImages(beam.PTransform):
  """Detected -> :class:`AnnotatedOutputs`.

  Writes ``<output>/annotated/<relative path>-det.<ext>`` for every image, or
  with ``only_with_detections`` (``--classes``) only for images with at least
  one kept detection. Every image still yields its record.
  """

  def __init__(self, output_dir: str, *, only_with_detections: bool):
    super().__init__()
    self._output_dir = output_dir
    self._only_with_detections = only_with_detections

  def expand(self, detected):
    out = detected | 'DrawAndWrite' >> beam.ParDo(
        _AnnotateFn(self._output_dir, self._only_with_detections)).with_outputs(
            ANNOTATED, dead_letters.FAILED, main='records')
    return AnnotatedOutputs(out.records, out[ANNOTATED], out[dead_letters.FAILED])
