"""Beam ``ModelHandler`` for YOLO detectors (Darknet cfg+weights or TorchScript).

The handler takes letterboxed images (any element with a ``letterboxed``
attribute holding a :class:`transforms.detection.letterbox.Letterboxed`) and returns one
``PredictionResult`` per element whose ``inference`` is either a list of
detections in original-image pixels::

  [{"label": "cup", "class_id": 41, "score": 0.59, "box": [x1, y1, x2, y2]}]

or an :class:`InferenceError` for an element the model could not process
(the caller dead-letters it; the rest of the batch is unaffected).

Placement: on CPU every worker process loads its own copy (Beam shares it
between the process's threads); with ``device='cuda'`` one copy per machine
is shared across processes (Dataflow starts one SDK process per vCPU, and
each would otherwise put a copy on the GPU).
"""
import dataclasses
import logging
import time
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from apache_beam.ml.inference.base import ModelHandler
from apache_beam.ml.inference.base import PredictionResult

from models.detector import darknet
from models.detector import darknet_cfg
from models.detector import nms
from models.detector import ultralytics_torchscript
from common import paths

_LOGGER = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 8
DEFAULT_SCORE_THRESHOLD = 0.25
DEFAULT_IOU_THRESHOLD = 0.45
DEFAULT_MAX_DETECTIONS = 100
DEVICES = ('cpu', 'cuda')
DARKNET_PAD = 127
"""Darknet fills the letterbox with 0.5 grey."""
ULTRALYTICS_PAD = 114


@dataclasses.dataclass(frozen=True)
class DarknetModel:
  """Darknet files (local or gs://): ``.cfg``, ``.weights`` and a names file."""
  config: str
  weights: str
  class_names: str
  default_image_size = 416
  pad_value = DARKNET_PAD

  @property
  def uri(self) -> str:
    return self.weights


@dataclasses.dataclass(frozen=True)
class TorchScriptModel:
  """An Ultralytics-layout TorchScript export; names from the file unless given."""
  model: str
  class_names: Optional[str] = None
  default_image_size = ultralytics_torchscript.DEFAULT_IMAGE_SIZE
  pad_value = ULTRALYTICS_PAD

  @property
  def uri(self) -> str:
    return self.model


ModelSource = Union[DarknetModel, TorchScriptModel]


@dataclasses.dataclass(frozen=True)
class InferenceError:
  """Marks an element the model failed on; ``message`` says why."""
  message: str


def cuda_missing_message() -> str:
  return (f'--device cuda was requested but torch {torch.__version__} sees no CUDA '
          'device here: use a GPU worker (and a CUDA build of torch) or --device cpu')


