"""TFRecord files of ``tf.train.Example`` -> ``(file name, row dict)`` records, plus dead letters.

Each file is read start to end (TFRecord framing is not splittable; Beam's
own TFRecord source does not split either), checking the framing's CRC32C
checksums, so one corrupt record becomes a dead letter instead of failing
the job. Compressed files (``.gz``, Vertex's ``tf-record-gzip``) are
decompressed by extension or as ``compression`` says. Each record is parsed
with TF's protobuf class ``tf.train.Example``; its features become the row,
by name, in sorted name order:

* ``int64_list`` -> ints; ``float_list`` -> floats; ``bytes_list`` -> UTF-8
  text, or ``{"b64": ...}`` for bytes that are not UTF-8 (the AI Platform
  convention string inputs accept).
* One value -> a scalar; several -> a list (a ``[None, k]`` input with
  k > 1 gets its list); no value (an empty list, or no kind) -> null (a
  missing feature). So a variable-length ``[None, None]`` input cannot get a
  one-value list from TFRecord: use JSON-lines for those rows.
* Floats are float32 in TFRecord and become the Python floats holding those
  float32 values exactly (``0.10000000149011612`` for a stored ``0.1``), as
  TF's own parsing would feed them: a float32 input gets exactly the stored
  value, the same as a JSON-lines row holding a decimal of that float32
  (``0.1``), and a float64 input the float32 value widened. The echoed
  instance shows the exact value (a shortest-decimal rewrite would cost
  about 7 us per value).

Dead letters (stage ``parse``; ``record``: base64 of the record's bytes):

* ``bad_tfrecord``: a record that is not a ``tf.train.Example`` (protobuf
  error, or fields Example does not have, as in a ``SequenceExample``), or
  whose data checksum fails; a broken length header or a truncated record
  ends the file's reading: the rest of the file is one dead letter (its
  record: base64 of at most its first 1 MiB).
* ``bad_value``: a float feature holding NaN or infinity (JSON outputs
  cannot carry them).
* ``bad_file`` (no record): a compressed file that stops decompressing.

Models whose signature parses serialized Examples itself (a ``tf.string``
input fed to ``tf.io.parse_example``, as TFX and Estimator exports have):
with ``serialized_field`` each row also carries its record, as ``{"b64":
...}``, under that name, which the signature's string input takes; the
parsed features still give the site (and key) fields.
"""
import base64
import math
import struct
from typing import Any, BinaryIO, Dict, Iterator, List, Optional, Union

import apache_beam as beam
import google_crc32c
from google.protobuf import message as protobuf_message
from google.protobuf import unknown_fields

from common import tensorflow_import
from common.failures import PARSE
from common.failures import RecordFailure
from transforms.dead_letters import failure_letter
from transforms.dead_letters import FAILED
from transforms.dead_letters import failed
from transforms.site.file_streams import DECOMPRESSION_ERRORS
from transforms.site.file_streams import MatchAndOpen
from transforms.site.file_streams import bad_file
from transforms.site.file_streams import open_binary
from transforms.site.instances import Record

_HEADER = struct.Struct('<QI')  # data length, masked CRC32C of the length
_CRC = struct.Struct('<I')
_MAX_SHOWN_TAIL = 1 << 20
_DRAIN_CHUNK = 8 << 20


def masked_crc32c(data: bytes) -> int:
  """The TFRecord checksum: CRC32C rotated right by 15 bits plus a constant."""
  crc = google_crc32c.value(data)
  return (((crc >> 15) | (crc << 17)) + 0xa282ead8) & 0xffffffff


def _b64(data: bytes) -> str:
  return base64.b64encode(data).decode('ascii')


def _frames(stream: BinaryIO) -> Iterator[Union[bytes, RecordFailure]]:
  """Each record's data, or a RecordFailure for a broken frame (after a broken
  header or a truncated record, nothing more is read)."""
  offset = 0
  while True:
    header = stream.read(_HEADER.size)
    if not header:
      return
    if len(header) == _HEADER.size:
      length, length_crc = _HEADER.unpack(header)
      if masked_crc32c(header[:8]) == length_crc:
        data = stream.read(length)
        crc = stream.read(_CRC.size)
        if len(data) == length and len(crc) == _CRC.size:
          if masked_crc32c(data) == _CRC.unpack(crc)[0]:
            yield data
          else:
            yield RecordFailure(PARSE, 'bad_tfrecord',
                                f'record at byte {offset}: data checksum mismatch', _b64(data))
          offset += _HEADER.size + length + _CRC.size
          continue
        yield _rest(header + data + crc, stream, offset, 'the file ends inside the record')
        return
    yield _rest(header, stream, offset, 'broken record header (not TFRecord framing)')
    return


def _rest(read: bytes, stream: BinaryIO, offset: int, problem: str) -> RecordFailure:
  """The unreadable rest of a file as one RecordFailure, reading (not keeping) it to its end."""
  total = len(read)
  if total < _MAX_SHOWN_TAIL:
    more = stream.read(_MAX_SHOWN_TAIL - total)
    read, total = read + more, total + len(more)
  shown = read[:_MAX_SHOWN_TAIL]
  while True:
    chunk = stream.read(_DRAIN_CHUNK)
    if not chunk:
      break
    total += len(chunk)
  cut = f', first {len(shown)} shown' if total > len(shown) else ''
  return RecordFailure(
      PARSE, 'bad_tfrecord', f'at byte {offset}: {problem}; the remaining {total} bytes are '
      f'skipped{cut}', _b64(shown))


