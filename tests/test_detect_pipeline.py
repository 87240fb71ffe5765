"""End-to-end runs of the detect_images CLI on local folders (real yolov3-tiny)."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import detect_helpers
from beam_jobs import detect_images

REPO = pathlib.Path(__file__).resolve().parents[1]


def _make_inputs(root: pathlib.Path) -> None:
  h = detect_helpers
  h.save(root / 'siteA' / 'coffee.jpg', h.coffee(), quality=95)
  h.truncated_jpeg(root / 'siteA' / 'truncated.jpg')
  (root / 'siteA' / 'notimage.jpg').write_bytes(b'\x00\x01 these bytes are not a picture')
  (root / 'siteA' / '.DS_Store').write_bytes(b'\0\0\0\1Bud1')
  h.save(root / 'siteB' / 'motorcycle.PNG', h.motorcycle())
  (root / 'siteB' / 'empty.jpeg').write_bytes(b'')
  h.png_header_only(root / 'siteB' / 'bomb.png', 9000, 9000)
  h.save(root / 'astronaut.jpeg', Image.fromarray(h.coffee()).resize((300, 200)))
  h.save(root / 'modes' / 'cmyk.jpg', Image.fromarray(h.coffee()).convert('CMYK'))
  h.save(root / 'modes' / 'palette.png', Image.fromarray(h.coffee()).convert('P'))
  h.save(root / 'modes' / 'grey16.png', Image.fromarray(
      (h.coffee()[..., 0].astype(np.uint16) * 257)))
  h.png_rgb16(root / 'modes' / 'rgb16.png', h.coffee()[::4, ::4].astype(np.uint16) * 257)
  h.save(root / 'modes' / 'one_pixel.png', Image.new('RGB', (1, 1), (200, 30, 30)))
  (root / 'readme.txt').write_text('not an image')


@pytest.fixture(scope='module')
def full_run(tmp_path_factory):
  """One run over good, bad, odd-mode and non-image files."""
  base = tmp_path_factory.mktemp('full')
  _make_inputs(base / 'images-input')
  output = base / 'out'
  detect_images.run([
      '--input',
      str(base / 'images-input'), '--output',
      str(output), '--batch_size', '4', '--max_failed_fraction=0.34'
  ] + detect_helpers.darknet_flags())
  return base / 'images-input', output


@pytest.mark.e2e
def test_every_image_is_accounted_for(full_run):
  _, output = full_run
  summary = json.loads((output / 'summary.json').read_text())
  assert summary['images_read'] == 12
  assert summary['images_ok'] == 8
  assert summary['failed'] == {'decode_failed': 2, 'empty_file': 1, 'image_too_large': 1}
  assert summary['images_read'] == summary['images_ok'] + summary['images_failed']
  assert summary['reconciled'] is True
  assert summary['ignored_files'] == 2
  assert summary['annotated'] == 8
  site_a = summary['sites']['siteA']
  assert (site_a['images_read'], site_a['images_ok'], site_a['images_failed']) == (3, 1, 2)
  assert site_a['detections'] >= 1
  site_b = summary['sites']['siteB']
  assert (site_b['images_read'], site_b['images_ok'], site_b['images_failed']) == (3, 1, 2)
  assert summary['sites']['modes']['images_ok'] == 5
  assert summary['sites']['default']['images_ok'] == 1
  assert summary['detections']['cup'] >= 1 and summary['detections']['motorbike'] == 1
  assert summary['outputs']['detections'][0].endswith('.jsonl')


@pytest.mark.e2e
def test_cup_and_motorbike_are_found_in_original_pixels(full_run):
  inputs, output = full_run
  lines = detect_helpers.by_image(detect_helpers.read_jsonl(output / 'detections'))
  assert len(lines) == 8
  coffee = lines['coffee.jpg']
  assert coffee['image'] == str(inputs / 'siteA' / 'coffee.jpg')
  assert (coffee['site_id'], coffee['width'], coffee['height']) == ('siteA', 600, 400)
  assert coffee['model'].endswith('yolov3-tiny.weights')
  cup = max((d for d in coffee['detections'] if d['label'] == 'cup'), key=lambda d: d['score'])
  assert cup['score'] > 0.5 and cup['class_id'] == 41
  assert detect_helpers.iou(cup['box'], detect_helpers.COFFEE_CUP_REGION) > 0.5
  bike = lines['motorcycle.PNG']
  assert (bike['width'], bike['height']) == (741, 500)
  assert [d['label'] for d in bike['detections']] == ['motorbike']
  assert bike['detections'][0]['score'] > 0.5
  x1, y1, x2, y2 = bike['detections'][0]['box']
  assert 0 <= x1 < x2 <= 741 and 0 <= y1 < y2 <= 500 and (x2 - x1) > 400


@pytest.mark.e2e
def test_bad_inputs_are_dead_letters_with_reasons(full_run):
  inputs, output = full_run
  letters = detect_helpers.by_image(detect_helpers.read_jsonl(output / 'errors'), key='source')
  assert {
      name: l['reason']
      for name, l in letters.items()
  } == {
      'truncated.jpg': 'decode_failed',
      'notimage.jpg': 'decode_failed',
      'empty.jpeg': 'empty_file',
      'bomb.png': 'image_too_large'
  }
  bomb = letters['bomb.png']
  assert bomb['stage'] == 'decode' and bomb['site_id'] == 'siteB'
  assert '9000x9000' in bomb['message'] and '--max_image_pixels' in bomb['message']
  assert bomb['record'] == {
      'image': str(inputs / 'siteB' / 'bomb.png'),
      'relative_path': 'siteB/bomb.png',
      'size_bytes': (inputs / 'siteB' / 'bomb.png').stat().st_size
  }


@pytest.mark.e2e
def test_odd_modes_and_tiny_images_are_converted_not_failed(full_run):
  _, output = full_run
  lines = detect_helpers.by_image(detect_helpers.read_jsonl(output / 'detections'))
  sizes = {
      name: (lines[name]['width'], lines[name]['height'])
      for name in ('cmyk.jpg', 'palette.png', 'grey16.png', 'rgb16.png', 'one_pixel.png')
  }
  assert sizes == {
      'cmyk.jpg': (600, 400),
      'palette.png': (600, 400),
      'grey16.png': (600, 400),
      'rgb16.png': (150, 100),
      'one_pixel.png': (1, 1)
  }
  assert lines['one_pixel.png']['detections'] == []
  assert any(d['label'] == 'cup' for d in lines['palette.png']['detections'])


@pytest.mark.e2e
def test_annotated_copies_have_the_input_size_and_show_the_boxes(full_run):
  inputs, output = full_run
  annotated = sorted(
      p.relative_to(output / 'annotated').as_posix() for p in (output / 'annotated').rglob('*')
      if p.is_file())
  assert annotated == [
      'astronaut-det.jpeg', 'modes/cmyk-det.jpg', 'modes/grey16-det.png', 'modes/one_pixel-det.png',
      'modes/palette-det.png', 'modes/rgb16-det.png', 'siteA/coffee-det.jpg',
      'siteB/motorcycle-det.PNG'
  ]
  original = np.asarray(Image.open(inputs / 'siteB' / 'motorcycle.PNG')).astype(int)
  drawn_image = Image.open(output / 'annotated' / 'siteB' / 'motorcycle-det.PNG')
  assert drawn_image.size == (741, 500) and drawn_image.format == 'PNG'
  drawn = np.asarray(drawn_image).astype(int)
  lines = detect_helpers.by_image(detect_helpers.read_jsonl(output / 'detections'))
  x1, y1, x2, y2 = (int(round(v)) for v in lines['motorcycle.PNG']['detections'][0]['box'])
  edge = slice(y1 + 40, y2 - 40), x1 + 1  # a stretch of the box's left edge
  assert np.abs(drawn[edge] - original[edge]).sum(axis=-1).mean() > 60
  inside = slice(y1 + 100, y2 - 100), slice(x1 + 100, x2 - 100)
  assert np.array_equal(drawn[inside], original[inside])  # lossless PNG: untouched inside
  coffee = Image.open(output / 'annotated' / 'siteA' / 'coffee-det.jpg')
  assert coffee.size == (600, 400) and coffee.format == 'JPEG'


@pytest.mark.e2e
def test_classes_keep_only_those_labels_and_annotate_only_matching_images(tmp_path):
  inputs = tmp_path / 'in'
  detect_helpers.save(inputs / 'coffee.jpg', detect_helpers.coffee())
  detect_helpers.save(inputs / 'bike.jpg', detect_helpers.motorcycle())
  detect_images.run(
      ['--input',
       str(inputs), '--output',
       str(tmp_path / 'out'), '--classes', 'cup, zebra'] + detect_helpers.darknet_flags())
  lines = detect_helpers.by_image(detect_helpers.read_jsonl(tmp_path / 'out' / 'detections'))
  assert set(lines) == {'coffee.jpg', 'bike.jpg'}  # every image keeps its line
  assert lines['bike.jpg']['detections'] == []
  assert {d['label'] for d in lines['coffee.jpg']['detections']} == {'cup'}
  assert [p.name for p in (tmp_path / 'out' / 'annotated').iterdir()] == ['coffee-det.jpg']
  summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
  assert summary['annotated'] == 1 and set(summary['detections']) == {'cup'}


@pytest.mark.e2e
def test_cli_module_runs_in_a_subprocess(tmp_path):
  inputs = tmp_path / 'in' / 'cam7'
  detect_helpers.save(inputs / 'coffee.jpg', detect_helpers.coffee())
  env = dict(os.environ, PYTHONPATH=str(REPO))
  proc = subprocess.run([
      sys.executable, '-m', 'beam_jobs.detect_images', '--input',
      str(tmp_path / 'in'), '--output',
      str(tmp_path / 'out'), '--runner', 'DirectRunner'
  ] + detect_helpers.darknet_flags(),
                        cwd=REPO,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=300,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f'Outputs are under {tmp_path / "out"}' in proc.stdout
  (line, ) = detect_helpers.read_jsonl(tmp_path / 'out' / 'detections')
  assert line['site_id'] == 'cam7' and line['detections'][0]['label'] == 'cup'
  assert (tmp_path / 'out' / 'annotated' / 'cam7' / 'coffee-det.jpg').is_file()
