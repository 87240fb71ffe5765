"""Why a site's rows could not be predicted: permanent, per-site or per-row."""
import errno

from apache_beam.io.filesystem import BeamIOError


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


BAD_SITE = 'bad_site'
NO_MODEL = 'no_model'
MODEL_LOAD_FAILED = 'model_load_failed'
MISSING_FEATURE = 'missing_feature'
BAD_FEATURE = 'bad_feature'
INFERENCE_FAILED = 'inference_failed'
NON_FINITE_OUTPUT = 'non_finite_output'

# OS errors that say the path itself is unusable or unreadable for us: the
# same call would fail the same way on a retry.
_PERMANENT_ERRNOS = frozenset({
    errno.ENAMETOOLONG, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
    errno.ELOOP, errno.EINVAL, errno.EILSEQ})
# HTTP statuses of storage APIs that retrying can fix.
_TRANSIENT_HTTP = frozenset({408, 429})


def is_permanent_storage_error(error: BaseException) -> bool:
  """True when retrying the storage call that raised ``error`` cannot help.

  Permanent: OS errors such as ENAMETOOLONG, EACCES, ENOTDIR; a path the OS
  cannot take (``ValueError``: NUL byte, text not encodable); HTTP 4xx from
  a storage API except 408 and 429. A Beam ``BeamIOError`` is permanent
  when every error it wraps is. Anything else (EIO, timeouts, 5xx, unknown
  errors) counts as transient.
  """
  if isinstance(error, BeamIOError):
    inner = list((error.exception_details or {}).values())
    return bool(inner) and all(is_permanent_storage_error(e) for e in inner)
  if isinstance(error, OSError):
    if error.errno in _PERMANENT_ERRNOS:
      return True
  elif isinstance(error, ValueError):
    return True
  code = getattr(error, 'code', None)
  return (isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 500
          and code not in _TRANSIENT_HTTP)
