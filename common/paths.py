"""Local-or-remote path helpers built on Beam's ``FileSystems``.

Everything here accepts local paths and any scheme Beam knows (gs:// in
production, the local GCS server in tests), so callers never branch on the
scheme themselves.
"""
import itertools
import os
import re
import string
import shutil
import tempfile
from typing import Iterator, List, Optional, Sequence, Tuple

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.filesystems import FileSystems

_COPY_CHUNK_BYTES = 8 << 20
_WILDCARD = re.compile(r'[*?\[]')


def is_local(path: str) -> bool:
  """True for plain filesystem paths (no ``scheme://``)."""
  return '://' not in path


def join(base: str, *parts: str) -> str:
  """Joins path components with the separator of ``base``'s filesystem."""
  return FileSystems.join(base.rstrip('/\\') or base, *parts)


def relative_to(path: str, root: str) -> str:
  """``path`` relative to ``root`` with forward slashes; ``root`` must contain it."""
  root = root.rstrip('/\\')
  if not path.startswith(root):
    raise ValueError(f'{path!r} is not under {root!r}')
  return path[len(root):].lstrip('/\\').replace('\\', '/')


def match(pattern: str, limit: Optional[int] = None) -> List[FileMetadata]:
  """Files matching a glob (``**`` crosses folders); empty list when none."""
  result = FileSystems.match([pattern], limits=[limit])[0]
  return list(result.metadata_list)


def exists(path: str) -> bool:
  """True if ``path`` is a file, or a folder/prefix with at least one file under it."""
  if is_local(path):
    return os.path.exists(path)
  scheme_and_bucket = path.split('://', 1)[1].rstrip('/')
  if '/' in scheme_and_bucket and FileSystems.exists(path):
    return True
  return bool(match(join(path, '**'), limit=1))


def absolute(path: str) -> str:
  """A local path or pattern made absolute (normalized up to its first wildcard).

  Remote paths are returned as given. A trailing ``/`` is kept: in a pattern
  it means "everything below".
  """
  if not is_local(path):
    return path
  wildcard = _WILDCARD.search(path)
  head, tail = (path[:wildcard.start()], path[wildcard.start():]) if wildcard else (path, '')
  absolute_head = os.path.abspath(head or '.')
  if (head.endswith(('/', os.sep)) or not head) and absolute_head != '/':
    absolute_head += '/'
  return absolute_head + tail


def overlap_example(pattern: str, folder: str) -> Optional[str]:
  """A path ``pattern`` can match that is ``folder`` itself or lies below it; else None.

  ``pattern`` has the syntax of Beam's ``FileSystems.match`` (the same for
  local paths and gs://): ``*`` matches within one path segment, ``**``
  matches across segments, ``?`` is any one character (``/`` too), ``[...]``
  is a character class (``[!...]`` negated), and a pattern ending with ``/``
  matches what is below it. The answer is exact for that syntax: None means no file the pattern
  could ever match is ``folder`` or inside it. Give both as absolute paths
  (see :func:`absolute`); a trailing ``/`` on ``folder`` is ignored.
  """
  if pattern.endswith(('/', '\\')):
    pattern += '*'
  tokens = _glob_tokens(pattern)
  base = folder.rstrip('/')
  states = _closure(tokens, {0})
  for char in base:
    states = _closure(tokens, {nxt for s in states for nxt in _step(tokens, s, char)})
    if not states:
      return None
  below = _closure(tokens, {nxt for s in states for nxt in _step(tokens, s, '/')})
  for state in sorted(below):
    rest = _completion(tokens, state)
    if rest is not None:
      return base + '/' + rest
  return base if len(tokens) in states else None


_STAR, _ANY_DEPTH, _ONE = '*', '**', '?'


def _glob_tokens(pattern: str) -> List[Tuple[str, object]]:
  """Beam's ``translate_pattern`` as tokens: ('lit', char), ('*'|'**'|'?', None), ('set', regex)."""
  tokens: List[Tuple[str, object]] = []
  i, n = 0, len(pattern)
  while i < n:
    c = pattern[i]
    i += 1
    if c == '*':
      if i < n and pattern[i] == '*':
        tokens.append((_ANY_DEPTH, None))
        i += 1
      else:
        tokens.append((_STAR, None))
    elif c == '?':
      tokens.append((_ONE, None))
    elif c == '[':
      j = i
      if j < n and pattern[j] == '!':
        j += 1
      if j < n and pattern[j] == ']':
        j += 1
      while j < n and pattern[j] != ']':
        j += 1
      if j >= n:
        tokens.append(('lit', '['))
      else:
        stuff = pattern[i:j].replace('\\', '\\\\')
        i = j + 1
        if stuff[0] == '!':
          stuff = '^' + stuff[1:]
        elif stuff[0] == '^':
          stuff = '\\' + stuff
        tokens.append(('set', re.compile(f'(?s)[{stuff}]')))
    else:
      tokens.append(('lit', c))
  return tokens


