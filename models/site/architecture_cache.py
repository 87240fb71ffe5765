"""Architectures remembered by file identity: a site loaded again costs no key work.

A worker that evicts a site (the pool's bounds) and meets it again (a later
chunk of a big site, a hot site, a rerun over the same root) would parse its
``saved_model.pb`` and canonicalize its functions again, about a millisecond
and a half for a small Keras model. The outcome depends on the file's bytes
only, so it is remembered by the file's identity: device, inode, size and
modification time of the local ``saved_model.pb`` (with the signature name).
A file rewritten in place (a new export over an old one) gets a new
modification time or inode and is read again. A file found not shareable
is remembered too: its site goes straight to a full load, with no key work.

Only local folders are remembered (a remote model is copied to a fresh
temporary folder per load). Bounded by the summed ``saved_model.pb`` sizes
of the remembered files (least recently used forgotten first) and by entries.
Entries of one architecture key share one :class:`Program` (the canonical
functions, the bulk of an entry): thousands of sites of one architecture
keep one copy of it, plus their variables' roles each.

New files are read with the cache's :class:`~models.site.known_functions.KnownFunctions`:
a site of an architecture read before matches that architecture's functions
(same key, variables and program as a full read) instead of canonicalizing
them again, about a third of the key work of a small Keras model.

Error policy: a file that cannot be ``stat``-ed is not remembered; reading
it raises as :func:`~models.site.architecture_key.read_architecture` does.
"""
import collections
import os
import threading
from typing import Dict, Optional, Tuple, Union

from models.site.architecture_key import Architecture
from models.site.architecture_key import NotShareable
from models.site.architecture_key import Program
from models.site.architecture_key import read_architecture
from models.site.known_functions import KnownFunctions
from models.site.layout import SAVED_MODEL_FILE

DEFAULT_MAX_BYTES = 64 << 20
DEFAULT_MAX_ENTRIES = 20_000

Identity = Tuple[str, int, int, int, int, str]


def file_identity(model_dir: str, signature_name: str) -> Optional[Identity]:
  """``(path, device, inode, size, mtime_ns, signature)`` of the local ``saved_model.pb``."""
  path = os.path.join(model_dir, SAVED_MODEL_FILE)
  try:
    stat = os.stat(path)
  except OSError:
    return None
  return (path, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, signature_name)


class ArchitectureCache:
  """Thread-safe LRU of :func:`read_architecture` outcomes by file identity."""

  def __init__(self, *, max_bytes: int = DEFAULT_MAX_BYTES, max_entries: int = DEFAULT_MAX_ENTRIES):
    self._max_bytes = max_bytes
    self._max_entries = max_entries
    self._entries: 'collections.OrderedDict[Identity, Union[Architecture, NotShareable]]' = (
        collections.OrderedDict())
    self._bytes = 0
    self._programs: Dict[str, Program] = {}  # key -> the one Program its entries share
    self._holders: Dict[str, int] = {}  # key -> entries holding it
    self._lock = threading.Lock()
    self.hits = 0
    self.known = KnownFunctions()  # templates: new files of known architectures match them

  @property
  def size(self) -> int:
    return len(self._entries)

  def read(self, model_dir: str, signature_name: str) -> Architecture:
    """:func:`read_architecture`, from memory when this file was read before.

    Raises:
      NotShareable: as :func:`read_architecture` (remembered, too).
    """
    identity = file_identity(model_dir, signature_name)
    if identity is None:
      return read_architecture(model_dir, signature_name, known=self.known)
    with self._lock:
      found = self._entries.get(identity)
      if found is not None:
        self._entries.move_to_end(identity)
        self.hits += 1
    if found is None:
      try:
        found = read_architecture(model_dir, signature_name, known=self.known)
      except NotShareable as e:
        found = e
      self._remember(identity, found)
    if isinstance(found, NotShareable):
      raise NotShareable(str(found))
    return found

  def _remember(self, identity: Identity, outcome: Union[Architecture, NotShareable]) -> None:
    size = identity[3]
    if size > self._max_bytes:
      return
    with self._lock:
      if identity in self._entries:
        return
      if isinstance(outcome, Architecture):
        outcome = outcome._replace(program=self._programs.setdefault(outcome.key, outcome.program))
        self._holders[outcome.key] = self._holders.get(outcome.key, 0) + 1
      self._entries[identity] = outcome
      self._bytes += size
      while self._bytes > self._max_bytes or len(self._entries) > self._max_entries:
        forgotten_identity, forgotten = self._entries.popitem(last=False)
        self._bytes -= forgotten_identity[3]
        if isinstance(forgotten, Architecture):
          self._forget_program(forgotten.key)

  def _forget_program(self, key: str) -> None:
    """Drops the shared Program of ``key`` once no entry holds that key (lock held)."""
    self._holders[key] -= 1
    if not self._holders[key]:
      del self._holders[key]
      del self._programs[key]
