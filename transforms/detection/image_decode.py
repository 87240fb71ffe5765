"""Reading and decoding images: size guard, EXIF orientation, any mode to RGB.

Each image is decoded once. The element that leaves the decoder carries the
full RGB image (for the annotated copy) and the letterboxed ``uint8`` model
input; both stay inside the fused decode -> inference -> annotate stage.
"""
import dataclasses
import io
import apache_beam as beam
from google.api_core import exceptions as gcp_exceptions
import numpy as np
from PIL import Image
from PIL import ImageOps
from PIL import UnidentifiedImageError

from transforms.detection import letterbox
from common import failures
from common import paths
from transforms import dead_letters
from transforms.detection.image_files import ImageFile

STAGE = failures.DECODE
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
"""Width x height above which an image is refused unread (64 MP ~ 192 MB as RGB)."""
FORMATS = ('JPEG', 'PNG')
"""Decoders Pillow may try: what the accepted extensions hold (the JPEG one
also opens the MPO files some phones write)."""
MAX_BYTES_PER_PIXEL = 8
"""Files bigger than this many bytes per allowed pixel (+1 MiB of metadata)
are refused unread: no JPEG or PNG within the pixel limit is that large."""
_METADATA_ALLOWANCE_BYTES = 1 << 20
_BACKGROUND = (255, 255, 255)


def _problem(reason: str, message: str) -> failures.RecordFailure:
  return failures.RecordFailure(STAGE, reason, message)


@dataclasses.dataclass
class DecodedImage:
  """An image ready for the model.

  Attributes:
    source: the listed file.
    image: the full-size RGB image, EXIF orientation applied (annotation
      draws on it).
    letterboxed: the model input and its geometry.
  """
  source: ImageFile
  image: Image.Image
  letterboxed: letterbox.Letterboxed


def open_checked(data: bytes, max_pixels: int) -> Image.Image:
  """Opens ``data`` reading only the header, and refuses oversized images.

  Raises:
    RecordFailure: ``empty_file``, ``decode_failed`` or ``image_too_large``.
  """
  if not data:
    raise _problem(failures.EMPTY_FILE, 'the file is empty (0 bytes)')
  try:
    image = Image.open(io.BytesIO(data), formats=FORMATS)
  except Image.DecompressionBombError as e:
    raise _problem(failures.IMAGE_TOO_LARGE, f'refused by Pillow\'s own limit: {e}') from e
  except UnidentifiedImageError as e:
    raise _problem(failures.DECODE_FAILED, f'not a JPEG or PNG image ({len(data)} bytes)') from e
  except (OSError, SyntaxError, ValueError) as e:
    raise _problem(failures.DECODE_FAILED, f'unreadable image header: {e}') from e
  width, height = image.size
  if width * height > max_pixels:
    raise _problem(
        failures.IMAGE_TOO_LARGE,
        f'{width}x{height} = {width * height} pixels exceeds --max_image_pixels={max_pixels}')
  return image


def to_rgb(image: Image.Image) -> Image.Image:
  """Any Pillow mode as 8-bit RGB: 16/32-bit grey scaled, alpha over white."""
  mode = image.mode
  if mode == 'RGB':
    return image
  if mode.startswith('I') or mode == 'F':
    values = np.asarray(image)
    if mode.startswith('I;16') or (mode == 'I' and values.max(initial=0) > 255):
      grey = (np.clip(values, 0, 65535) >> 8).astype(np.uint8)
    else:
      grey = np.clip(values, 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(grey[..., None], 3, axis=2), 'RGB')
  if mode == 'P':
    image = image.convert('RGBA' if 'transparency' in image.info else 'RGB')
  elif mode in ('LA', 'La', 'PA', 'RGBa'):
    image = image.convert('RGBA')
  if image.mode == 'RGBA':
    background = Image.new('RGB', image.size, _BACKGROUND)
    background.paste(image, mask=image.getchannel('A'))
    return background
  return image.convert('RGB')


def decode(data: bytes, *, max_pixels: int) -> Image.Image:
  """Bytes -> oriented RGB image. Raises :class:`~common.failures.RecordFailure`."""
  image = open_checked(data, max_pixels)
  try:
    image.load()
  except (OSError, SyntaxError, ValueError) as e:
    raise _problem(failures.DECODE_FAILED, f'corrupt or truncated image data: {e}') from e
  try:
    ImageOps.exif_transpose(image, in_place=True)
  except (OSError, SyntaxError, ValueError, KeyError, TypeError):
    pass  # unreadable EXIF: keep the stored orientation rather than lose the image
  try:
    return to_rgb(image)
  except (OSError, ValueError) as e:
    raise _problem(failures.DECODE_FAILED, f'cannot convert mode {image.mode} to RGB: {e}') from e


class DecodeImageFn(beam.DoFn):
  """ImageFile -> DecodedImage; bad images -> dead letters on ``FAILED``.

  Error policy: empty, corrupt, non-image and oversized files are permanent
  (dead letter with reason ``empty_file``, ``decode_failed`` or
  ``image_too_large``; the size check reads only the header, and a file far
  too big for the pixel limit is not read at all). A file that
  vanished since listing is ``not_found``. Other read errors (GCS 5xx,
  timeouts) raise so the runner retries.
  """

  def __init__(self, *, image_size: int, pad_value: int, max_pixels: int):
    self._image_size = image_size
    self._pad_value = pad_value
    self._max_pixels = max_pixels

  def process(self, item: ImageFile):
    if item.size_bytes > self._max_pixels * MAX_BYTES_PER_PIXEL + _METADATA_ALLOWANCE_BYTES:
      yield self._failed(
          item, failures.IMAGE_TOO_LARGE,
          f'the file has {item.size_bytes} bytes, more than any image within '
          f'--max_image_pixels={self._max_pixels} needs; not read')
      return
    try:
      data = b'' if item.size_bytes == 0 else paths.read_bytes(item.uri)
      image = decode(data, max_pixels=self._max_pixels)
    except failures.RecordFailure as e:
      yield self._failed(item, e.reason, str(e))
      return
    except (FileNotFoundError, gcp_exceptions.NotFound) as e:
      yield self._failed(item, failures.NOT_FOUND, f'the file is gone since it was listed: {e}')
      return
    boxed = letterbox.letterbox(image, self._image_size, self._pad_value)
    yield DecodedImage(item, image, boxed)

  @staticmethod
  def _failed(item: ImageFile, reason: str, message: str) -> beam.pvalue.TaggedOutput:
    return dead_letters.failed(
        dead_letters.dead_letter(STAGE,
                                 reason,
                                 message,
                                 site_id=item.site_id,
                                 source=item.uri,
                                 record=item.as_record()))
