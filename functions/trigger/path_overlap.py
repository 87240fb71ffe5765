"""Could a job's input pattern match what it writes? Glob-aware, on path strings.

Patterns follow Beam's file globs: ``*`` matches within one path segment (it
does not cross ``/``), ``**`` matches anything. Where Beam's meaning is
looser or unclear to us the check assumes the widest match, so an unsure
answer is "they may overlap": ``?`` and ``[...]`` classes match any
character (``/`` too).

Nothing here touches storage: a folder is "everything whose name starts
with ``folder/``", so ``may_match_prefix(pattern, folder + '/')`` is True when
some name below the folder could be matched by ``pattern``.
"""
import re
from typing import FrozenSet, List, Tuple

GLOB_CHARS = re.compile(r'[*?\[]')
_ANY, _SEGMENT, _ONE = 'any', 'segment', 'one'


def _tokens(pattern: str) -> List[Tuple[str, str]]:
  """``(kind, char)`` tokens: literal characters, ``*``, ``**`` and one-char wildcards.

  Brackets are read the way Beam reads them: ``[!]x]`` is one class, and a
  ``[`` without a closing ``]`` is a literal.
  """
  tokens, i, n = [], 0, len(pattern)
  while i < n:
    char = pattern[i]
    i += 1
    if char == '*':
      if i < n and pattern[i] == '*':
        tokens.append((_ANY, ''))
        i += 1
      else:
        tokens.append((_SEGMENT, ''))
    elif char == '?':
      tokens.append((_ONE, ''))
    elif char == '[':
      j = i + 1 if i < n and pattern[i] == '!' else i
      j = j + 1 if j < n and pattern[j] == ']' else j
      while j < n and pattern[j] != ']':
        j += 1
      if j >= n:
        tokens.append(('literal', '['))
      else:
        tokens.append((_ONE, ''))
        i = j + 1
    else:
      tokens.append(('literal', char))
  return tokens


def _closure(states: FrozenSet[int], tokens: List[Tuple[str, str]]) -> FrozenSet[int]:
  """Adds the states reachable by letting ``*``/``**`` match nothing."""
  result, todo = set(states), list(states)
  while todo:
    state = todo.pop()
    if state < len(tokens) and tokens[state][0] in (_ANY, _SEGMENT) and state + 1 not in result:
      result.add(state + 1)
      todo.append(state + 1)
  return frozenset(result)


def _step(states: FrozenSet[int], char: str, tokens: List[Tuple[str, str]]) -> FrozenSet[int]:
  following = set()
  for state in states:
    if state == len(tokens):
      continue
    kind, literal = tokens[state]
    if kind == _ANY or (kind == _SEGMENT and char != '/'):
      following.add(state)
    elif kind == _ONE or (kind == 'literal' and literal == char):
      following.add(state + 1)
  return _closure(frozenset(following), tokens)


def may_match_prefix(pattern: str, prefix: str) -> bool:
  """True if some name starting with ``prefix`` may match ``pattern``.

  Runs the pattern as a set of positions over ``prefix``; any position still
  alive at its end could be completed by some suffix (an unsure yes).
  """
  tokens = _tokens(pattern)
  states = _closure(frozenset([0]), tokens)
  for char in prefix:
    states = _step(states, char, tokens)
    if not states:
      return False
  return True


def literal_folder(pattern: str) -> str:
  """The folder before the first wildcard (``gs://b/in/*.jpg`` -> ``gs://b/in``).

  A path without wildcards gives its parent folder (``gs://b/in/a`` -> ``gs://b/in``).
  """
  match = GLOB_CHARS.search(pattern)
  head = pattern[:match.start()] if match else pattern
  cut = head.rfind('/')
  return head[:cut] if cut > head.find('://') + 2 else head


def same_or_below(path: str, folder: str) -> bool:
  """``path`` is ``folder`` or lies below it (plain string folders, no wildcards)."""
  path, folder = path.rstrip('/'), folder.rstrip('/')
  return path == folder or path.startswith(folder + '/')
