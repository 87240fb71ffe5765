"""Per-site TensorFlow SavedModels: layout, loading, the shared-graph fast path,
the per-worker pool and the Beam ModelHandler. The pool and the models import
TensorFlow (without Keras: :mod:`common.tensorflow_import`); the handler, the
layout and the instance config do not, so a pipeline is built without it."""
from common import beam_ml

beam_ml.without_model_manager()  # no torch, no SciPy: see common.beam_ml