def _accepts(token: Tuple[str, object], char: str) -> bool:
  kind, value = token
  if kind == _ANY_DEPTH or kind == _ONE:
    return True
  if kind == _STAR:
    return char not in '/\\'
  if kind == 'lit':
    return char == value
  return value.fullmatch(char) is not None


def _step(tokens: Sequence[Tuple[str, object]], state: int, char: str) -> List[int]:
  if state >= len(tokens) or not _accepts(tokens[state], char):
    return []
  return [state] if tokens[state][0] in (_STAR, _ANY_DEPTH) else [state + 1]


def _closure(tokens: Sequence[Tuple[str, object]], states) -> set:
  """States plus those reached by letting ``*``/``**`` match nothing."""
  done = set()
  todo = list(states)
  while todo:
    state = todo.pop()
    if state in done:
      continue
    done.add(state)
    if state < len(tokens) and tokens[state][0] in (_STAR, _ANY_DEPTH):
      todo.append(state + 1)
  return done


def _completion(tokens: Sequence[Tuple[str, object]], state: int) -> Optional[str]:
  """Some text taking ``state`` to the end of the pattern (wildcards as ``x``)."""
  out = []
  for kind, value in tokens[state:]:
    if kind == 'lit':
      out.append(value)
    elif kind == 'set':
      member = _member(value)
      if member is None:
        return None
      out.append(member)
    else:
      out.append('x')
  return ''.join(out)


def _member(char_class) -> Optional[str]:
  """A character of the class, preferring plain ones (for readable examples)."""
  plain = 'x' + string.ascii_letters + string.digits + '-_.'
  for char in itertools.chain(plain, map(chr, range(0x20, 0x3000))):
    if char_class.fullmatch(char):
      return char
  return None


def open_raw(path: str):
  """Opens ``path`` for reading as stored (no decompression by extension)."""
  return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def read_bytes(path: str) -> bytes:
  with open_raw(path) as f:
    return f.read()


class NotUtf8Text(ValueError):
  """A file that is not UTF-8 text; ``line`` is the line (from 1) of its first bad byte."""

  def __init__(self, path: str, line: int):
    super().__init__(f'{path}: line {line}: not UTF-8 text')
    self.path = path
    self.line = line


def read_text(path: str) -> str:
  """The file's text, read as UTF-8 (a leading BOM dropped).

  Raises:
    NotUtf8Text: ``"<path>: line N: not UTF-8 text"``, N the line of the first bad byte.
  """
  data = read_bytes(path)
  try:
    return data.decode('utf-8-sig')
  except UnicodeDecodeError as e:
    raise NotUtf8Text(path, data[:e.start].count(b'\n') + 1) from e


def write_bytes(path: str, data: bytes, mime_type: str = 'application/octet-stream') -> None:
  """Writes ``data`` to ``path`` in one create (atomic on GCS, parents made locally)."""
  if is_local(path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with FileSystems.create(path, mime_type=mime_type,
                          compression_type=CompressionTypes.UNCOMPRESSED) as f:
    f.write(data)


def iter_tree(root: str) -> Iterator[FileMetadata]:
  """Every file below ``root`` (recursive)."""
  yield from match(join(root, '**'))


def localize_tree(root: str) -> 'LocalCopy':
  """A context manager giving a local folder with ``root``'s files.

  Local folders are used in place; remote ones are copied to a temporary
  folder that is removed on exit.
  """
  return LocalCopy(root)


class LocalCopy:
  """Context manager behind :func:`localize_tree`."""

  def __init__(self, root: str):
    self._root = root.rstrip('/')
    self._tmp: Optional[str] = None

  def __enter__(self) -> str:
    if is_local(self._root):
      return self._root
    self._tmp = tempfile.mkdtemp(prefix='localized-')
    for meta in iter_tree(self._root):
      target = os.path.join(self._tmp, *relative_to(meta.path, self._root).split('/'))
      os.makedirs(os.path.dirname(target), exist_ok=True)
      with open_raw(meta.path) as src, open(target, 'wb') as dst:
        shutil.copyfileobj(src, dst, _COPY_CHUNK_BYTES)
    return self._tmp

  def __exit__(self, *exc_info) -> None:
    if self._tmp:
      shutil.rmtree(self._tmp, ignore_errors=True)
