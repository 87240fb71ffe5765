"""Benchmark: reading huge lines and many short ones, ReadLinesWithFileName vs Beam.

Writes three JSON-lines files to a temporary folder and reads each with the
source behind :class:`transforms.text_lines.ReadLinesWithFileName` and with
the one behind Beam's ``ReadFromTextWithFilename(coder=BytesCoder())``, each
read in a fresh process (``--beam_timeout`` stops Beam's). Prints wall and
CPU seconds (CPU time is the steadier figure on a busy machine), lines read,
peak RSS over the process's RSS before reading, and the ratio Beam / new of
CPU seconds; each read is repeated ``--repeats`` times, alternating readers,
and the fastest counts:

- ``line-10MB``: one 10 MB line between two short ones (Beam's reader ends);
- ``line-50MB``: one 50 MB line (under the default 64 MiB limit: read whole
  by both);
- ``line-200MB``: one 200 MB line, read with the default limit (refused and
  streamed past) and with ``--max_line_bytes`` 256 MiB (read whole); Beam's
  reader is quadratic here and only runs with ``--beam_all``;
- ``short-1M``: 1,000,000 lines of about 90 bytes (an ordinary export).

  python benchmarks/long_lines.py
  python benchmarks/long_lines.py --beam_all --beam_timeout 1800
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MB = 1000 * 1000


def write_long_line(path: str, size: int) -> None:
  """A short line, one JSON line of ``size`` bytes (a blob field), a short line."""
  prefix, suffix = b'{"site_id": "a", "blob": "', b'"}'
  filler = size - len(prefix) - len(suffix)
  with open(path, 'wb') as f:
    f.write(b'{"site_id": "a", "x": 1}\n' + prefix)
    block = b'0123456789abcdef' * (1 << 16)
    while filler > 0:
      f.write(block[:filler])
      filler -= len(block)
    f.write(suffix + b'\n{"site_id": "b", "x": 2}\n')


def write_short_lines(path: str, count: int) -> None:
  with open(path, 'wb') as f:
    for start in range(0, count, 10000):
      f.write(b''.join(
          b'{"site_id": "site-%04d", "rid": "r%07d", "x": [%d.25, -1.5, 0.125], "ok": true}\n' %
          (i % 3000, i, i % 97) for i in range(start, min(count, start + 10000))))


def measure(reader: str, path: str, max_line_bytes: int) -> None:
  """In the child: reads ``path`` whole, prints one JSON line of figures."""
  sys.path.insert(0, REPO)
  # pylint: disable=import-outside-toplevel
  from apache_beam.coders import BytesCoder
  from apache_beam.io import textio
  from apache_beam.io.filesystem import CompressionTypes
  from transforms.text_lines import LineSource
  if reader == 'beam':
    source = textio._TextSourceWithFilename(  # pylint: disable=protected-access
        path, 0, CompressionTypes.AUTO, True, BytesCoder())
  else:
    source = LineSource(path, max_line_bytes=max_line_bytes)
  rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  started, cpu_started = time.perf_counter(), time.process_time()
  lines = refused = 0
  for _, line in source.read(source.get_range_tracker(None, None)):
    lines += 1
    refused += not isinstance(line, bytes)
  seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
  rss_added = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
  print(
      json.dumps({
          'seconds': seconds,
          'cpu_seconds': cpu,
          'lines': lines,
          'refused': refused,
          'rss_added_mb': rss_added / 1024
      }))


def run_child(reader: str, path: str, max_line_bytes: int, timeout: float):
  """Figures of one read in a fresh process, or None when it ran past ``timeout``."""
  try:
    done = subprocess.run(
        [sys.executable, __file__, '--measure', reader, path,
         str(max_line_bytes)],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout)
  except subprocess.TimeoutExpired:
    return None
  return json.loads(done.stdout.strip().splitlines()[-1])


def describe(figures, timeout: float) -> str:
  if figures is None:
    return f'stopped after {timeout:.0f} s'
  return (f'{figures["seconds"]:8.2f} s wall {figures["cpu_seconds"]:8.2f} s CPU  '
          f'{figures["lines"]:>8} lines ({figures["refused"]} refused)  '
          f'peak RSS +{figures["rss_added_mb"]:.0f} MiB')


def fastest(runs):
  return None if None in runs else min(runs, key=lambda f: f['cpu_seconds'])


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--beam_timeout',
                      type=float,
                      default=600,
                      help='Seconds before a Beam read is stopped (default: 600).')
  parser.add_argument('--repeats',
                      type=int,
                      default=3,
                      help='Reads per reader and case; the fastest counts (default: 3).')
  parser.add_argument('--beam_all',
                      action='store_true',
                      help="Also time Beam's reader on the 200 MB line (quadratic: very slow).")
  parser.add_argument('--measure',
                      nargs=3,
                      metavar=('READER', 'PATH', 'MAX_LINE_BYTES'),
                      help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.measure:
    reader, path, max_line_bytes = args.measure
    measure(reader, path, int(max_line_bytes))
    return 0
  sys.path.insert(0, REPO)
  from transforms.text_lines import DEFAULT_MAX_LINE_BYTES  # pylint: disable=import-outside-toplevel
  raised = 256 << 20
  with tempfile.TemporaryDirectory(prefix='long-lines-') as folder:
    files = {
        'line-10MB': os.path.join(folder, 'line-10MB.jsonl'),
        'line-50MB': os.path.join(folder, 'line-50MB.jsonl'),
        'line-200MB': os.path.join(folder, 'line-200MB.jsonl'),
        'short-1M': os.path.join(folder, 'short-1M.jsonl')
    }
    write_long_line(files['line-10MB'], 10 * MB)
    write_long_line(files['line-50MB'], 50 * MB)
    write_long_line(files['line-200MB'], 200 * MB)
    write_short_lines(files['short-1M'], 1_000_000)
    cases = [
        ('line-10MB', DEFAULT_MAX_LINE_BYTES, True),
        ('line-50MB', DEFAULT_MAX_LINE_BYTES, True),
        ('line-200MB', DEFAULT_MAX_LINE_BYTES, args.beam_all),
        ('line-200MB', raised, args.beam_all),
        ('short-1M', DEFAULT_MAX_LINE_BYTES, True),
    ]
    for name, limit, with_beam in cases:
      size = os.path.getsize(files[name]) / MB
      print(f'{name} ({size:.0f} MB), max_line_bytes={limit}')
      new_runs, beam_runs = [], []
      for _ in range(args.repeats):
        new_runs.append(run_child('new', files[name], limit, timeout=3600))
        if with_beam and None not in beam_runs:
          beam_runs.append(run_child('beam', files[name], limit, timeout=args.beam_timeout))
      new = fastest(new_runs)
      print(f'  new : {describe(new, 3600)}')
      if not with_beam:
        print('  beam: not run (quadratic in the line length; --beam_all runs it)')
        continue
      beam = fastest(beam_runs)
      print(f'  beam: {describe(beam, args.beam_timeout)}')
      if beam is not None:
        print(f'  beam / new = {beam["cpu_seconds"] / new["cpu_seconds"]:.2f} (CPU), '
              f'{beam["seconds"] / new["seconds"]:.2f} (wall)')
      else:
        print(f'  beam / new > {args.beam_timeout / new["seconds"]:.0f} (wall)')
  return 0


if __name__ == '__main__':
  sys.exit(main())
