"""Launch-time validation: user-fixable mistakes fail before the pipeline runs."""
import difflib
from typing import Any, Callable, Iterator, List, Optional, Sequence

from apache_beam.options import pipeline_options
from apache_beam.options.pipeline_options import PipelineOptions

from common import paths


class UsageError(ValueError):
  """A flag value the user must fix; the message names the flag and the value."""

  def __init__(self, flag: str, message: str):
    super().__init__(f'--{flag}: {message}')
    self.flag = flag


class FlagError(UsageError):
  """A usage error whose one-line text is given whole (no ``--flag:`` prefix)."""

  def __init__(self, flag: str, text: str):  # pylint: disable=super-init-not-called
    ValueError.__init__(self, text)  # pylint: disable=non-parent-init-called
    self.flag = flag


class UnknownFlagError(FlagError):
  """A flag no registered ``PipelineOptions`` class defines (a typo, usually)."""

  def __init__(self, arg: str, suggestion: Optional[str]):
    name = arg.split('=', 1)[0]
    if not name.startswith('-'):
      text = f'unexpected argument {arg!r} (flags are --name=value)'
    elif suggestion:
      text = f'unknown flag {name} (did you mean {suggestion}?)'
    else:
      text = f'unknown flag {name} (see --help)'
    super().__init__(name.lstrip('-'), text)


class _CheckingParser(pipeline_options._BeamArgumentParser):  # pylint: disable=protected-access
  """Beam's parser, raising UsageError instead of printing usage and exiting."""

  def error(self, message):
    flag, sep, text = message.partition(': ')
    if flag.startswith('argument ') and sep:
      raise UsageError(flag[len('argument '):].split('/')[-1].lstrip('-'), text)
    raise FlagError('', message)


def options_classes() -> Iterator[type]:
  """Every ``PipelineOptions`` subclass defined so far (Beam's and this package's)."""
  todo = list(PipelineOptions.__subclasses__())
  seen = set()
  while todo:
    cls = todo.pop(0)
    if cls not in seen:
      seen.add(cls)
      yield cls
      todo.extend(cls.__subclasses__())


def check_flags(argv: Sequence[str]) -> None:
  """Raises UsageError for an unknown flag, a stray argument or a malformed value.

  Known flags are those of every ``PipelineOptions`` subclass imported when
  this runs: Beam's own (``--runner``, ``--project``, ``--temp_location``,
  ``--template_location``, ... everything a Flex template launcher passes)
  and the job's. Beam itself only logs and drops unknown ones.
  """
  parser = _CheckingParser(allow_abbrev=False, add_help=False, conflict_handler='resolve')
  for cls in options_classes():
    cls._add_argparse_args(parser)  # pylint: disable=protected-access
  _, unknown = parser.parse_known_args(list(argv))
  if unknown:
    raise UnknownFlagError(unknown[0], _closest(unknown[0], parser))


def _closest(arg: str, parser) -> Optional[str]:
  # pylint: disable=protected-access
  known: List[str] = [s for action in parser._actions for s in action.option_strings]
  found = difflib.get_close_matches(arg.split('=', 1)[0], known, n=1)
  return found[0] if found else None


def require(flag: str, value, what: str = 'is required') -> None:
  if value in (None, ''):
    raise UsageError(flag, what)


def require_fraction(flag: str, value: float) -> None:
  if not 0.0 <= value <= 1.0:
    raise UsageError(flag, f'must be within [0, 1], got {value}')


def _ask_storage(flag: str, call: Callable[[str], Any], path: str, verb: str) -> Any:
  """``call(path)``, any error it raises a UsageError: ``cannot <verb> '<path>': <error>``."""
  try:
    return call(path)
  except Exception as e:  # pylint: disable=broad-except
    raise UsageError(flag, f'cannot {verb} {path!r}: {e}') from e


def require_matches(flag: str, pattern: str) -> List[str]:
  """Fails unless ``pattern`` matches at least one file; returns their paths."""
  found = _ask_storage(flag, paths.match, pattern, 'list')
  if not found:
    raise UsageError(flag, f'no files match {pattern!r}')
  return [m.path for m in found]


def require_exists(flag: str, path: str) -> None:
  """Fails unless ``path`` is a file or a folder with something in it."""
  if not _ask_storage(flag, paths.exists, path, 'read'):
    raise UsageError(flag, f'{path!r} does not exist')
