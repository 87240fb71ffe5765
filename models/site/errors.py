"""Why a site's rows could not be predicted: permanent, per-site or per-row."""


class SiteModelError(Exception):
  """A permanent failure with a dead-letter reason code.

  Raised for problems retrying cannot fix (no model folder, corrupt
  SavedModel, a row the signature cannot take). Transient I/O errors are
  never wrapped in it, so the runner retries them.
  """

  def __init__(self, reason: str, message: str):
    super().__init__(message)
    self.reason = reason
    self.message = message


NO_MODEL = 'no_model'
MODEL_LOAD_FAILED = 'model_load_failed'
MISSING_FEATURE = 'missing_feature'
BAD_FEATURE = 'bad_feature'
INFERENCE_FAILED = 'inference_failed'
