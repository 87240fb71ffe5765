"""Default bounds of the per-worker site model pool (:mod:`models.site.pool`).

Here, not in the pool's module, so that building a pipeline (flags, ``PredictPerSite``)
does not import TensorFlow: only the workers that load models do.
"""
DEFAULT_MAX_MODELS = 256
DEFAULT_MAX_BYTES = 1 << 30
