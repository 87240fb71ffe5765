"""Decoding (bad files, modes, EXIF), letterboxing and mapping boxes back."""
import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image

import detect_helpers
from models.detector import yolo_handler
from transforms.detection import letterbox
from transforms import dead_letters
from transforms.detection.image_decode import DecodedImage
from transforms.detection.image_decode import DecodeImageFn
from common.failures import RecordFailure
from transforms.detection.image_decode import decode
from transforms.detection.image_files import ImageFile

LIMIT = 64_000_000


def _bytes(image: Image.Image, fmt: str, **kwargs) -> bytes:
  out = io.BytesIO()
  image.save(out, fmt, **kwargs)
  return out.getvalue()


def test_letterbox_geometry_and_inverse():
  image = Image.fromarray(detect_helpers.coffee())  # 600 x 400
  boxed = letterbox.letterbox(image, 416, yolo_handler.DARKNET_PAD)
  g = boxed.geometry
  assert boxed.array.shape == (416, 416, 3) and boxed.array.dtype == np.uint8
  assert (g.width, g.height, g.pad_x, g.pad_y) == (600, 400, 0, 69)
  assert g.scale_x == pytest.approx(416 / 600) and g.scale_y == pytest.approx(277 / 400)
  assert (boxed.array[:69] == 127).all() and (boxed.array[69 + 277:] == 127).all()
  assert not (boxed.array[69:69 + 277] == 127).all()
  content = np.array([[0, 69, 416, 69 + 277]])
  np.testing.assert_allclose(g.to_original(content), [[0, 0, 600, 400]])
  outside = np.array([[-20, 0, 500, 416]])  # beyond the picture: clipped
  np.testing.assert_allclose(g.to_original(outside), [[0, 0, 600, 400]])


def test_exif_orientation_is_applied():
  stored = np.zeros((40, 60, 3), np.uint8)
  stored[:10, :10] = (255, 0, 0)  # red in the stored top-left corner
  exif = Image.Exif()
  exif[0x0112] = 6  # display rotated 90 degrees clockwise
  data = _bytes(Image.fromarray(stored), 'JPEG', exif=exif.tobytes(), quality=95)
  image = decode(data, max_pixels=LIMIT)
  assert image.size == (40, 60)  # width and height swapped
  pixels = np.asarray(image)
  assert pixels[:10, -10:, 0].mean() > 200 and pixels[:10, -10:, 1].mean() < 60
  assert pixels[-10:, :10, 0].mean() < 60


@pytest.mark.parametrize(
    'make, expected',
    [
        (lambda: Image.fromarray(np.full((20, 30), 40000, np.uint16)), (155, 155, 155)),
        (lambda: Image.new('CMYK', (30, 20), (0, 255, 255, 0)), (255, 0, 0)),
        (lambda: Image.new('RGB', (30, 20), (0, 0, 255)).convert('P'), (0, 0, 255)),
        (lambda: Image.new('LA', (30, 20), (90, 255)), (90, 90, 90)),
        (lambda: Image.new('RGBA', (30, 20), (10, 200, 30, 0)), (255, 255, 255)),  # transparent
        (lambda: Image.new('1', (30, 20), 1), (255, 255, 255)),
        (lambda: Image.new('L', (30, 20), 77), (77, 77, 77)),
    ],
    ids=['grey16', 'cmyk', 'palette', 'grey-alpha', 'rgba', 'bilevel', 'grey'])
def test_any_mode_becomes_rgb(make, expected):
  source = make()
  fmt = 'JPEG' if source.mode == 'CMYK' else 'PNG'
  image = decode(_bytes(source, fmt), max_pixels=LIMIT)
  assert image.mode == 'RGB' and image.size == (30, 20)
  np.testing.assert_allclose(np.asarray(image)[10, 15], expected, atol=3)


def test_palette_png_with_transparency_and_16bit_rgb_png(tmp_path):
  palette = Image.new('P', (8, 8), 0)
  palette.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
  palette.putpixel((0, 0), 1)
  image = decode(_bytes(palette, 'PNG', transparency=0), max_pixels=LIMIT)
  assert tuple(np.asarray(image)[0, 0]) == (200, 10, 10)
  assert tuple(np.asarray(image)[4, 4]) == (255, 255, 255)  # transparent index -> white
  rgb16 = np.zeros((6, 9, 3), np.uint16)
  rgb16[..., 1] = 65535
  rgb16[..., 2] = 32768
  path = detect_helpers.png_rgb16(tmp_path / 'deep.png', rgb16)
  image = decode(path.read_bytes(), max_pixels=LIMIT)
  assert image.size == (9, 6)
  np.testing.assert_allclose(np.asarray(image)[3, 4], (0, 255, 128), atol=1)


