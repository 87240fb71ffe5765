"""Per-site TensorFlow SavedModels: layout, loading, the shared-graph fast path,
the per-worker pool and the Beam ModelHandler. Imports TensorFlow."""
from common import beam_ml

beam_ml.without_model_manager()   # no torch, no SciPy: see common.beam_ml
