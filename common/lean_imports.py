"""Libraries imported without an optional module they load eagerly and the jobs never use.

Two libraries import, on their own import, a large optional module that
neither job needs:

- TensorFlow 2.21's ``__init__`` ends by importing ``keras.src.optimizers``
  (all of Keras 3; see :mod:`common.tensorflow_import`);
- Beam's ``apache_beam.typehints`` imports pandas whenever it is installed
  (tfx-bsl installs it), to register conversions between Beam schemas and
  pandas DataFrames: pandas is most of ``import apache_beam``'s extra time
  here (about 1.2-1.5 s with it, 0.93-0.95 s without, measured in fresh
  processes). Neither job has pandas-typed PCollections or uses Beam's
  DataFrame API.

:func:`absent` marks modules absent (``None`` in ``sys.modules``: an
``import`` of them raises ImportError, which both libraries catch and skip)
just while a block runs, then removes the marks: a later ``import pandas``
or ``import keras`` in the same process loads the module as usual. Modules
already imported are left as they are. Only the job's launching process
imports this way (the console scripts, :mod:`beam_jobs.cli`); Beam's own
worker processes import Beam as usual.

What else ``import apache_beam`` imports meanwhile sees no pandas for the
whole process too: Beam's text I/O, and the BigQuery and BigQuery Storage
clients, whose DataFrame methods (``to_dataframe`` and the like) then say
pandas is not installed. The jobs read and write BigQuery rows, never
DataFrames; code that needs them must not run under the console scripts.
"""
import contextlib
import importlib
import sys
from typing import Iterator

BEAM_EAGER_LOADS = ('pandas', )


@contextlib.contextmanager
def absent(*names: str) -> Iterator[None]:
  """Within the block, importing any of ``names`` not yet imported raises ImportError."""
  marked = [name for name in names if name not in sys.modules]
  for name in marked:
    sys.modules[name] = None
  try:
    yield
  finally:
    for name in marked:
      if name in sys.modules and sys.modules[name] is None:
        del sys.modules[name]


def import_beam() -> None:
  """Imports Apache Beam without its eager pandas import, unless Beam is already loaded."""
  if 'apache_beam' in sys.modules:
    return
  with absent(*BEAM_EAGER_LOADS):
    importlib.import_module('apache_beam')
