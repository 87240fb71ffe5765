"""Templates of the signature functions a worker canonicalized, to match new exports by.

Sites of one architecture differ in names only; a site whose signature
function matches the :mod:`~models.site.function_template` of one read
before gets exactly what a full canonicalization gives (same key, roles and
program) for a third of the work. :class:`KnownFunctions` holds those
templates for one pool (in its
:class:`~models.site.architecture_cache.ArchitectureCache`):

- a template is made the second time a key is seen, from that export's
  full canonicalization (an architecture seen once, e.g. every site its
  own, costs a set entry); later unmatched exports of a key (another
  layout) add one each, unless its functions cannot have one;
- an export is matched against the templates of its signature function's
  ops and number of arguments, the most recently made first (at most four);
  no match: the caller canonicalizes in full;
- bounded by templates and bytes (erased bytes and canonical definitions,
  callees included), least recently used forgotten first; thread-safe.
"""
import collections
import threading
from typing import Container, Dict, List, Mapping, NamedTuple, Optional, Tuple

from models.site.canonical_function import CanonicalFunction
from models.site.function_template import Copier
from models.site.function_template import Matching
from models.site.function_template import Template
from models.site.function_template import make_template

DEFAULT_MAX_TEMPLATES = 64  # signature functions
DEFAULT_MAX_BYTES = 16 << 20  # erased bytes and canonical definitions, callees included
_MAX_TRIES = 4  # templates tried per function, most recently made first
_MAX_SEEN_KEYS = 4096
_ONCE, _TEMPLATED, _REFUSED = range(3)  # what learn saw of a key


class Match(NamedTuple):
  """What ``_canonical_library`` would give an export, and its signature function's arguments."""
  canonical: Dict[str, CanonicalFunction]  # by the export's names, callees first
  roles: Mapping[int, str]  # of resource arguments, by position
  arg_types: Tuple[int, ...]


class KnownFunctions:
  """Templates of signature functions canonicalized before, for :meth:`match`; thread-safe."""

  def __init__(self,
               *,
               max_templates: int = DEFAULT_MAX_TEMPLATES,
               max_bytes: int = DEFAULT_MAX_BYTES):
    self._max_templates = max_templates
    self._max_bytes = max_bytes
    # (ops of the signature function, its number of arguments) -> templates, newest last.
    self._templates: 'collections.OrderedDict[Tuple, List[Template]]' = (collections.OrderedDict())
    self._count = 0
    self._bytes = 0
    self._seen: 'collections.OrderedDict[str, int]' = collections.OrderedDict()
    self._lock = threading.Lock()
    self.matches = 0

  @property
  def size(self) -> int:
    return self._count

  def match(self, name: str, library: Container[str], copy: Copier) -> Optional[Match]:
    """Signature function ``name`` of an export, matched to a template; None: no match.

    ``library``: the export's function names; ``copy(name)``: a fresh,
    modifiable copy of one of its functions.
    """
    if not self._count:
      return None
    fdef = copy(name)
    index = (tuple(node.op for node in fdef.node_def), len(fdef.signature.input_arg))
    with self._lock:
      candidates = self._templates.get(index)
      if not candidates:
        return None
      self._templates.move_to_end(index)
      candidates = candidates[-_MAX_TRIES:]
    for template in reversed(candidates):
      matching = Matching(library, copy)
      if matching.function(name, template, fdef) is not None:
        with self._lock:
          self.matches += 1
        return Match(matching.done, template.roles, template.arg_types)
      fdef = copy(name)
    return None

  def learn(self, key: str, name: str, library: Container[str], copy: Copier,
            canonical: Mapping[str, CanonicalFunction], roles: Dict[int, str]) -> None:
    """Remembers signature function ``name`` (of key ``key``, canonical as ``canonical``).

    Called after a full canonicalization: a key seen the first time is only
    noted; later unmatched exports of it (another layout) each add a
    template, unless its functions cannot have one. ``roles``: the roles of
    its resource arguments, by position.
    """
    with self._lock:
      seen = self._seen.get(key)
      self._seen[key] = _ONCE if seen is None else seen
      self._seen.move_to_end(key)
      while len(self._seen) > _MAX_SEEN_KEYS:
        self._seen.popitem(last=False)
      if seen in (None, _REFUSED):
        return
    template = make_template(name, library, copy, canonical, roles)
    if template is None or template.num_bytes > self._max_bytes:
      with self._lock:
        self._seen[key] = _REFUSED
      return
    fdef = copy(name)
    index = (tuple(node.op for node in fdef.node_def), len(fdef.signature.input_arg))
    with self._lock:
      self._seen[key] = _TEMPLATED
      self._templates.setdefault(index, []).append(template)
      self._templates.move_to_end(index)
      self._count += 1
      self._bytes += template.num_bytes
      while self._count > self._max_templates or self._bytes > self._max_bytes:
        oldest = next(iter(self._templates))
        forgotten = self._templates[oldest].pop(0)
        if not self._templates[oldest]:
          del self._templates[oldest]
        self._count -= 1
        self._bytes -= forgotten.num_bytes
