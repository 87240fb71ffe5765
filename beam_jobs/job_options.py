"""The job's ``PipelineOptions``: the same flags and values, each view made once.

Beam reads its options through ``options.view_as(SomeOptions)`` while a
pipeline is built: about four times per applied transform (type-check
settings, mostly), and each call builds an ``argparse`` parser of that
class's flags and parses the whole command line again. The per-site job
applies about 250 transforms, so construction made some 1,100 views, about
0.5 s of work and tens of thousands of short-lived objects for the garbage
collector. A view holds no values of its own (they live in the options'
shared ``_all_options``, which every view reads and writes), so handing out
the view made first for a class is the same as making a new one.
"""
from typing import Dict, Type, TypeVar

from apache_beam.options.pipeline_options import PipelineOptions

OptionsT = TypeVar('OptionsT', bound=PipelineOptions)


class JobOptions(PipelineOptions):
  """``PipelineOptions`` whose ``view_as`` returns one view per options class.

  Defines no flags of its own (Beam's registry of options classes sees an
  empty class). The views are a cache: a pickle or deep copy leaves them out.
  """

  def __init__(self, flags=None, **kwargs):
    super().__init__(flags, **kwargs)
    # Through object: PipelineOptions.__setattr__ only accepts option names.
    object.__setattr__(self, '_views', {})

  def __getstate__(self):
    # Beam's state (which leaves submission-only options out of a pickle) without the
    # views: each would be restored with a store of values of its own.
    state = dict(super().__getstate__())
    state.pop('_views', None)
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    object.__setattr__(self, '_views', {})

  def view_as(self, cls: Type[OptionsT]) -> OptionsT:
    views: Dict[type, PipelineOptions] = self._views
    view = views.get(cls)
    if view is None:
      view = views[cls] = super().view_as(cls)
    return view
