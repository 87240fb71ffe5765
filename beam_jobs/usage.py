"""Launch-time validation: user-fixable mistakes fail before the pipeline runs."""
from common import paths


class UsageError(ValueError):
  """A flag value the user must fix; the message names the flag and the value."""

  def __init__(self, flag: str, message: str):
    super().__init__(f'--{flag}: {message}')
    self.flag = flag


def require(flag: str, value, what: str = 'is required') -> None:
  if value in (None, ''):
    raise UsageError(flag, what)


def require_matches(flag: str, pattern: str) -> int:
  """Fails unless ``pattern`` matches at least one file; returns how many."""
  try:
    found = paths.match(pattern)
  except Exception as e:  # pylint: disable=broad-except
    raise UsageError(flag, f'cannot list {pattern!r}: {e}') from e
  if not found:
    raise UsageError(flag, f'no files match {pattern!r}')
  return len(found)


def require_exists(flag: str, path: str) -> None:
  """Fails unless ``path`` is a file or a folder with something in it."""
  try:
    present = paths.exists(path)
  except Exception as e:  # pylint: disable=broad-except
    raise UsageError(flag, f'cannot read {path!r}: {e}') from e
  if not present:
    raise UsageError(flag, f'{path!r} does not exist')
