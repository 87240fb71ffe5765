"""A gs:// run against the local GCS server: model, inputs, outputs and moves all in a bucket."""
import io
import json
import os

import pytest
from PIL import Image

import detect_helpers
from beam_jobs import detect_images
from conftest import upload_tree
from common import paths


@pytest.mark.e2e
@pytest.mark.gcs
def test_gs_run_reads_model_and_images_writes_outputs_and_moves_inputs(gcs_bucket, tmp_path):
  local = tmp_path / 'bucket'
  detect_helpers.save(local / 'images-input' / 'siteA' / 'coffee.jpg', detect_helpers.coffee())
  detect_helpers.save(local / 'images-input' / 'siteB' / 'bike.PNG',
                      detect_helpers.motorcycle()[::2, ::2])
  (local / 'images-input' / 'siteB' / 'bad.jpg').write_bytes(b'not a jpeg')
  upload_tree(local, gcs_bucket)
  models = paths.join(gcs_bucket, 'models')
  for name in ('yolov3-tiny.cfg', 'yolov3-tiny.weights', 'coco.names'):
    with open(os.path.join(detect_helpers.model_dir(), name), 'rb') as f:
      paths.write_bytes(paths.join(models, name), f.read())
  output = f'{gcs_bucket}/runs/run-1'
  detect_images.run([
      '--input', f'{gcs_bucket}/images-input', '--output', output, '--move_inputs_to',
      f'{gcs_bucket}/processed', '--max_failed_fraction=1'
  ] + detect_helpers.darknet_flags(models))

  summary = json.loads(paths.read_bytes(f'{output}/summary.json'))
  assert (summary['images_read'], summary['images_ok'], summary['failed']) == (3, 2, {
      'decode_failed': 1
  })
  assert summary['reconciled']
  lines = [
      json.loads(l) for name in summary['outputs']['detections']
      for l in paths.read_bytes(name).decode().splitlines()
  ]
  by_name = {l['image'].rsplit('/', 1)[1]: l for l in lines}
  assert by_name['coffee.jpg']['image'] == f'{gcs_bucket}/images-input/siteA/coffee.jpg'
  assert by_name['coffee.jpg']['model'] == f'{models}/yolov3-tiny.weights'
  cup = by_name['coffee.jpg']['detections'][0]
  assert cup['label'] == 'cup' and cup['score'] > 0.5
  assert detect_helpers.iou(cup['box'], detect_helpers.COFFEE_CUP_REGION) > 0.5
  annotated = Image.open(io.BytesIO(paths.read_bytes(f'{output}/annotated/siteB/bike-det.PNG')))
  assert annotated.size == (371, 250) and annotated.format == 'PNG'

  remaining = sorted(m.path for m in paths.match(f'{gcs_bucket}/images-input/**'))
  assert remaining == [f'{gcs_bucket}/images-input/siteB/bad.jpg']
  moved = sorted(m.path for m in paths.match(f'{gcs_bucket}/processed/**'))
  assert moved == [
      f'{gcs_bucket}/processed/siteA/coffee.jpg', f'{gcs_bucket}/processed/siteB/bike.PNG'
  ]
  assert paths.read_bytes(moved[0]) == (local / 'images-input' / 'siteA' /
                                        'coffee.jpg').read_bytes()


@pytest.mark.gcs
def test_a_gs_object_gone_since_listing_is_a_not_found_dead_letter(gcs_bucket):
  from transforms.detection.image_decode import DecodeImageFn  # pylint: disable=import-outside-toplevel
  from transforms.detection.image_files import ImageFile  # pylint: disable=import-outside-toplevel
  fn = DecodeImageFn(image_size=416, pad_value=127, max_pixels=10**7)
  (out, ) = fn.process(ImageFile(f'{gcs_bucket}/in/gone.jpg', 'gone.jpg', 'default', 100))
  assert out.value['reason'] == 'not_found' and out.value['source'] == f'{gcs_bucket}/in/gone.jpg'
