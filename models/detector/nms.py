"""Class-aware non-maximum suppression in plain torch.

``torchvision.ops.nms`` is not usable here (the PyPI torchvision is a CUDA
build that does not load next to the CPU torch), so this is the exact greedy
algorithm: visit boxes by descending score, keep one, drop every later box of
the same class whose IoU with it exceeds the threshold. Boxes are filtered
by score first and capped at ``max_candidates`` so the ``K x K`` IoU matrix
stays small.
"""
from typing import List, NamedTuple

import numpy as np
import torch

MAX_CANDIDATES = 3000
"""Highest-scoring boxes per image that enter NMS (IoU matrix is K x K)."""


class Detections(NamedTuple):
  """One image's kept detections, best first, in the network's input pixels."""
  boxes: torch.Tensor  # [K, 4] x1, y1, x2, y2
  scores: torch.Tensor  # [K]
  classes: torch.Tensor  # [K] int64


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
  """IoU of every box in ``a`` [N, 4] with every box in ``b`` [M, 4] -> [N, M]."""
  area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
  area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
  top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
  bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
  wh = (bottom_right - top_left).clamp(min=0)
  inter = wh[..., 0] * wh[..., 1]
  union = area_a[:, None] + area_b[None, :] - inter
  return torch.where(union > 0, inter / union.clamp(min=1e-9), torch.zeros_like(inter))


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
  """Greedy NMS over all boxes; returns kept indices, highest score first."""
  if boxes.shape[0] == 0:
    return torch.zeros(0, dtype=torch.int64, device=boxes.device)
  order = torch.argsort(scores, descending=True, stable=True)
  overlaps = (box_iou(boxes[order], boxes[order]) > iou_threshold).triu_(1)
  suppressed_by = overlaps.cpu().numpy()
  keep = np.ones(order.shape[0], dtype=bool)
  for i in range(order.shape[0]):
    if keep[i]:
      keep[i + 1:] &= ~suppressed_by[i, i + 1:]
  return order[torch.from_numpy(np.flatnonzero(keep)).to(order.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
  """Class-aware NMS: boxes of different classes never suppress each other.

  Shifts each class's boxes to a disjoint region (offset larger than any
  coordinate) and runs one NMS, the usual trick.
  """
  if boxes.shape[0] == 0:
    return torch.zeros(0, dtype=torch.int64, device=boxes.device)
  span = boxes.abs().max() * 2 + 1
  shifted = boxes + (classes.to(boxes.dtype) * span)[:, None]
  return nms(shifted, scores, iou_threshold)


def select(boxes: torch.Tensor, scores: torch.Tensor, *, score_threshold: float,
           iou_threshold: float, max_detections: int) -> List[Detections]:
  """Per image: best class per box, score filter, class-aware NMS, top-k.

  Args:
    boxes: ``[B, N, 4]`` x1, y1, x2, y2.
    scores: ``[B, N, C]`` per-class scores.
    score_threshold: boxes scoring at or below it are dropped before NMS.
    iou_threshold: same-class boxes overlapping a kept one more than this go.
    max_detections: most detections kept per image.
  """
  best, classes = scores.max(dim=-1)
  results = []
  for b in range(boxes.shape[0]):
    mask = best[b] > score_threshold
    img_boxes, img_scores, img_classes = boxes[b][mask], best[b][mask], classes[b][mask]
    if img_scores.shape[0] > MAX_CANDIDATES:
      top = torch.topk(img_scores, MAX_CANDIDATES).indices
      img_boxes, img_scores, img_classes = img_boxes[top], img_scores[top], img_classes[top]
    keep = batched_nms(img_boxes, img_scores, img_classes, iou_threshold)[:max_detections]
    results.append(Detections(img_boxes[keep], img_scores[keep], img_classes[keep]))
  return results
