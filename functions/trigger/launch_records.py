"""Launch records: one GCS object per event, so an event launches at most once, ever.

Dataflow job names are unique only among *active* jobs, and GCS delivers an
event at least once (hours later, too), so a name alone cannot stop a second
run after the first has finished. Before launching, the function creates::

  gs://<STATE_BUCKET or the event's bucket>/<STATE_PREFIX>launches/<job name>/
      <object generation>-<sha256("<bucket>/<object>")[:16]>.json

with ``ifGenerationMatch=0`` (create only if absent). Content, one JSON object::

  {"state": "launching" | "launched", "event": "gs://b/triggers/a.json",
   "bucket": ..., "object": ..., "generation": "...", "event_id": ...,
   "job": ..., "job_name": ..., "job_id": ... | null, "attempt": 1,
   "claimed_at": <unix seconds>, "launched_at": <unix seconds> | null}

- created (HTTP 200): this delivery owns the launch (``Claim``);
- 412 Precondition Failed: another delivery created it. ``launched`` means
  the event already launched (a duplicate). ``launching`` younger than the
  claim timeout means a delivery is launching right now (retry later); older
  means that delivery died between claim and launch: the record is taken over
  (rewritten with ``ifGenerationMatch=<its generation>``, so one delivery
  wins) and the launch is tried again; Dataflow's 409 covers a job that did
  start and is still active.

After the launch call the owner marks the record ``launched``, or deletes it
when the launch failed, so that GCS's retry of the event can launch.
"""
import hashlib
import json
import time
from typing import Any, Dict, NamedTuple, Optional

from google.api_core import exceptions as api_exceptions

_CREATE_TRIES = 3


class Claim(NamedTuple):
  """A record this delivery owns: ``uri`` of the object and its ``generation``."""
  uri: str
  blob_name: str
  generation: int
  record: Dict[str, Any]


class Taken(NamedTuple):
  """A record another delivery owns; ``record`` is its content."""
  uri: str
  record: Dict[str, Any]


class InFlight(RuntimeError):
  """Another delivery of the event is launching it now."""


def record_name(prefix: str, job_name: str, bucket: str, name: str, generation: str) -> str:
  digest = hashlib.sha256(f'{bucket}/{name}'.encode('utf-8')).hexdigest()[:16]
  return f'{prefix}launches/{job_name}/{generation}-{digest}.json'


def _encode(record: Dict[str, Any]) -> bytes:
  return json.dumps(record, sort_keys=True, allow_nan=False).encode('utf-8')


class LaunchRecords:
  """Claims, marks and releases the records in one bucket.

  Args:
    bucket: a ``google.cloud.storage.Bucket``.
    prefix: the state prefix, ``/``-terminated.
    claim_timeout_s: age after which a ``launching`` record counts as abandoned.
  """

  def __init__(self, bucket, prefix: str, *, claim_timeout_s: float):
    self._bucket = bucket
    self._prefix = prefix
    self._claim_timeout_s = claim_timeout_s

  def claim(self, *, event, job: str, job_name: str, now: Optional[float] = None):
    """``Claim`` or ``Taken``; raises InFlight, or the storage error (retry)."""
    now = time.time() if now is None else now
    name = record_name(self._prefix, job_name, event.bucket, event.name, event.generation)
    uri = f'gs://{self._bucket.name}/{name}'
    record = {
        'state': 'launching',
        'event': event.uri,
        'bucket': event.bucket,
        'object': event.name,
        'generation': event.generation,
        'event_id': event.event_id,
        'job': job,
        'job_name': job_name,
        'job_id': None,
        'attempt': 1,
        'claimed_at': round(now, 3),
        'launched_at': None
    }
    for _ in range(_CREATE_TRIES):
      blob = self._bucket.blob(name)
      try:
        blob.upload_from_string(_encode(record),
                                content_type='application/json',
                                if_generation_match=0)
        return Claim(uri, name, blob.generation, record)
      except api_exceptions.PreconditionFailed:
        pass
      existing, generation = self._read(name)
      if existing is None:
        continue  # released between our create and read: try to create again
      if existing.get('state') != 'launching':
        return Taken(uri, existing)
      age = now - float(existing.get('claimed_at') or 0)
      if age < self._claim_timeout_s:
        raise InFlight(f'{uri} was claimed {age:.0f} s ago by another delivery')
      record['attempt'] = int(existing.get('attempt') or 1) + 1
      blob = self._bucket.blob(name)
      try:
        blob.upload_from_string(_encode(record),
                                content_type='application/json',
                                if_generation_match=generation)
        return Claim(uri, name, blob.generation, record)
      except api_exceptions.PreconditionFailed as e:
        raise InFlight(f'{uri} was taken over by another delivery') from e
    raise InFlight(f'{uri} keeps changing under this delivery')

  def _read(self, name: str):
    """``(record, generation)`` or ``(None, None)`` if the object is gone."""
    blob = self._bucket.blob(name)
    try:
      blob.reload()
      content = self._bucket.blob(name, generation=blob.generation).download_as_bytes()
    except api_exceptions.NotFound:
      return None, None
    try:
      record = json.loads(content)
    except ValueError:
      record = None
    if not isinstance(record, dict):
      # Not ours to interpret; an abandoned claim is the safe reading.
      record = {'state': 'launching', 'claimed_at': 0}
    return record, blob.generation

  def mark_launched(self,
                    claim: Claim,
                    *,
                    job_id: Optional[str],
                    now: Optional[float] = None,
                    note: Optional[str] = None) -> None:
    """Rewrites the claimed record as ``launched``; raises the storage error."""
    record = dict(claim.record,
                  state='launched',
                  job_id=job_id or None,
                  launched_at=round(time.time() if now is None else now, 3))
    if note:
      record['note'] = note
    self._bucket.blob(claim.blob_name).upload_from_string(_encode(record),
                                                          content_type='application/json',
                                                          if_generation_match=claim.generation)

  def release(self, claim: Claim) -> None:
    """Deletes the claimed record (the launch failed); a gone record is fine."""
    try:
      self._bucket.blob(claim.blob_name).delete(if_generation_match=claim.generation)
    except (api_exceptions.NotFound, api_exceptions.PreconditionFailed):
      pass
