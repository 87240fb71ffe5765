"""Image detection composites: decode -> RunInference(YOLO) -> detection records.

Usable from other pipelines::

  listed = p | ListImages(pattern, root)
  result = listed.images | DetectObjects(handler, classes=['zebra'])
  result.ok      # Detected (record = the detections line, image = RGB copy)
  result.failed  # dead letters

The detections line (docs/contracts.md)::

  {"image", "site_id", "width", "height", "model",
   "detections": [{"label", "class_id", "score", "box": [x1, y1, x2, y2]}]}

with boxes in original-image pixels (after EXIF orientation). Lines are
strict JSON: an image whose detections hold a non-finite score or box
coordinate (a model producing NaN or infinities) is a ``non_finite_output``
dead letter instead.
"""
import dataclasses
import math
from typing import Any, Dict, Iterable, NamedTuple, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.base import RunInference
from PIL import Image

from models.detector.yolo_handler import InferenceError
from models.detector.yolo_handler import YoloModelHandler
from common import failures
from common import paths
from transforms import dead_letters
from transforms import json_lines
from transforms.detection.image_decode import DecodeImageFn
from transforms.detection.image_decode import DEFAULT_MAX_IMAGE_PIXELS
from transforms.detection.image_files import ImageFile

STAGE = failures.PREDICT


@dataclasses.dataclass
class Detected:
  """A processed image: its detections line and the RGB image to annotate."""
  source: ImageFile
  image: Image.Image
  record: Dict[str, Any]


class DetectionResult(NamedTuple):
  ok: beam.PCollection  # Detected
  failed: beam.PCollection  # dead letters


class _ToDetectedFn(beam.DoFn):
  """PredictionResult(DecodedImage, detections) -> Detected.

  Keeps only ``classes`` when given (every image still gets its record).
  Error policy: an ``InferenceError`` from the handler becomes a dead letter
  with reason ``inference_failed``, detections with a non-finite score or
  box one with reason ``non_finite_output``; nothing raises.
  """

  def __init__(self, model_name: str, classes: Optional[Sequence[str]]):
    self._model_name = model_name
    self._classes = frozenset(classes) if classes else None

  def process(self, result: PredictionResult):
    decoded = result.example
    source = decoded.source
    if isinstance(result.inference, InferenceError):
      yield dead_letters.failed(
          dead_letters.dead_letter(STAGE,
                                   failures.INFERENCE_FAILED,
                                   result.inference.message,
                                   site_id=source.site_id,
                                   source=source.uri,
                                   record=source.as_record()))
      return
    detections = [
        d for d in result.inference if self._classes is None or d['label'] in self._classes
    ]
    bad = [d for d in detections if not _finite_detection(d)]
    if bad:
      yield dead_letters.failed(
          dead_letters.dead_letter(
              STAGE,
              failures.NON_FINITE_OUTPUT,
              f'{len(bad)} of {len(detections)} detections have a non-finite score or box, '
              f'first: label {bad[0].get("label")!r} score {bad[0].get("score")} '
              f'box {bad[0].get("box")}',
              site_id=source.site_id,
              source=source.uri,
              record=source.as_record()))
      return
    geometry = decoded.letterboxed.geometry
    record = {
        'image': source.uri,
        'site_id': source.site_id,
        'width': geometry.width,
        'height': geometry.height,
        'model': self._model_name,
        'detections': detections,
    }
    yield Detected(source, decoded.image, record)


def _finite_detection(detection: Dict[str, Any]) -> bool:
  numbers = [detection['score'], *detection['box']]
  return all(math.isfinite(v) for v in numbers)


class DetectObjects(beam.PTransform):
  """ImageFile -> :class:`DetectionResult`.

  Steps: ``Decode`` (read, size guard, EXIF, RGB, letterbox), ``RunInference``
  (batched YOLO forward + NMS in the handler), ``ToRecord``.
  """

  def __init__(self,
               handler: YoloModelHandler,
               *,
               classes: Optional[Sequence[str]] = None,
               max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS):
    super().__init__()
    self._handler = handler
    self._classes = list(classes) if classes else None
    self._max_image_pixels = max_image_pixels

  def expand(self, images):
    decoded = images | 'Decode' >> beam.ParDo(
        DecodeImageFn(image_size=self._handler.image_size,
                      pad_value=self._handler.pad_value,
                      max_pixels=self._max_image_pixels)).with_outputs(dead_letters.FAILED,
                                                                       main='ok')
    predictions = decoded.ok | 'RunInference' >> RunInference(self._handler)
    detected = predictions | 'ToRecord' >> beam.ParDo(
        _ToDetectedFn(self._handler.model_uri, self._classes)).with_outputs(dead_letters.FAILED,
                                                                            main='ok')
    failed = ((decoded[dead_letters.FAILED], detected[dead_letters.FAILED])
              | 'Failed' >> beam.Flatten())
    return DetectionResult(detected.ok, failed)


class WriteDetections(beam.PTransform):
  """Detection record dicts -> ``<output>/detections/detections-*.jsonl``; returns file names."""

  def __init__(self, output_dir: str):
    super().__init__()
    self._prefix = paths.join(output_dir, 'detections', 'detections')

  def expand(self, records):
    return (records
            | 'Encode' >> beam.Map(json_lines.dumps)
            | 'Write' >> beam.io.WriteToText(self._prefix, file_name_suffix='.jsonl'))


# Summary stats: (key path, amount) pairs for transforms.run_summary.

Stat = Tuple[Tuple[str, ...], int]


def image_stats(image: ImageFile) -> Iterable[Stat]:
  yield ('images_read', ), 1
  yield ('sites', image.site_id, 'images_read'), 1


def ignored_stats(unused_path: str) -> Iterable[Stat]:
  yield ('ignored_files', ), 1


def record_stats(record: dict) -> Iterable[Stat]:
  site = record['site_id']
  yield ('images_ok', ), 1
  yield ('sites', site, 'images_ok'), 1
  yield ('sites', site, 'detections'), len(record['detections'])
  for det in record['detections']:
    yield ('detections', det['label']), 1


def failure_stats(letter: dict) -> Iterable[Stat]:
  yield ('failed', letter['reason']), 1
  yield ('sites', letter['site_id'] or 'unknown', 'images_failed'), 1


def annotated_stats(unused_path: str) -> Iterable[Stat]:
  yield ('annotated', ), 1


def finalize_summary(summary: Dict[str, Any]) -> Dict[str, Any]:
  """Fills zeros, totals, and checks ``images_read == images_ok + images_failed``."""
  for key in ('images_read', 'images_ok', 'annotated', 'ignored_files'):
    summary.setdefault(key, 0)
  for key in ('failed', 'detections', 'sites'):
    summary.setdefault(key, {})
  summary['images_failed'] = sum(summary['failed'].values())
  summary['detections_total'] = sum(summary['detections'].values())
  for site in summary['sites'].values():
    for key in ('images_read', 'images_ok', 'images_failed', 'detections'):
      site.setdefault(key, 0)
  summary['reconciled'] = (summary['images_read'] == summary['images_ok'] +
                           summary['images_failed'])
  return summary