class YoloDetector:
  """A loaded network plus post-processing; what ``load_model`` returns.

  Its one public call, :meth:`detect`, takes and returns plain picklable
  values, so it also works through Beam's cross-process model proxy.
  """

  def __init__(self, net: torch.nn.Module, names: Sequence[str], device: torch.device, *,
               score_threshold: float, iou_threshold: float, max_detections: int):
    self._net = net
    self._names = list(names)
    self._device = device
    self._score_threshold = score_threshold
    self._iou_threshold = iou_threshold
    self._max_detections = max_detections

  def class_names(self) -> List[str]:
    return list(self._names)

  def forward(self, images: np.ndarray):
    """Raw network output for a ``[B, S, S, 3]`` uint8 batch (benchmarks, checks)."""
    with torch.inference_mode():
      return self._net(self._to_input(images))

  def detect(self, images: np.ndarray,
             geometries: Sequence[Any]) -> List[Union[List[dict], InferenceError]]:
    """Detections per image; a batch failure is retried image by image."""
    try:
      return self._detect(images, geometries)
    except torch.cuda.OutOfMemoryError:
      raise  # not the image's fault: let the runner retry
    except Exception as e:  # pylint: disable=broad-except
      if len(images) == 1:
        return [InferenceError(f'{type(e).__name__}: {e}')]
    results: List[Union[List[dict], InferenceError]] = []
    for i in range(len(images)):
      results.extend(self.detect(images[i:i + 1], geometries[i:i + 1]))
    return results

  def _to_input(self, images: np.ndarray) -> torch.Tensor:
    batch = torch.from_numpy(np.ascontiguousarray(images)).to(self._device, non_blocking=True)
    # NCHW shape with channels-last strides, not made contiguous: convolutions
    # then take oneDNN's channels-last path, about 30% faster for yolov3-tiny
    # on this CPU than on a contiguous NCHW copy.
    return batch.permute(0, 3, 1, 2).float().div_(255.0)

  def _detect(self, images, geometries):
    with torch.inference_mode():
      boxes, scores = self._net(self._to_input(images))
      kept = nms.select(boxes,
                        scores,
                        score_threshold=self._score_threshold,
                        iou_threshold=self._iou_threshold,
                        max_detections=self._max_detections)
      kept = [(d.boxes.cpu().numpy(), d.scores.cpu().numpy(), d.classes.cpu().numpy())
              for d in kept]
    return [self._format(b, s, c, g) for (b, s, c), g in zip(kept, geometries)]

  def _format(self, boxes, scores, classes, geometry) -> List[dict]:
    original = geometry.to_original(boxes)
    return [{
        'label': self._names[int(c)],
        'class_id': int(c),
        'score': round(float(s), 4),
        'box': [round(float(v), 1) for v in box],
    } for box, s, c in zip(original, scores, classes)]


