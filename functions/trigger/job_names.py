"""Deterministic Dataflow job names: a redelivered event maps to the same name.

Dataflow names match ``[a-z]([-a-z0-9]{0,1022}[a-z0-9])?`` and must be unique
among active jobs (a second launch gets 409 ALREADY_EXISTS).
"""
import hashlib
import re

_VALID = re.compile(r'^[a-z]([-a-z0-9]{0,1022}[a-z0-9])?$')
_MAX_PART = 60


def slug(text: str) -> str:
  """Lower-case letters, digits and single dashes; long text keeps a hash of the whole."""
  cleaned = re.sub(r'-+', '-', re.sub(r'[^a-z0-9]', '-', text.lower())).strip('-')
  if len(cleaned) > _MAX_PART:
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    cleaned = cleaned[:_MAX_PART - 9].rstrip('-') + '-' + digest
  return cleaned or hashlib.sha1(text.encode()).hexdigest()[:8]


def job_name(*parts: str) -> str:
  name = '-'.join(slug(p) for p in parts if p)
  if not name[0].isalpha():
    name = 'j-' + name
  if not _VALID.match(name):
    raise ValueError(f'cannot build a Dataflow job name from {parts!r}')
  return name


def is_valid(name: str) -> bool:
  return bool(_VALID.match(name))
