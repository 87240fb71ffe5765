"""Which storage errors are permanent: those fail a site's rows as dead letters, the rest are retried.

The failure vocabulary itself (stages, reasons, ``RecordFailure``) is :mod:`common.failures`.
"""
import contextlib
import errno

from apache_beam.io.filesystem import BeamIOError

from common.failures import MODEL_LOAD_FAILED
from common.failures import PREDICT
from common.failures import RecordFailure

# OS errors that say the path itself is unusable or unreadable for us: the
# same call would fail the same way on a retry.
_PERMANENT_ERRNOS = frozenset({
    errno.ENAMETOOLONG, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.ELOOP,
    errno.EINVAL, errno.EILSEQ
})
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


@contextlib.contextmanager
def permanent_storage_errors_fail_the_site(what: str):
  """Inside the block, a storage error retrying cannot fix (:func:`is_permanent_storage_error`)
  becomes ``RecordFailure(predict, model_load_failed, "<what>: <error>")``; a RecordFailure
  and every other error propagate as they are (the runner retries those)."""
  try:
    yield
  except RecordFailure:
    raise
  except Exception as e:  # pylint: disable=broad-except
    if not is_permanent_storage_error(e):
      raise
    raise RecordFailure(PREDICT, MODEL_LOAD_FAILED,
                        f'{what}: {type(e).__name__}: {str(e)[:300]}') from e