class YoloModelHandler(ModelHandler[Any, PredictionResult, YoloDetector]):
  """RunInference handler: letterboxed images in, detections out.

  Element type: objects with a ``letterboxed`` attribute
  (:class:`transforms.detection.letterbox.Letterboxed` of size ``image_size``). Output:
  ``PredictionResult(example=element, inference=list of detection dicts or
  InferenceError, model_id=model uri)``.
  """

  def __init__(self,
               *,
               model: ModelSource,
               image_size: Optional[int] = None,
               device: str = 'cpu',
               batch_size: int = DEFAULT_BATCH_SIZE,
               score_threshold: float = DEFAULT_SCORE_THRESHOLD,
               iou_threshold: float = DEFAULT_IOU_THRESHOLD,
               max_detections: int = DEFAULT_MAX_DETECTIONS,
               cpu_threads: Optional[int] = None):
    """
    Args:
      model: where the model files are (:class:`DarknetModel` or
        :class:`TorchScriptModel`).
      image_size: side of the square network input, a multiple of 32;
        416 for Darknet and 640 for TorchScript when not given.
      device: ``'cpu'`` or ``'cuda'``.
      batch_size: images per forward pass (BatchElements' min and max).
      score_threshold: detections scoring at or below it are dropped.
      iou_threshold: class-aware NMS overlap threshold.
      max_detections: most detections kept per image.
      cpu_threads: torch intra-op threads of each worker process on CPU
        (``torch.set_num_threads``); None keeps torch's default (all cores).
        Set it when a machine runs several SDK processes (Dataflow starts one
        per vCPU) so that they do not oversubscribe the cores.
    """
    super().__init__()
    if not isinstance(model, (DarknetModel, TorchScriptModel)):
      raise TypeError(f'model must be DarknetModel or TorchScriptModel, got {model!r}')
    image_size = model.default_image_size if image_size is None else image_size
    if image_size < 32 or image_size % 32:
      raise ValueError(f'image_size must be a positive multiple of 32, got {image_size}')
    if device not in DEVICES:
      raise ValueError(f'device must be one of {DEVICES}, got {device!r}')
    if batch_size < 1:
      raise ValueError(f'batch_size must be at least 1, got {batch_size}')
    for name, value in (('score_threshold', score_threshold), ('iou_threshold', iou_threshold)):
      if not 0.0 <= value <= 1.0:
        raise ValueError(f'{name} must be within [0, 1], got {value}')
    if max_detections < 1:
      raise ValueError(f'max_detections must be at least 1, got {max_detections}')
    if cpu_threads is not None and cpu_threads < 1:
      raise ValueError(f'cpu_threads must be at least 1, got {cpu_threads}')
    self._model = model
    self._image_size = image_size
    self._device = device
    self._batch_size = batch_size
    self._score_threshold = score_threshold
    self._iou_threshold = iou_threshold
    self._max_detections = max_detections
    self._cpu_threads = cpu_threads

  @property
  def image_size(self) -> int:
    return self._image_size

  @property
  def pad_value(self) -> int:
    return self._model.pad_value

  @property
  def model_uri(self) -> str:
    return self._model.uri

  def load_model(self) -> YoloDetector:
    device = torch.device(self._device)
    if device.type == 'cuda' and not torch.cuda.is_available():
      raise RuntimeError(cuda_missing_message())
    if device.type == 'cpu' and self._cpu_threads:
      torch.set_num_threads(self._cpu_threads)  # per process; load_model runs once per process
    started = time.time()
    net, names = _load_network(self._model, device)
    detector = YoloDetector(net.to(device).eval(),
                            names,
                            device,
                            score_threshold=self._score_threshold,
                            iou_threshold=self._iou_threshold,
                            max_detections=self._max_detections)
    # One dry forward: a wrong output layout or class count fails here, at
    # start-up, rather than on every batch.
    _, scores = detector.forward(
        np.zeros((1, self._image_size, self._image_size, 3), dtype=np.uint8))
    if scores.shape[-1] != len(names):
      raise ValueError(f'{self._model.uri}: the model scores {scores.shape[-1]} classes but '
                       f'{len(names)} class names were given')
    _LOGGER.info('Loaded %s (%d classes, input %d) on %s in %.1f s', self._model.uri, len(names),
                 self._image_size, device,
                 time.time() - started)
    return detector

  def run_inference(
      self,
      batch: Sequence[Any],
      model: YoloDetector,
      inference_args: Optional[Mapping[str, Any]] = None) -> Iterable[PredictionResult]:
    self.validate_inference_args(inference_args)
    images = np.stack([element.letterboxed.array for element in batch])
    geometries = [element.letterboxed.geometry for element in batch]
    results = model.detect(images, geometries)
    return [
        PredictionResult(element, result, self._model.uri)
        for element, result in zip(batch, results)
    ]

  def get_num_bytes(self, batch: Sequence[Any]) -> int:
    """Bytes of the input tensor a batch becomes (uint8 HWC per image)."""
    return sum(element.letterboxed.array.nbytes for element in batch)

  def batch_elements_kwargs(self) -> Mapping[str, Any]:
    """Fixed-size batches: steady memory use and one compiled shape on GPU."""
    return {'min_batch_size': self._batch_size, 'max_batch_size': self._batch_size}

  def share_model_across_processes(self) -> bool:
    return self._device == 'cuda'

  def model_copies(self) -> int:
    return 1

  def validate_inference_args(self, inference_args: Optional[Mapping[str, Any]]) -> None:
    if inference_args:
      raise ValueError(f'YoloModelHandler takes no inference_args, got {sorted(inference_args)}')

  def get_metrics_namespace(self) -> str:
    return 'YoloInference'


def read_class_names(path: str) -> List[str]:
  return darknet_cfg.parse_names(paths.read_bytes(path).decode('utf-8'))


def _load_network(model: ModelSource, device: torch.device):
  if isinstance(model, DarknetModel):
    config = darknet_cfg.parse_cfg(paths.read_bytes(model.config).decode('utf-8'))
    names = read_class_names(model.class_names)
    darknet_cfg.check_class_names(config, names)
    net = darknet.build(config)
    darknet.load_weights(net, paths.read_bytes(model.weights), name=model.weights)
    return net, names
  net, metadata = ultralytics_torchscript.load(paths.read_bytes(model.model), device)
  if model.class_names:
    names = read_class_names(model.class_names)
  else:
    names = ultralytics_torchscript.class_names_from_metadata(metadata)
  if not names:
    raise ValueError(f'{model.model} has no class names in its metadata: pass --class_names')
  return net, names