def _float_values(name: str, values, data: bytes) -> List[float]:
  values = list(values)  # Python floats holding the float32 values exactly
  if not all(map(math.isfinite, values)):
    raise RecordFailure(
        PARSE, 'bad_value', f'feature {name!r} holds NaN or infinity, which JSON outputs '
        'cannot carry', _b64(data))
  return values


def _text_or_b64(value: bytes) -> Union[str, Dict[str, str]]:
  try:
    return value.decode('utf-8')
  except UnicodeDecodeError:
    return {'b64': _b64(value)}


def _example_pb2():
  """TensorFlow's ``example_pb2``, imported on the first record (TensorFlow without Keras:
  :mod:`common.tensorflow_import`), so that building a pipeline does not import it."""
  tensorflow_import.import_without_keras()
  from tensorflow.core.example import example_pb2  # pylint: disable=import-outside-toplevel
  return example_pb2


def example_row(data: bytes, *, serialized_field: Optional[str] = None) -> Dict[str, Any]:
  """One serialized ``tf.train.Example`` as a row dict (see the module doc).

  Args:
    data: the record.
    serialized_field: also keep the record itself, as ``{"b64": ...}``, in
      this field (it replaces a feature of that name).

  Raises:
    RecordFailure: ``bad_tfrecord`` (not an Example) or ``bad_value`` (NaN).
  """
  try:
    example = _example_pb2().Example.FromString(data)
  except protobuf_message.DecodeError as e:
    raise RecordFailure(PARSE, 'bad_tfrecord', f'not a tf.train.Example: {e}', _b64(data)) from e
  if len(unknown_fields.UnknownFieldSet(example)):
    raise RecordFailure(
        PARSE, 'bad_tfrecord', 'not a tf.train.Example (it has fields Example does not; '
        'a SequenceExample?)', _b64(data))
  row: Dict[str, Any] = {}
  for name, feature in sorted(example.features.feature.items()):
    kind = feature.WhichOneof('kind')
    if kind == 'int64_list':
      values: List[Any] = list(feature.int64_list.value)
    elif kind == 'float_list':
      values = _float_values(name, feature.float_list.value, data)
    elif kind == 'bytes_list':
      values = [_text_or_b64(v) for v in feature.bytes_list.value]
    else:
      values = []
    row[name] = None if not values else values[0] if len(values) == 1 else values
  if serialized_field is not None:
    row[serialized_field] = {'b64': _b64(data)}
  return row


def tfrecord_records(
    source: str,
    stream: BinaryIO,
    *,
    serialized_field: Optional[str] = None) -> Iterator[Union[Record, beam.pvalue.TaggedOutput]]:
  """One TFRecord file's rows as ``(source, row)``, its dead letters on :data:`FAILED`.

  Args:
    source: the file's name, kept with every row and dead letter.
    stream: the file's (decompressed) bytes, read to the end; not closed here.
    serialized_field: see :func:`example_row`.
  """
  for frame in _frames(stream):
    try:
      if isinstance(frame, RecordFailure):
        raise frame
      row = example_row(frame, serialized_field=serialized_field)
    except RecordFailure as e:
      yield failed(failure_letter(e, source))
      continue
    yield source, row


class _ReadTfRecordFileFn(beam.DoFn):
  """``ReadableFile -> (file name, row)``, dead letters on :data:`FAILED`."""

  def __init__(self, serialized_field: Optional[str]):
    self._serialized_field = serialized_field

  def process(self, readable_file):
    path = readable_file.metadata.path
    try:
      with open_binary(readable_file) as stream:
        yield from tfrecord_records(path, stream, serialized_field=self._serialized_field)
    except DECOMPRESSION_ERRORS as e:
      yield bad_file(path, e)


class ReadTfRecordRows(beam.PTransform):
  """``PBegin -> (file name, row dict)`` on ``rows``, dead letters on ``failed``.

  ``patterns``: one file pattern or a list (local, gs://); ``compression``:
  a Beam ``CompressionTypes`` value (default: by extension);
  ``serialized_field``: also keep each record, as ``{"b64": ...}``, in this
  field (for signatures that parse serialized Examples themselves). Every
  record of every file is in exactly one output.
  """

  def __init__(self,
               patterns,
               *,
               compression: Optional[str] = None,
               serialized_field: Optional[str] = None):
    super().__init__()
    self._patterns = patterns
    self._compression = compression
    self._serialized_field = serialized_field

  def expand(self, pbegin):
    return (pbegin
            | 'MatchAndOpen' >> MatchAndOpen(self._patterns, compression=self._compression)
            | 'ParseExamples' >> beam.ParDo(_ReadTfRecordFileFn(
                self._serialized_field)).with_outputs(FAILED, main='rows'))
