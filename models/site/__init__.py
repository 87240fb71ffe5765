"""Per-site TensorFlow SavedModels: layout, loading, the shared-graph fast path,
the per-worker pool and the Beam ModelHandler. Imports TensorFlow (without Keras)."""
from common import beam_ml
from common import tensorflow_import

beam_ml.without_model_manager()   # no torch, no SciPy: see common.beam_ml
tensorflow_import.import_without_keras()   # see common.tensorflow_import
