"""Python's cyclic garbage collector kept off the objects that live for the whole run.

A job process imports TF, Beam and their dependencies (about a million
objects that live as long as the process), then streams records: short-lived
dicts, lists and tuples by the million. Each of those allocations counts
towards a collection, and every full collection walks the whole heap,
imports included. Measured on the per-site job (100,000 rows of one site,
local runner): full collections took 3.1 s of a 16 s run; with the
long-lived objects frozen (``gc.freeze``), 0.3 s.

So a process that runs a job (a) may defer collection while it imports and
builds its pipeline (:func:`defer_collection`, the launcher does), and (b)
freezes what is alive once it is set up (:func:`freeze_set_up_objects`: a
collection first, so no garbage is kept, then ``gc.freeze``, then collection
back on). Frozen objects are never collected again; objects made later are
collected as usual. Freezing again later freezes only what is new. This is
the pattern CPython's documentation gives for ``gc.freeze``.

Error policy: none of this can fail; it changes when collections run, not
what is collected among the objects made after set-up.
"""
import gc

__all__ = ['defer_collection', 'freeze_set_up_objects', 'freeze_worker_set_up', 'resume_collection']


def defer_collection() -> None:
  """No automatic collection until :func:`freeze_set_up_objects` (imports, pipeline build)."""
  gc.disable()


def resume_collection() -> None:
  """Automatic collection back on (a no-op once :func:`freeze_set_up_objects` ran)."""
  gc.enable()


def freeze_set_up_objects() -> None:
  """Collects, moves every live object out of the collector's view, turns collection on."""
  gc.collect()
  gc.freeze()
  gc.enable()


def freeze_worker_set_up() -> None:
  """Freezes a worker's set-up: :func:`freeze_set_up_objects` in a process that has not
  frozen anything yet; where the launcher already froze (in-memory local runs), only
  ``gc.freeze()`` of what is new (e.g. TensorFlow, imported when the first model loads),
  without another full collection, which would walk it all for little garbage.
  """
  if gc.get_freeze_count() == 0 or not gc.isenabled():
    freeze_set_up_objects()
  else:
    gc.freeze()
