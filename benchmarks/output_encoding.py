"""Benchmark: writing a chunk's prediction lines, outputs encoded per row or per column.

The per-site job writes one JSON line per row. This times, in one process,
the two ways a chunk's outputs become text (microseconds per row, best of
``--repeat``), for chunks of ``--rows`` rows of one ``[rows, --width]``
float32 output, the shape of a regression model's output:

- ``per-row dict``: what a plain loop does (and the job did): one
  ``{name: value}`` dict per row through the JSON encoder;
- ``per column``: :func:`models.site.output_text.rows_text`, one ``tolist``
  per output and one string build per row;

and the whole line (:func:`transforms.site.prediction_output.encode_predictions`,
instance text echoed) with and without the outputs' text carried from the
model step. Every variant's text is checked equal before timing.

  python benchmarks/output_encoding.py
  python benchmarks/output_encoding.py --rows 1000 --width 3
"""
import argparse
import json
import os
import sys
import timeit

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=wrong-import-position
from models.site.output_text import rows_text
from transforms import json_lines
from transforms.site.predictions import Prediction
from transforms.site.prediction_output import encode_predictions


def _best_us_per_row(function, rows: int, repeat: int) -> float:
  number = max(1, 20000 // rows)
  return min(timeit.repeat(function, number=number, repeat=repeat)) / number / rows * 1e6


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--rows', type=int, default=100, help='Rows per chunk.')
  parser.add_argument('--width', type=int, default=1, help='Values per row of the output.')
  parser.add_argument('--repeat', type=int, default=7)
  args = parser.parse_args(argv)

  generator = np.random.default_rng(0)
  outputs = {'energy_kwh': generator.random((args.rows, args.width), np.float32) * 100}
  encode = json_lines.encoder(non_finite=json_lines.AS_STRING)
  rows = [{
      'site_id': 'site-00001',
      'reading_id': f'r{i}',
      'hour': i,
      'temperature_c': 11.5
  } for i in range(args.rows)]
  row_texts = [json.dumps(row) for row in rows]

  def per_row():
    column = outputs['energy_kwh'].tolist()
    return [encode({'energy_kwh': value}) for value in column]

  def per_column():
    return rows_text(outputs)

  def predictions(texts):
    values = outputs['energy_kwh'].tolist()
    return [
        Prediction('site-00001', 'in.jsonl', row, {'energy_kwh': value}, '3', row_text, text)
        for row, row_text, value, text in zip(rows, row_texts, values, texts)
    ]

  without_text = predictions([None] * args.rows)
  with_text = predictions(rows_text(outputs))
  if per_row() != per_column():
    raise SystemExit('the two encodings differ')
  if encode_predictions(without_text, 'reading_id') != encode_predictions(with_text, 'reading_id'):
    raise SystemExit('the lines differ')

  figures = {
      'outputs, per-row dict': _best_us_per_row(per_row, args.rows, args.repeat),
      'outputs, per column': _best_us_per_row(per_column, args.rows, args.repeat),
      'line, outputs encoded per row': _best_us_per_row(
          lambda: encode_predictions(without_text, 'reading_id'), args.rows, args.repeat),
      'line, outputs text carried': _best_us_per_row(
          lambda: encode_predictions(with_text, 'reading_id'), args.rows, args.repeat),
  }
  print(f'chunks of {args.rows} rows, one float32 output of width {args.width}')
  for name, value in figures.items():
    print(f'{name:32s} {value:7.2f} us/row')
  print(
      f'outputs: per column is {figures["outputs, per-row dict"] / figures["outputs, per column"]:.2f}x '
      'faster; whole line: '
      f'{figures["line, outputs encoded per row"] / figures["line, outputs text carried"]:.2f}x')
  return 0


if __name__ == '__main__':
  sys.exit(main())
