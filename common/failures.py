"""The one failure vocabulary of both jobs: stages, reason codes, and the exception carrying them.

Every input record that produces no output becomes one dead letter
``{"stage", "reason", "message", "site_id", "source", "record"}``
(:mod:`transforms.dead_letters`). ``stage`` says which step refused it, with
the same names in both jobs; ``reason`` is a short, stable machine code
(counted in ``summary.json`` and as the Beam counter
``dead_letters/<reason>``); ``message`` is for people and may change.

Code that finds a permanent problem with one record (or one site's model,
which fails that site's records) raises :class:`RecordFailure`; the DoFn that
owns the record turns it into a dead letter. Problems a retry can fix (I/O
timeouts, 5xx) are never a RecordFailure: they propagate and the runner
retries.
"""
from typing import Any

# Stages: where a record was refused.
PARSE = 'parse'  # the record is not a usable instance (either job: its bytes)
KEY_BY_SITE = 'key_by_site'  # no usable site for the record
DECODE = 'decode'  # an image that cannot be decoded
PREDICT = 'predict'  # the model step: locating, loading or running the model
ANNOTATE = 'annotate'  # drawing or writing an annotated copy
WRITE_BIGQUERY = 'write_bigquery'  # BigQuery refused the output row

# Reasons: reading and parsing records.
BAD_ENCODING = 'bad_encoding'
EMPTY_LINE = 'empty_line'
BAD_JSON = 'bad_json'
NOT_AN_OBJECT = 'not_an_object'
BAD_VALUE = 'bad_value'
LINE_TOO_LONG = 'line_too_long'
BAD_CSV = 'bad_csv'
BAD_CSV_HEADER = 'bad_csv_header'
BAD_TFRECORD = 'bad_tfrecord'
BAD_FILE = 'bad_file'
# Reasons: sites and their models.
MISSING_SITE = 'missing_site'
BAD_SITE = 'bad_site'
NO_MODEL = 'no_model'
MODEL_LOAD_FAILED = 'model_load_failed'
MISSING_FEATURE = 'missing_feature'
BAD_FEATURE = 'bad_feature'
INFERENCE_FAILED = 'inference_failed'
NON_FINITE_OUTPUT = 'non_finite_output'
# Reasons: images.
EMPTY_FILE = 'empty_file'
DECODE_FAILED = 'decode_failed'
IMAGE_TOO_LARGE = 'image_too_large'
NOT_FOUND = 'not_found'
ANNOTATE_FAILED = 'annotate_failed'
# Reasons: outputs.
BIGQUERY_REJECTED = 'bigquery_rejected'

NO_RECORD = object()
"""``record`` of a failure raised before the record is at hand (the catcher adds it)."""


class RecordFailure(ValueError):
  """A permanent failure of one record (or of every record of one site's model).

  Attributes:
    stage: one of the stage names above.
    reason: one of the reason codes above.
    message: what happened, for people.
    record: the record as it should appear in the dead letter, or
      :data:`NO_RECORD` when the code that catches the failure holds it.
  """

  def __init__(self, stage: str, reason: str, message: str, record: Any = NO_RECORD):
    super().__init__(message)
    self.stage = stage
    self.reason = reason
    self.message = message
    self.record = record