def test_one_pixel_image_decodes_and_letterboxes():
  image = decode(_bytes(Image.new('RGB', (1, 1), (9, 99, 199)), 'PNG'), max_pixels=LIMIT)
  boxed = letterbox.letterbox(image, 64, 114)
  assert boxed.array.shape == (64, 64, 3)
  assert tuple(boxed.array[32, 32]) == (9, 99, 199)
  np.testing.assert_allclose(boxed.geometry.to_original([[0, 0, 64, 64]]), [[0, 0, 1, 1]])


@pytest.mark.parametrize(
    'make_data, reason', [
        (lambda tmp: detect_helpers.truncated_jpeg(tmp / 't.jpg').read_bytes(), 'decode_failed'),
        (lambda tmp: b'<html>not a picture</html>', 'decode_failed'),
        (lambda tmp: b'GIF89a' + b'\0' * 40, 'decode_failed'),
        (lambda tmp: b'', 'empty_file'),
        (lambda tmp: detect_helpers.png_header_only(tmp / 'b.png', 100_000, 100_000).read_bytes(),
         'image_too_large'),
    ],
    ids=['truncated-jpeg', 'text-named-jpg', 'gif-named-jpg', 'zero-bytes', 'bomb-header'])
def test_bad_files_are_classified(tmp_path, make_data, reason):
  with pytest.raises(RecordFailure) as caught:
    decode(make_data(tmp_path), max_pixels=LIMIT)
  assert caught.value.reason == reason


def test_pixel_limit_is_checked_from_the_header_without_decoding(tmp_path):
  data = detect_helpers.png_header_only(tmp_path / 'bomb.png', 9_000, 9_000).read_bytes()
  tracemalloc.start()
  try:
    with pytest.raises(RecordFailure, match='81000000 pixels exceeds --max_image_pixels'):
      decode(data, max_pixels=LIMIT)
    _, peak = tracemalloc.get_traced_memory()
  finally:
    tracemalloc.stop()
  assert peak < 5_000_000  # decoding would need 243 MB
  real = _bytes(Image.fromarray(detect_helpers.coffee()), 'JPEG')
  with pytest.raises(RecordFailure) as caught:
    decode(real, max_pixels=600 * 400 - 1)
  assert caught.value.reason == 'image_too_large'
  assert decode(real, max_pixels=600 * 400).size == (600, 400)


def test_decode_fn_outputs_image_or_dead_letter(tmp_path):
  good = detect_helpers.save(tmp_path / 'site1' / 'a.png', detect_helpers.coffee())
  bad = tmp_path / 'site1' / 'b.jpg'
  bad.write_bytes(b'nope')
  fn = DecodeImageFn(image_size=416, pad_value=127, max_pixels=LIMIT)
  (ok, ) = fn.process(ImageFile(str(good), 'site1/a.png', 'site1', good.stat().st_size))
  assert isinstance(ok, DecodedImage)
  assert ok.image.size == (600, 400) and ok.letterboxed.array.shape == (416, 416, 3)
  (out, ) = fn.process(ImageFile(str(bad), 'site1/b.jpg', 'site1', 4))
  assert out.tag == dead_letters.FAILED
  assert out.value['reason'] == 'decode_failed' and out.value['stage'] == 'decode'
  assert out.value['source'] == str(bad) and out.value['site_id'] == 'site1'
  assert out.value['record']['relative_path'] == 'site1/b.jpg'
  (gone, ) = fn.process(ImageFile(str(tmp_path / 'gone.jpg'), 'gone.jpg', 'default', 10))
  assert gone.value['reason'] == 'not_found'


def test_files_far_too_big_for_the_pixel_limit_are_not_read(tmp_path):
  fn = DecodeImageFn(image_size=416, pad_value=127, max_pixels=1000)
  missing = str(tmp_path / 'never-read.jpg')  # reading it would give not_found
  (out, ) = fn.process(ImageFile(missing, 'never-read.jpg', 'default', 2_000_000))
  assert out.value['reason'] == 'image_too_large' and 'not read' in out.value['message']
