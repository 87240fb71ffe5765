"""The collector settings of a job process (common.heap)."""
import gc
import weakref

from common import heap


class _Node:

  def __init__(self):
    self.self_ref = self


def test_deferred_collection_then_freeze_freezes_everything_without_a_full_walk_and_resumes():
  heap.defer_collection()
  try:
    assert not gc.isenabled()
    garbage = _Node()
    dead = weakref.ref(garbage)
    del garbage  # a cycle: only the collector frees it
    alive = _Node()
    frozen_before = gc.get_freeze_count()
    full_collections = gc.get_stats()[2]['collections']
    heap.freeze_set_up_objects()
    assert gc.isenabled()
    assert gc.get_stats()[2]['collections'] == full_collections  # no walk of the heap
    assert gc.get_freeze_count() > frozen_before
    assert dead() is not None, 'set-up garbage is frozen with the rest (module doc)'
    assert alive not in gc.get_objects(generation=2)
    # What is made afterwards is collected as usual.
    later = _Node()
    dead_later = weakref.ref(later)
    del later
    gc.collect()
    assert dead_later() is None
  finally:
    gc.enable()
    gc.unfreeze()


def test_the_site_handler_freezes_its_worker_set_up_once_it_loads():
  from models.site.handler import SiteModelHandler  # pylint: disable=import-outside-toplevel
  gc.unfreeze()
  gc.disable()  # as a launcher that deferred collection leaves it
  try:
    SiteModelHandler(model_root='/nonexistent-model-root').load_model()
    assert gc.get_freeze_count() > 0
    assert gc.isenabled()
  finally:
    gc.enable()
    gc.unfreeze()


def test_a_second_freeze_freezes_what_is_new_without_collecting():
  gc.unfreeze()
  try:
    heap.freeze_set_up_objects()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    kept = [_Node() for _ in range(100)]  # new objects, made after the first freeze
    collections_before = gc.get_stats()[2]['collections']
    heap.freeze_set_up_objects()
    assert gc.get_freeze_count() >= frozen + len(kept)
    assert gc.get_stats()[2]['collections'] == collections_before  # no full collection
    assert gc.isenabled()
  finally:
    gc.unfreeze()


def test_a_usage_error_leaves_the_collector_on(tmp_path):
  from beam_jobs import cli  # pylint: disable=import-outside-toplevel
  assert cli.site_predictions([f'--output={tmp_path}/out']) == 2  # no --input: usage error
  assert gc.isenabled()
