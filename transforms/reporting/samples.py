"""Bounded samples for the report: bottom-k per key, and the dead letters per reason.

A bottom-k sample (:class:`BottomKPerKeyFn`) keeps per key the ``k``
elements with the smallest hash of their content. That is a uniform-looking
sample that is exactly mergeable and deterministic (the same run gives the
same page), and no accumulator holds more than ``k`` elements per key, so
the report never needs every row on one worker. The time series of a few
sites (:mod:`transforms.reporting.series`) merges its samples with
:class:`MergeBottomKPerKeyFn` too.
"""
import zlib
from typing import Any, Dict, Iterable, List, Tuple

import apache_beam as beam

from transforms import json_lines

DEFAULT_LETTERS_PER_REASON = 3
MAX_TEXT = 300


def truncate(text: str, limit: int = MAX_TEXT) -> str:
  """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
  return text if len(text) <= limit else text[:limit - 1] + '\u2026'


def letter_example(letter: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
  """``dead letter -> (reason, example)`` with every text field truncated; never raises.

  The record is shown as its JSON text (a raw line stays the string it was).
  """
  record = letter.get('record')
  if isinstance(record, str):
    record_text = record
  else:
    try:
      record_text = json_lines.dumps(record)
    except (TypeError, ValueError):
      record_text = repr(record)
  example = {
      'stage': truncate(str(letter.get('stage'))),
      'message': truncate(str(letter.get('message'))),
      'site_id': None if letter.get('site_id') is None else truncate(str(letter['site_id'])),
      'source': None if letter.get('source') is None else truncate(str(letter['source'])),
      'record': truncate(record_text),
  }
  return str(letter.get('reason') or 'unknown'), example


def content_hash(value: Any) -> int:
  """A stable 32-bit hash of ``value``'s repr (the same in every process, unlike ``hash``)."""
  return zlib.crc32(repr(value).encode('utf-8', 'backslashreplace'))


Ranked = Tuple[int, str, Any]  # (content hash, repr, value): the sampling order


def ranked(value: Any) -> Ranked:
  return content_hash(value), repr(value), value


def smallest_ranked(kept: Iterable[Ranked], k: int) -> List[Ranked]:
  """The ``k`` first of ranked values in sampling order (hash, then repr)."""
  return sorted(kept, key=lambda item: item[:2])[:k]


def bottom_k(values: Iterable[Any], k: int) -> List[Ranked]:
  """The ``k`` values of ``values`` a :class:`BottomKPerKeyFn` would keep, ranked."""
  return smallest_ranked(map(ranked, values), k)


class BottomKPerKeyFn(beam.CombineFn):
  """``(key, value)`` pairs -> ``{key: [value]}`` keeping per key the ``k`` values with the
  smallest :func:`content_hash` (ties by repr), in that order."""

  def __init__(self, k: int):
    if k < 1:
      raise ValueError(f'k must be >= 1, got {k}')
    self._k = k

  def create_accumulator(self) -> Dict[Any, List[Ranked]]:
    return {}

  def add_input(self, accumulator, element):
    key, value = element
    kept = accumulator.setdefault(key, [])
    kept.append(ranked(value))
    if len(kept) >= 2 * self._k:
      accumulator[key] = self._trim(kept)
    return accumulator

  def merge_accumulators(self, accumulators):
    merged: Dict[Any, List[Ranked]] = {}
    for accumulator in accumulators:
      for key, kept in accumulator.items():
        merged[key] = self._trim(merged.get(key, []) + kept)
    return merged

  def extract_output(self, accumulator):
    return {key: [v for _, _, v in self._trim(kept)] for key, kept in accumulator.items()}

  def _trim(self, kept):
    return smallest_ranked(kept, self._k)


class MergeBottomKPerKeyFn(BottomKPerKeyFn):
  """As :class:`BottomKPerKeyFn`, for inputs already sampled: ``(key, bottom_k(values, k))``.

  A producer that sees many values at once (a prediction batch) samples
  them itself and sends one element instead of one per value; the outcome
  is the same as sending every value (bottom-k of a union is the bottom-k
  of the parts' bottom-k).
  """

  def add_input(self, accumulator, element):
    key, kept = element
    accumulator[key] = self._trim(accumulator.get(key, []) + list(kept))
    return accumulator


class SampleDeadLetters(beam.PTransform):
  """Dead letters -> one ``{reason: [example]}`` with at most ``per_reason`` examples each
  (:func:`letter_example`); ``{}`` when there are none."""

  def __init__(self, *, per_reason: int = DEFAULT_LETTERS_PER_REASON):
    super().__init__()
    self._per_reason = per_reason

  def expand(self, letters):
    return (letters
            | 'ByReason' >> beam.Map(letter_example)
            | 'Sample' >> beam.CombineGlobally(BottomKPerKeyFn(self._per_reason)))
