"""GCS finalize events: parsing, and deciding what (if anything) an event asks for.

GCS delivers ``google.cloud.storage.object.v1.finalized`` at least once, also
for overwrites, with ``generation``/``size`` as strings; the trigger filters
by bucket only, so prefixes are filtered here; outputs and launch records are
never watched.
"""
from typing import Any, Mapping, NamedTuple, Optional

from trigger_config import TriggerConfig

FINALIZED = 'google.cloud.storage.object.v1.finalized'
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png')


class MalformedEvent(ValueError):
  """The event lacks what a GCS finalize event has."""


class ObjectEvent(NamedTuple):
  bucket: str
  name: str
  generation: str
  size: int
  event_id: str

  @property
  def uri(self) -> str:
    return f'gs://{self.bucket}/{self.name}'


def parse(event_type: str, event_id: str, data: Any) -> ObjectEvent:
  if event_type != FINALIZED:
    raise MalformedEvent(f'unexpected event type {event_type!r}')
  if not isinstance(data, Mapping):
    raise MalformedEvent('event data is not a JSON object')
  bucket, name = data.get('bucket'), data.get('name')
  if not isinstance(bucket, str) or not bucket or not isinstance(name, str) or not name:
    raise MalformedEvent('event data lacks bucket or name')
  try:
    (bucket + name).encode('utf-8')
  except UnicodeEncodeError as e:
    raise MalformedEvent('event bucket or name is not valid Unicode') from e
  generation = str(data.get('generation') or '')
  if not (generation.isascii() and generation.isdigit()):
    raise MalformedEvent(f'event generation {generation!r} is not a number')
  try:
    size = int(data.get('size') or 0)
  except (TypeError, ValueError) as e:
    raise MalformedEvent(f'event size {data.get("size")!r} is not a number') from e
  return ObjectEvent(bucket, name, generation, size, event_id)


class Route(NamedTuple):
  """``kind`` is "trigger_file", "upload" or "ignore"; ``why`` says which rule decided."""
  kind: str
  why: str
  prefix: Optional[str] = None


def _under(uri: Optional[str], event: ObjectEvent) -> bool:
  return bool(uri) and (event.uri + '/').startswith(uri.rstrip('/') + '/')


def route(event: ObjectEvent, config: TriggerConfig) -> Route:
  """Which mode the object belongs to; everything else is acknowledged and ignored."""
  if config.allowed_buckets and event.bucket not in config.allowed_buckets:
    return Route('ignore', f'bucket {event.bucket} is not watched')
  if _under(config.output_root, event) or _under(config.processed_root, event):
    return Route('ignore', 'object is an output of ours')
  if (event.bucket == (config.state_bucket or event.bucket)
      and event.name.startswith(config.state_prefix)):
    return Route('ignore', 'object is a launch record of ours')
  if event.name.endswith('/'):
    return Route('ignore', 'folder placeholder')
  if event.name.startswith(config.trigger_prefix):
    if event.name.lower().endswith('.json'):
      return Route('trigger_file', 'trigger file', config.trigger_prefix)
    return Route('ignore', 'not a .json trigger file')
  for prefix in config.upload_prefixes:
    if event.name.startswith(prefix):
      if event.name.lower().endswith(IMAGE_SUFFIXES):
        return Route('upload', 'image upload', prefix)
      return Route('ignore', 'not an image')
  return Route('ignore', 'outside the watched prefixes')
