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
freezes what is alive once it is set up (:func:`freeze_set_up_objects`:
``gc.freeze``, then collection back on). Frozen objects are never collected
again; objects made later are collected as usual. Freezing again later
freezes only what is new. This is the pattern CPython's documentation gives
for ``gc.freeze`` (collection off early, freeze, collection on).

The freeze does not collect first. A full collection at that point walks the
whole set-up heap (about 600,000 tracked objects in the per-site job's
launcher, 0.24-0.29 s measured) to free the cyclic garbage of set-up, which
is a few thousand objects (6,581 measured, once Beam's option views stopped
being rebuilt per transform: :mod:`beam_jobs.job_options`); those are kept,
frozen, for the life of the process instead. Garbage without cycles is freed
by reference counting as always, collector or not.

Error policy: none of this can fail; it changes when collections run, not
what is collected among the objects made after set-up.
"""
import gc

__all__ = ['defer_collection', 'freeze_set_up_objects', 'resume_collection']


def defer_collection() -> None:
  """No automatic collection until :func:`freeze_set_up_objects` (imports, pipeline build)."""
  gc.disable()


def resume_collection() -> None:
  """Automatic collection back on (a no-op once :func:`freeze_set_up_objects` ran)."""
  gc.enable()


def freeze_set_up_objects() -> None:
  """Moves every tracked object out of the collector's view, turns collection on.

  Called by the launcher once the pipeline is built and by a worker once its
  first model is loaded (TensorFlow is imported then); in a process that froze
  before (in-memory local runs), what is new joins the frozen.
  """
  gc.freeze()
  gc.enable()
