"""Plain-torch class-aware NMS against a brute-force reference."""
import pytest
import torch

from models.detector import nms


def _iou(a, b):
  ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
  iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
  inter = ix * iy
  union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
  return inter / union if union > 0 else 0.0


def brute_force_nms(boxes, scores, classes, threshold):
  """The textbook definition, one box at a time, in Python."""
  boxes, scores, classes = boxes.tolist(), scores.tolist(), classes.tolist()
  remaining = sorted(range(len(boxes)), key=lambda i: -scores[i])
  kept = []
  while remaining:
    best = remaining.pop(0)
    kept.append(best)
    remaining = [
        i for i in remaining
        if classes[i] != classes[best] or _iou(boxes[i], boxes[best]) <= threshold
    ]
  return kept


def random_boxes(generator, n, extent=100.0):
  xy = torch.rand(n, 2, generator=generator) * extent
  wh = torch.rand(n, 2, generator=generator) * extent / 2 + 10
  return torch.cat([xy, xy + wh], 1)


@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('threshold', [0.3, 0.45, 0.7])
def test_batched_nms_equals_brute_force(seed, threshold):
  generator = torch.Generator().manual_seed(seed)
  n = 200
  boxes = random_boxes(generator, n)
  scores = torch.rand(n, generator=generator)
  classes = torch.randint(0, 4, (n, ), generator=generator)
  kept = nms.batched_nms(boxes, scores, classes, threshold).tolist()
  assert kept == brute_force_nms(boxes, scores, classes, threshold)
  assert 0 < len(kept) < n  # the case is not trivial either way


def test_box_iou_known_values():
  a = torch.tensor([[0., 0., 10., 10.]])
  b = torch.tensor([[0., 0., 10., 10.], [5., 0., 15., 10.], [20., 20., 30., 30.], [0., 0., 0., 0.]])
  torch.testing.assert_close(nms.box_iou(a, b), torch.tensor([[1.0, 50 / 150, 0.0, 0.0]]))


def test_select_filters_by_score_first_and_is_class_aware():
  boxes = torch.tensor([[
      [0., 0., 10., 10.],  # class 0, 0.9: kept
      [1., 0., 11., 10.],  # class 0, 0.8, IoU 0.82 with #0: suppressed
      [1., 0., 11., 10.],  # class 1, 0.7: other class, kept
      [50., 50., 60., 60.],  # class 0, 0.2: below the threshold
      [50., 50., 60., 61.]
  ]])  # class 0, 0.3: kept
  scores = torch.zeros(1, 5, 3)
  for i, (cls, score) in enumerate([(0, .9), (0, .8), (1, .7), (0, .2), (0, .3)]):
    scores[0, i, cls] = score
  scores[0, 3, 2] = 0.1
  (result, ) = nms.select(boxes,
                          scores,
                          score_threshold=0.25,
                          iou_threshold=0.45,
                          max_detections=10)
  torch.testing.assert_close(result.scores, torch.tensor([0.9, 0.7, 0.3]))
  assert result.classes.tolist() == [0, 1, 0]
  torch.testing.assert_close(result.boxes, boxes[0, [0, 2, 4]])
  (capped, ) = nms.select(boxes, scores, score_threshold=0.25, iou_threshold=0.45, max_detections=2)
  assert capped.scores.tolist() == pytest.approx([0.9, 0.7])


def test_select_handles_a_batch_with_an_empty_image():
  boxes = torch.rand(2, 6, 4)
  boxes[..., 2:] += 1
  scores = torch.zeros(2, 6, 2)
  scores[1, 0, 1] = 0.99
  empty, one = nms.select(boxes, scores, score_threshold=0.25, iou_threshold=0.45, max_detections=5)
  assert empty.boxes.shape == (0, 4) and one.classes.tolist() == [1]
