"""Progress lines while a local run works (``--progress``, ``--progress_interval_s``).

Beam's in-process runner runs the whole pipeline inside ``pipeline.run()``
and reports metrics only once it returns, so a live view needs its own
counts: :func:`reporting` adds a small counting step (a "tap") on the
PCollections a job names in its :class:`Plan`, found by the label of the
step that consumes them, and a daemon thread logs the counts every
``interval_s`` seconds, e.g.::

  ... INFO beam_jobs.progress: 120,000 records read, 812 sites seen,
  118,900 predictions written, 12 failed (9,850 predictions/s)

The rate is that of the last counter in the line that moved since the
previous line; a last line gives the final counts. The taps count into a
per-run tally shared in this process through Beam's own
:class:`apache_beam.utils.shared.Shared` handle (the runner unpickles its own
copy of each step, so the handle, not the tally, travels with the steps; the
launcher holds the tally for the length of the run); steps run in another process
(``--direct_running_mode=multi_processing``) would count nothing, so
:func:`reporting` is not used there. Dataflow runs get no taps: the job's
Beam counters in the Dataflow console are the progress view there.

Lines are logged at INFO by ``beam_jobs.progress``: by default only when
stderr is a terminal (``--progress=auto``); ``--progress=on`` forces them
(tests, CI logs), ``--progress=off`` stops them.
"""
import contextlib
import dataclasses
import logging
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import PipelineVisitor
from apache_beam.utils import shared

_LOGGER = logging.getLogger(__name__)

Counts = Iterable[Tuple[str, int]]


@dataclasses.dataclass(frozen=True)
class Tap:
  """Count the elements of the main input of the top-level step labelled ``consumer``:
  ``count(element) -> ((field, n), ...)``, a module-level function (it is pickled)."""
  consumer: str
  count: Callable[[Any], Counts]


@dataclasses.dataclass(frozen=True)
class Field:
  """One number in the line: ``{n:,} {words}``; ``unit`` names its rate (None: no rate)."""
  key: str
  words: str
  unit: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Plan:
  taps: Sequence[Tap]
  fields: Sequence[Field]


class Tally:
  """Thread-safe ``field -> count``."""

  def __init__(self):
    self._lock = threading.Lock()
    self._counts: Dict[str, int] = {}

  def add(self, counts: Counts) -> None:
    with self._lock:
      for key, n in counts:
        self._counts[key] = self._counts.get(key, 0) + n

  def snapshot(self) -> Dict[str, int]:
    with self._lock:
      return dict(self._counts)


class _CountIntoFn(beam.DoFn):
  """element -> nothing; adds ``count(element)`` to this process's tally of the run
  (a tally of its own, read by no one, where the launcher's is not in this process)."""

  def __init__(self, handle: shared.Shared, count: Callable[[Any], Counts]):
    super().__init__()
    self._handle = handle
    self._count = count
    self._tally: Optional[Tally] = None

  def setup(self):
    self._tally = self._handle.acquire(Tally)

  def process(self, element):
    if self._tally is not None:
      self._tally.add(self._count(element))
    return ()


# Count functions for Plans (element -> ((field, n), ...)).


def each(element, field: str) -> Counts:
  del element
  return ((field, 1), )


def size(element, field: str, measure: Callable[[Any], int] = len) -> Counts:
  return ((field, measure(element)), )


def stats(element, fields: Sequence[str]) -> Counts:
  """A summary stat ``((key, ...), n)``: counted under ``key`` when it is one of ``fields``
  (the stat's first key part, so ``('failed', reason)`` counts as ``failed``)."""
  key, n = element
  return ((key[0], n), ) if key and key[0] in fields else ()


class _Consumers(PipelineVisitor):
  """The main input of every top-level step whose label is wanted."""

  def __init__(self, labels: Sequence[str]):
    self._labels = set(labels)
    self.found: Dict[str, beam.PCollection] = {}

  def enter_composite_transform(self, transform_node):
    self.visit_transform(transform_node)

  def visit_transform(self, transform_node):
    label = transform_node.full_label
    if label in self._labels and label not in self.found and transform_node.inputs:
      first = transform_node.inputs[0]
      if isinstance(first, beam.PCollection):
        self.found[label] = first


