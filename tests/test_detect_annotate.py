"""Drawing boxes and labels with Pillow's built-in font."""
import io

import numpy as np
import pytest
from PIL import Image
from PIL import ImageFont

from transforms.detection import annotate
from transforms.detection.image_files import annotated_path

DET = {'label': 'zebra', 'class_id': 22, 'score': 0.87, 'box': [100.0, 80.0, 300.0, 260.0]}


def _fonts(size):
  return ImageFont.load_default(size=size)


def test_box_and_label_are_drawn_where_the_box_is():
  image = Image.new('RGB', (600, 400), (128, 128, 128))
  annotate.draw_detections(image, [DET], _fonts)
  pixels = np.asarray(image).astype(int)
  color = annotate.color_for(22)
  assert image.size == (600, 400)
  assert tuple(pixels[170, 100]) == color  # left edge
  assert tuple(pixels[259, 200]) == color  # bottom edge
  assert tuple(pixels[170, 200]) == (128, 128, 128)  # inside the box: untouched
  assert tuple(pixels[390, 590]) == (128, 128, 128)  # far away: untouched
  label = pixels[64:80, 100:150]  # label strip just above the box
  assert (label != 128).any(axis=2).mean() > 0.5
  assert len({tuple(p) for p in label.reshape(-1, 3)}) > 2  # background and text


def test_label_goes_inside_a_box_touching_the_top():
  image = Image.new('RGB', (200, 200), (0, 0, 0))
  annotate.draw_detections(image, [dict(DET, box=[10.0, 0.0, 150.0, 150.0])], _fonts)
  assert (np.asarray(image)[2:8, 20:60] != 0).any()


def test_lines_and_font_scale_with_image_size():
  small_line, small_font = annotate.style_for(320, 240)
  big_line, big_font = annotate.style_for(8000, 6000)
  assert big_line >= 10 * small_line and big_font >= 10 * small_font
  assert annotate.style_for(1, 1) == (1, 8)
  tiny = Image.new('RGB', (1, 1))
  annotate.draw_detections(tiny, [dict(DET, box=[0.0, 0.0, 1.0, 1.0])], _fonts)
  assert tiny.size == (1, 1)


@pytest.mark.parametrize('name, fmt, mime', [('a/x.PNG', 'PNG', 'image/png'),
                                             ('x.jpeg', 'JPEG', 'image/jpeg'),
                                             ('x.JPG', 'JPEG', 'image/jpeg')])
def test_encoding_follows_the_extension(name, fmt, mime):
  data, got_mime = annotate.encode(Image.new('RGB', (7, 5)), name)
  assert got_mime == mime and Image.open(io.BytesIO(data)).format == fmt


def test_annotated_names_keep_the_relative_path_and_extension():
  assert annotated_path('/out', 'site1/zebra1.jpg') == '/out/annotated/site1/zebra1-det.jpg'
  assert annotated_path('gs://b/o', 'a.b/IMG.PNG') == 'gs://b/o/annotated/a.b/IMG-det.PNG'
