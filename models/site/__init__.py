"""Per-site TensorFlow SavedModels: layout, loading, the shared-graph fast path,
the per-worker pool and the Beam ModelHandler. Imports TensorFlow."""
