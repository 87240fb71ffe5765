"""Beam's ``RunInference`` in a TensorFlow-only process: without torch and SciPy.

``apache_beam.ml.inference.base`` (Beam 2.77) imports its ``ModelManager``,
which places models on GPUs with torch and SciPy, inside ``try: ... except
ImportError`` whenever both are installed: about 2.4 s and 210 MiB more per
worker process. The per-site job never uses it (``use_model_manager`` stays
off), so :mod:`models.site` and :mod:`transforms.site` call
:func:`without_model_manager` before anything of theirs imports Beam's
inference base. Then that import finds a placeholder module in
``sys.modules`` whose ``ModelManager`` is None, what the base module itself
sets where the import fails (a placeholder rather than a blocked import, so
that the ``resource`` module imported in the same ``try`` block stays
available for Beam's memory metrics).

It changes nothing once the base module is imported (a process that imported
it first keeps its ``ModelManager``), nor for a user who installs the module
explicitly beforehand. The per-site job's container image has no torch at
all; this covers processes where everything is installed (local runs, tests,
one image for both jobs).
"""
import sys
import types

BASE = 'apache_beam.ml.inference.base'
MODEL_MANAGER = 'apache_beam.ml.inference.model_manager'


def without_model_manager() -> None:
  """Marks Beam's ModelManager absent unless Beam's inference base is already imported."""
  if BASE not in sys.modules and MODEL_MANAGER not in sys.modules:
    placeholder = types.ModuleType(MODEL_MANAGER, 'Beam ModelManager left out: see common.beam_ml.')
    placeholder.ModelManager = None
    sys.modules[MODEL_MANAGER] = placeholder
