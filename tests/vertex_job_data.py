"""Instances written the way users write them, as JSON-lines, CSV and TFRecord, and job runs.

Writers take rows as dicts of plain values (str, int, float, lists of them)
and write each format with its usual tool: ``json.dumps``, Python's ``csv``
writer (lists as JSON arrays in a cell, floats as their repr), TF's own
``TFRecordWriter`` of ``tf.train.Example`` (ints int64, floats float32,
text UTF-8 bytes).
"""
import csv
import functools
import gzip
import io
import json
import pathlib
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from beam_jobs import site_predictions
from tests_support import assert_outputs_equal  # pylint: disable=unused-import
from tests_support import read_jsonl

FORMATS = ('jsonl', 'csv', 'tfrecord')
EXTENSIONS = {'jsonl': '.jsonl', 'csv': '.csv', 'tfrecord': '.tfrecord'}


def jsonl_bytes(rows: Iterable[Dict[str, Any]], *, crlf: bool = False, bom: bool = False) -> bytes:
  end = b'\r\n' if crlf else b'\n'
  return (b'\xef\xbb\xbf' if bom else b'') + b''.join(
      json.dumps(row).encode() + end for row in rows)


def _cell(value: Any) -> str:
  if value is None:
    return ''
  if isinstance(value, list):
    return json.dumps(value)
  if isinstance(value, float):
    return repr(value)
  return str(value)


def fields_of(rows: Iterable[Dict[str, Any]]) -> List[str]:
  """Every field of the rows, in first-seen order (a CSV header)."""
  fields: Dict[str, None] = {}
  for row in rows:
    fields.update(dict.fromkeys(row))
  return list(fields)


def csv_text(rows: Sequence[Dict[str, Any]],
             *,
             fields: Optional[Sequence[str]] = None,
             crlf: bool = True) -> str:
  """The rows as a CSV file's text: a header, then one record per row
  (absent fields are empty cells)."""
  out = io.StringIO(newline='')
  writer = csv.writer(out, lineterminator='\r\n' if crlf else '\n')
  fields = list(fields) if fields is not None else fields_of(rows)
  writer.writerow(fields)
  for row in rows:
    writer.writerow([_cell(row.get(name)) for name in fields])
  return out.getvalue()


def csv_bytes(rows, *, bom: bool = True, **options) -> bytes:
  return (b'\xef\xbb\xbf' if bom else b'') + csv_text(rows, **options).encode('utf-8')


def _feature(value: Any) -> tf.train.Feature:
  values = value if isinstance(value, list) else [value]
  if all(isinstance(v, str) for v in values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))
  if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
  return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def example_bytes(row: Dict[str, Any]) -> bytes:
  """One row as a serialized ``tf.train.Example`` (absent fields have no feature)."""
  feature = {name: _feature(value) for name, value in row.items() if value is not None}
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_tfrecord(path: pathlib.Path, records: Iterable[bytes], *, gzipped: bool = False):
  options = tf.io.TFRecordOptions(compression_type='GZIP' if gzipped else '')
  with tf.io.TFRecordWriter(str(path), options) as writer:
    for record in records:
      writer.write(record)


def write_rows(folder: pathlib.Path,
               fmt: str,
               rows: Sequence[Dict[str, Any]],
               name: str = 'rows') -> pathlib.Path:
  """``rows`` as one file of format ``fmt`` in ``folder``; its path."""
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / (name + EXTENSIONS[fmt])
  if fmt == 'jsonl':
    path.write_bytes(jsonl_bytes(rows))
  elif fmt == 'csv':
    path.write_bytes(csv_bytes(rows))
  else:
    write_tfrecord(path, [example_bytes(row) for row in rows])
  return path


def gzip_file(path: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
  target.write_bytes(gzip.compress(path.read_bytes()))
  return target


def run_job(input_path, model_root, output: pathlib.Path, *flags: str) -> Dict[str, Any]:
  """Runs the job locally (failures allowed); returns its outputs (see :func:`outputs`)."""
  site_predictions.run([
      f'--input={input_path}', f'--model_root={model_root}', f'--output={output}',
      '--key_field=rid', '--max_failed_fraction=1', *flags
  ])
  return outputs(output)


def outputs(output: pathlib.Path) -> Dict[str, Any]:
  """``{"predictions": [...], "errors": [...], "sites": {site: line}, "summary": {...}}``."""
  found = {'predictions': [], 'errors': []}
  for name in found:
    if (output / name).exists():
      found[name] = read_jsonl(output / name)
  found['sites'] = {line['site_id']: line for line in read_jsonl(output / 'sites')}
  found['summary'] = json.loads((output / 'summary.json').read_text())
  return found


def outcomes(found: Dict[str, Any]) -> Dict[str, Tuple[str, Any]]:
  """``rid -> ("predicted", prediction)`` or ``(reason, None)``, every rid once."""
  seen: Dict[str, Tuple[str, Any]] = {}
  for line in found['predictions']:
    assert line['key'] not in seen, line
    seen[line['key']] = ('predicted', line['prediction'])
  for letter in found['errors']:
    rid = letter['record']['rid']
    assert rid not in seen, letter
    seen[rid] = (letter['reason'], None)
  return seen


@functools.lru_cache(maxsize=None)
def _loaded(model_dir: str):
  return tf.saved_model.load(model_dir)


def direct(model_dir: str, row: Dict[str, Any]) -> Dict[str, Any]:
  """The SavedModel's outputs for one row, from its own signature (no job code)."""
  fn = _loaded(model_dir).signatures['serving_default']
  _, specs = fn.structured_input_signature
  args = {}
  for name, spec in specs.items():
    value = row[name]
    if spec.dtype == tf.string:
      args[name] = tf.constant([value.encode() if isinstance(value, str) else value])
    else:
      args[name] = tf.constant(np.asarray([value], spec.dtype.as_numpy_dtype))
  return {name: value.numpy()[0] for name, value in fn(**args).items()}
