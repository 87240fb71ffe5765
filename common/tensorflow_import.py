"""``import tensorflow`` without Keras, for processes that only load SavedModels.

TensorFlow 2.21's ``__init__`` ends by importing ``keras.src.optimizers``
("eager load for Keras' code", so that Keras registers its optimizers for
SavedModel loading), which imports all of Keras 3: about a quarter of
TensorFlow's import time (measured here: 5.3 s -> 4.0 s of CPU on a loaded
2-core machine) in every job and worker process. ``tf.saved_model.load``
does not need it: serving functions exported by Keras (``model.export``,
``tf.saved_model.save``) are plain TensorFlow functions, and an object
whose class is not registered is revived as a generic one.

:func:`import_without_keras` marks that one module absent
(:func:`common.lean_imports.absent`: ``None`` in ``sys.modules``, which
TensorFlow's own ``try: ... except ImportError`` skips) just while
TensorFlow is first imported, then removes the mark: a later ``import
keras`` or ``tf.keras`` in the same process loads Keras as usual. It does
nothing where TensorFlow or Keras is already imported.
"""
import importlib
import sys

from common import lean_imports

KERAS_EAGER_LOAD = 'keras.src.optimizers'


def import_without_keras() -> None:
  """Imports TensorFlow, skipping its eager Keras import, unless TF or Keras is loaded."""
  if 'tensorflow' in sys.modules or 'keras' in sys.modules:
    return
  with lean_imports.absent(KERAS_EAGER_LOAD):
    importlib.import_module('tensorflow')