def attach(pipeline: beam.Pipeline, plan: Plan, handle: shared.Shared) -> List[str]:
  """Adds the plan's taps, counting into ``handle``'s tally, to ``pipeline``; returns the
  consumer labels not found."""
  finder = _Consumers([tap.consumer for tap in plan.taps])
  pipeline.visit(finder)
  missing = []
  for i, tap in enumerate(plan.taps):
    pcoll = finder.found.get(tap.consumer)
    if pcoll is None:
      missing.append(tap.consumer)
      continue
    for j, source in enumerate(sources(pcoll)):
      _ = source | f'Progress{i}.{j}{tap.consumer}' >> beam.ParDo(_CountIntoFn(handle, tap.count))
  return missing


def sources(pcoll: beam.PCollection) -> List[beam.PCollection]:
  """``pcoll``, or if a Flatten made it, the PCollections flattened (recursively).

  The local runner runs a Flatten of several inputs apart, after all of
  them are complete; a tap on its inputs counts as their elements are made.
  """
  producer = pcoll.producer
  if producer is not None and isinstance(producer.transform, beam.Flatten):
    return [s for pc in producer.inputs for s in sources(pc)]
  return [pcoll]


def enabled(mode: str, stream) -> bool:
  """``on``/``off``, or for ``auto`` whether ``stream`` is a terminal."""
  if mode == 'auto':
    isatty = getattr(stream, 'isatty', None)
    return bool(isatty and isatty())
  return mode == 'on'


def in_this_process(options: PipelineOptions) -> bool:
  return options.view_as(DirectOptions).direct_running_mode != 'multi_processing'


class Reporter:
  """Formats a tally's counts as one line, with the rate since the previous line."""

  def __init__(self, plan: Plan, tally: Tally, *, clock: Callable[[], float] = time.monotonic):
    self._fields = plan.fields
    self._tally = tally
    self._clock = clock
    self._last = ({}, clock())

  def line(self) -> str:
    counts, now = self._tally.snapshot(), self._clock()
    before, then = self._last
    self._last = (counts, now)
    text = ', '.join(f'{counts.get(f.key, 0):,} {f.words}' for f in self._fields)
    elapsed = now - then
    for f in reversed(self._fields):
      moved = counts.get(f.key, 0) - before.get(f.key, 0)
      if f.unit and moved > 0 and elapsed > 0:
        rate = moved / elapsed
        return f'{text} ({rate:,.0f} {f.unit}/s)' if rate >= 10 else f'{text} ({rate:.1f} {f.unit}/s)'
    return text


@contextlib.contextmanager
def reporting(pipeline: beam.Pipeline, plan: Plan, *, interval_s: float) -> Iterator[Tally]:
  """Taps ``pipeline`` (built, not yet run) and logs a progress line every ``interval_s``
  seconds while the block runs (run and wait inside it), and one with the final counts
  when it ends without an exception; yields the run's tally."""
  handle = shared.Shared()
  tally = handle.acquire(Tally)  # held here for the run: the taps acquire this one
  missing = attach(pipeline, plan, handle)
  if missing:
    _LOGGER.warning('progress: no step labelled %s; those counts stay 0', ', '.join(missing))
  reporter = Reporter(plan, tally)
  stop = threading.Event()
  thread = threading.Thread(target=_report_until,
                            args=(stop, reporter, interval_s),
                            name='progress',
                            daemon=True)
  thread.start()
  try:
    yield tally
    stop.set()
    thread.join()
    _LOGGER.info('%s', reporter.line())  # the final counts
  finally:
    stop.set()
    thread.join()


def _report_until(stop: threading.Event, reporter: Reporter, interval_s: float) -> None:
  while not stop.wait(interval_s):
    _LOGGER.info('%s', reporter.line())
