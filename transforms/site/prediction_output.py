"""Writing predictions as JSON-lines: our default layout or AI Platform's.

``jsonl`` (default)::

  <output>/predictions/predictions-SSSSS-of-NNNNN.jsonl
  {"site_id": ..., "key": ... (with --key_field), "model_version": "3",
   "instance": {...}, "prediction": {...}}

``model_version`` is the version folder the site's model was loaded from
(``{model_root}/{site}/{version}/``), null for a site whose SavedModel sits
directly in ``{model_root}/{site}/``.

``aiplatform`` (drop-in for legacy batch prediction consumers)::

  <output>/prediction.results-SSSSS-of-NNNNN       {output_name: value, ...}
  <output>/prediction.errors_stats-SSSSS-of-NNNNN  ('reason: message', count)

The legacy service counted failed *batches* in errors_stats; we count failed
*instances*, and every failed instance is also in ``errors/`` in full. The
results lines stay as the legacy service wrote them (only the outputs, no
model version): the version of each site is in ``sites/sites-*.jsonl`` and
``summary.json`` lists the flags and model root of the run.

Every line is strict JSON. Model outputs are finite (a row whose outputs are
not is a ``non_finite_output`` dead letter before it gets here), and so are
the fed features of the echoed instance (``bad_feature`` otherwise). Other
fields of the instance are echoed as they came, except that a non-finite
float (``NaN`` in an input line, a BigQuery FLOAT64 NaN) is written as the
string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``.
"""
import itertools
from json.encoder import encode_basestring_ascii
from typing import Any, Callable, Dict, List, Optional, Sequence

import apache_beam as beam

from common import paths
from transforms import json_lines
from transforms.site.predictions import Prediction
from transforms.site.predictions import batches_of

JSONL = 'jsonl'
AIPLATFORM = 'aiplatform'
OUTPUT_FORMATS = (JSONL, AIPLATFORM)


def prediction_line(prediction: Prediction, key_field: Optional[str]) -> Dict[str, Any]:
  """The default output record: ``{"site_id", "key"?, "model_version", "instance", "prediction"}``.

  ``key`` only when ``key_field`` is given and the instance has that field.
  """
  line: Dict[str, Any] = {'site_id': prediction.site_id}
  if key_field and key_field in prediction.instance:
    line['key'] = prediction.instance[key_field]
  line['model_version'] = prediction.model_version
  line['instance'] = prediction.instance
  line['prediction'] = prediction.outputs
  return line


def encode_predictions(batch: Sequence[Prediction], key_field: Optional[str]) -> str:
  """A chunk's prediction lines, as one newline-joined text (written as it is).

  Each line is the record of :func:`prediction_line`, in its field order,
  put together from its fields' JSON: the instance's text as it came
  (``instance_text``) and the outputs' text made with them
  (``outputs_text``) where a prediction carries them, else encoded here.
  Read a column at a time (:func:`transforms.site.inference.batches_of`).
  """
  encode = json_lines.encoder(non_finite=json_lines.AS_STRING)
  lines: List[str] = []
  for part in batches_of(batch):
    head = f'{{"site_id":{encode(part.site_id)}'
    middle = f',"model_version":{encode(part.model_version)},"instance":'
    instances = part.instances
    keys = _key_texts(instances, key_field, encode) if key_field else itertools.repeat('')
    lines.extend([
        f'{head}{key}{middle}{instance},"prediction":{outputs}}}'
        for key, instance, outputs in zip(keys, _texts(instances, part.instance_texts, encode),
                                          _texts(part.outputs, part.outputs_texts, encode))
    ])
  return '\n'.join(lines)


def _key_texts(instances: List[Dict[str, Any]], key_field: str, encode: Callable[[Any],
                                                                                 str]) -> List[str]:
  """Each instance's ``,"key":...`` part ('' without the field). A string key (the usual
  one) is escaped as the encoder escapes strings, without its Python-level calls."""
  absent = object()
  return [
      ',"key":' + (encode_basestring_ascii(key) if type(key) is str else encode(key))  # pylint: disable=unidiomatic-typecheck
      if (key := instance.get(key_field, absent)) is not absent else '' for instance in instances
  ]


def _texts(values: List[Any], texts: Optional[List[Optional[str]]],
           encode: Callable[[Any], str]) -> List[str]:
  """Each value's JSON: its text where one came with it, else encoded."""
  if texts is None:
    return list(map(encode, values))
  if None not in texts:
    return texts
  return [encode(value) if text is None else text for value, text in zip(values, texts)]


def encode_aiplatform_results(batch: Sequence[Prediction]) -> str:
  """A chunk's ``{output_name: value}`` lines, newline-joined."""
  encode = json_lines.encoder(non_finite=json_lines.AS_STRING)
  return '\n'.join(text for part in batches_of(batch)
                   for text in _texts(part.outputs, part.outputs_texts, encode))


def error_stats_key(letter: Dict[str, Any]) -> str:
  return f"{letter['reason']}: {letter['message']}"


def encode_error_stat(message_and_count) -> str:
  # The legacy service's format: Python tuple text.
  return repr(tuple(message_and_count))


class WritePredictions(beam.PTransform):
  """Prediction batches (lists of Prediction) -> committed file names, in the chosen format.

  Each batch is encoded as one text of newline-separated lines, so the text
  sink does one write per chunk, not per row.
  """

  def __init__(self,
               output_dir: str,
               *,
               output_format: str = JSONL,
               key_field: Optional[str] = None):
    super().__init__()
    if output_format not in OUTPUT_FORMATS:
      raise ValueError(f'output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}')
    self._output_dir = output_dir
    self._format = output_format
    self._key_field = key_field

  def expand(self, predictions):
    if self._format == AIPLATFORM:
      return (predictions
              | 'Encode' >> beam.Map(encode_aiplatform_results)
              | 'Write' >> beam.io.WriteToText(paths.join(self._output_dir, 'prediction.results')))
    return (
        predictions
        | 'Encode' >> beam.Map(encode_predictions, self._key_field)
        | 'Write' >> beam.io.WriteToText(paths.join(self._output_dir, 'predictions', 'predictions'),
                                         file_name_suffix='.jsonl'))


class WriteErrorStats(beam.PTransform):
  """Dead letters -> ``prediction.errors_stats-*`` lines ``('reason: message', count)``."""

  def __init__(self, output_dir: str):
    super().__init__()
    self._output_dir = output_dir

  def expand(self, letters):
    return (letters
            | 'Message' >> beam.Map(error_stats_key)
            | 'Count' >> beam.combiners.Count.PerElement()
            | 'Encode' >> beam.Map(encode_error_stat)
            |
            'Write' >> beam.io.WriteToText(paths.join(self._output_dir, 'prediction.errors_stats')))
