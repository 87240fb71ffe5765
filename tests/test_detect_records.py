"""Detection records, --classes filtering, inference dead letters and the summary's arithmetic."""
from apache_beam.ml.inference.base import PredictionResult
from PIL import Image

from transforms.detection import letterbox
from models.detector.yolo_handler import InferenceError
from transforms import dead_letters
from transforms.detection import objects as detection
from transforms.detection.image_decode import DecodedImage
from transforms.detection.image_files import ImageFile
from transforms.detection.image_files import resolve_input
from transforms.detection.image_files import site_of

SOURCE = ImageFile('gs://b/in/cam1/z.jpg', 'cam1/z.jpg', 'cam1', 1234)
DETS = [{
    'label': 'zebra',
    'class_id': 22,
    'score': 0.9,
    'box': [1.0, 2.0, 3.0, 4.0]
}, {
    'label': 'person',
    'class_id': 0,
    'score': 0.5,
    'box': [5.0, 6.0, 7.0, 8.0]
}]


def _result(inference):
  image = Image.new('RGB', (30, 20))
  boxed = letterbox.letterbox(image, 32, 114)
  return PredictionResult(DecodedImage(SOURCE, image, boxed), inference, 'm.weights')


def test_record_follows_the_contract():
  fn = detection._ToDetectedFn('gs://b/m.weights', None)  # pylint: disable=protected-access
  (out, ) = fn.process(_result(DETS))
  assert out.record == {
      'image': 'gs://b/in/cam1/z.jpg',
      'site_id': 'cam1',
      'width': 30,
      'height': 20,
      'model': 'gs://b/m.weights',
      'detections': DETS
  }
  assert out.image.size == (30, 20) and out.source is SOURCE


def test_classes_filter_keeps_the_line_and_only_those_labels():
  fn = detection._ToDetectedFn('m', ['zebra'])  # pylint: disable=protected-access
  (out, ) = fn.process(_result(DETS))
  assert [d['label'] for d in out.record['detections']] == ['zebra']
  (none, ) = detection._ToDetectedFn('m', ['cat']).process(_result(DETS))  # pylint: disable=protected-access
  assert none.record['detections'] == []


def test_inference_error_becomes_a_dead_letter():
  fn = detection._ToDetectedFn('m', None)  # pylint: disable=protected-access
  (out, ) = fn.process(_result(InferenceError('RuntimeError: boom')))
  assert out.tag == dead_letters.FAILED
  assert out.value == {
      'stage': 'predict',
      'reason': 'inference_failed',
      'message': 'RuntimeError: boom',
      'site_id': 'cam1',
      'source': 'gs://b/in/cam1/z.jpg',
      'record': SOURCE.as_record()
  }


def test_summary_totals_and_reconciliation():
  summary = detection.finalize_summary({
      'images_read': 5,
      'images_ok': 3,
      'failed': {
          'decode_failed': 1,
          'empty_file': 1
      },
      'detections': {
          'zebra': 4,
          'person': 1
      },
      'sites': {
          'cam1': {
              'images_read': 5
          }
      }
  })
  assert summary['images_failed'] == 2 and summary['detections_total'] == 5
  assert summary['reconciled'] is True
  assert summary['sites']['cam1'] == {
      'images_read': 5,
      'images_ok': 0,
      'images_failed': 0,
      'detections': 0
  }
  assert (summary['annotated'], summary['ignored_files']) == (0, 0)
  assert detection.finalize_summary({'images_read': 2, 'images_ok': 1})['reconciled'] is False
  empty = detection.finalize_summary({})
  assert empty['reconciled'] is True and empty['failed'] == {}


def test_stats_per_record_and_failure():
  stats = dict(detection.record_stats({'site_id': 's', 'detections': DETS + DETS[:1]}))
  assert stats[('detections', 'zebra')] == 1  # one pair per detection; summed later
  assert list(detection.record_stats({
      'site_id': 's',
      'detections': DETS + DETS[:1]
  })).count((('detections', 'zebra'), 1)) == 2
  assert stats[('sites', 's', 'detections')] == 3
  assert dict(detection.failure_stats({
      'reason': 'empty_file',
      'site_id': None
  })) == {
      ('failed', 'empty_file'): 1,
      ('sites', 'unknown', 'images_failed'): 1
  }


def test_sites_and_input_forms(tmp_path):
  assert site_of('cam1/2024/a.jpg') == 'cam1' and site_of('a.jpg') == 'default'
  (tmp_path / 'cam1').mkdir()
  (tmp_path / 'cam1' / 'a.jpg').write_bytes(b'x')
  assert resolve_input(str(tmp_path)) == (f'{tmp_path}/**', str(tmp_path))
  assert resolve_input(str(tmp_path / 'cam1' / 'a.jpg')) == (str(tmp_path / 'cam1' / 'a.jpg'),
                                                             str(tmp_path / 'cam1'))
  assert resolve_input(f'{tmp_path}/ca') == (f'{tmp_path}/ca**', str(tmp_path))
  assert resolve_input(f'{tmp_path}/**/*.JPG') == (f'{tmp_path}/**/*.JPG', str(tmp_path))
  assert resolve_input('gs://b/in/**/*.jpg') == ('gs://b/in/**/*.jpg', 'gs://b/in')
  assert resolve_input('gs://b/in/') == ('gs://b/in/**', 'gs://b/in')


def test_detections_with_non_finite_numbers_are_a_dead_letter_not_an_invalid_line():
  fn = detection._ToDetectedFn('m', None)  # pylint: disable=protected-access
  nan_box = [dict(DETS[0]), {**DETS[1], 'box': [5.0, float('nan'), 7.0, float('inf')]}]
  (out, ) = fn.process(_result(nan_box))
  assert out.tag == dead_letters.FAILED
  assert (out.value['reason'], out.value['site_id']) == ('non_finite_output', 'cam1')
  assert 'person' in out.value['message'] and out.value['record'] == SOURCE.as_record()
  (nan_score, ) = fn.process(_result([{**DETS[0], 'score': float('nan')}]))
  assert nan_score.value['reason'] == 'non_finite_output'
  # Filtered out by --classes: the image keeps its (finite) record.
  (kept, ) = detection._ToDetectedFn('m', ['zebra']).process(  # pylint: disable=protected-access
      _result(nan_box))
  assert kept.record['detections'] == [DETS[0]]
