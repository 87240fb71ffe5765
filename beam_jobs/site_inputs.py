"""The per-site job's ``--input`` files: their format, checked at launch, and their reading.

``--input_format`` (default: by ``--input``'s extension) picks the reader:

* ``jsonl``: :class:`transforms.text_lines.ReadLinesWithFileName`, up to
  :data:`LINES_PER_ELEMENT` lines of one file per element (a ``LineBlock``),
  parsed and packed by
  :class:`transforms.site.rows.PackJsonLinesBySiteFn` (in
  :class:`transforms.site.grouping.GroupRowsBySite`);
* ``csv``: :class:`transforms.site.csv_rows.ReadCsvRows` (rows of text,
  typed later by each site's signature);
* ``tfrecord``: :class:`transforms.site.tfrecord_rows.ReadTfRecordRows`;
* ``file_list``: ``--input`` is a list of files (:mod:`transforms.site.file_list`),
  expanded at launch and read with the reader of their one format.

CSV and TFRecord rows are packed by :class:`transforms.site.rows.PackBySiteFn`.
The "raw" elements the job counts as ``records_read`` hold input records
(:func:`transforms.text_lines.records_in`): the lines of a block (jsonl),
or one row or read dead letter each (csv, tfrecord; a CSV
header is not a record, a compressed file that stops decompressing is one
``bad_file`` record), so ``records_read == predictions + failed`` holds for
every format.

Error policy: :func:`resolve_input` raises UsageError (one line naming the
flag) for anything the user must fix: a format that is not one, a file list
naming a missing file or mixing formats, a flag that does not apply to the
input. Reading never raises for file contents: bad records are dead letters.
"""
from typing import NamedTuple, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes

from beam_jobs import output_folder
from beam_jobs.flags_site import AUTO
from beam_jobs.usage import UsageError
from common import paths
from transforms.dead_letters import FAILED
from transforms.site import file_list
from transforms.site.csv_rows import ReadCsvRows
from transforms.site.grouping import GroupRowsBySite
from transforms.site.tfrecord_rows import ReadTfRecordRows
from transforms.text_lines import ReadLinesWithFileName


class SiteInput(NamedTuple):
  """What ``--input`` resolved to at launch."""
  format: str  # jsonl, csv or tfrecord (a file list's files' format)
  patterns: Tuple[str, ...]  # (--input,), or the files a file list names
  compression: str  # a Beam CompressionTypes value ('auto': by extension)
  listed: bool = False  # the patterns come from a file list

  @property
  def text_values(self) -> bool:
    """Rows hold text to type by each site's signature (CSV)."""
    return self.format == file_list.CSV


LINES_PER_ELEMENT = 1000
"""JSON-lines read: lines per element (the runner's per-element cost, paid per block)."""

_INPUT_ONLY = ('input_format', 'file_list_format', 'tfrecord_serialized_field')


def resolve_input(opts,
                  input_path: Optional[str],
                  output: Optional[str],
                  *,
                  matched: Optional[Sequence[str]] = None) -> Optional[SiteInput]:
  """The files and format ``--input`` names; None for BigQuery input.

  ``opts``: the job's options (``input_format``, ``file_list_format``,
  ``input_compression``, ``tfrecord_serialized_field``). ``matched``: the
  files ``--input`` matches, where the caller listed them (else listed here
  when the compression is by extension: :func:`auto_compression`).

  Raises:
    UsageError: a flag value the user must fix (see the module doc).
  """
  if not input_path:
    for flag in _INPUT_ONLY:
      if getattr(opts, flag) is not None:
        raise UsageError(flag, 'only applies with --input')
    if opts.input_compression != AUTO:
      raise UsageError('input_compression', 'only applies with --input')
    return None
  try:
    fmt = file_list.input_format(input_path, opts.input_format)
  except file_list.FileListError as e:
    raise UsageError('input_format', str(e)) from e
  if fmt != file_list.FILE_LIST and opts.file_list_format is not None:
    raise UsageError('file_list_format', 'only applies with --input_format=file_list')
  if fmt == file_list.FILE_LIST:
    site_input = _listed(opts, input_path, output)
  else:
    site_input = SiteInput(fmt, (input_path, ), opts.input_compression)
  if site_input.compression == AUTO:
    if matched is None and not site_input.listed:
      matched = [m.path for m in paths.match(input_path)]
    files = site_input.patterns if site_input.listed else matched
    site_input = site_input._replace(compression=auto_compression(files))
  if opts.tfrecord_serialized_field is not None:
    if site_input.format != file_list.TFRECORD:
      raise UsageError('tfrecord_serialized_field',
                       f'only applies to TFRecord input (this input is {site_input.format})')
    if not opts.tfrecord_serialized_field:
      raise UsageError('tfrecord_serialized_field', 'must not be empty')
  return site_input


def auto_compression(files: Sequence[str]) -> str:
  """``--input_compression=auto`` for these files: ``auto``, or ``gzip`` where some end in
  ``.gzip`` and all in ``.gzip`` or ``.gz``.

  Beam's detection by extension knows ``.gz`` but reads ``.gzip`` as it is
  (every line a ``bad_encoding`` dead letter).

  Raises:
    UsageError: some files end in ``.gzip`` and others are not gzip by their
      names (one reading cannot decompress only some of them by that suffix).
  """
  gzip = [f for f in files if f.lower().endswith('.gzip')]
  if not gzip:
    return AUTO
  others = [
      f for f in files if not f.lower().endswith('.gzip')
      and CompressionTypes.detect_compression_type(f) != CompressionTypes.GZIP
  ]
  if not others:
    return CompressionTypes.GZIP
  raise UsageError(
      'input_compression', f'{gzip[0]} ends in .gzip (gzip) but {others[0]} is not gzip by its '
      'name: rename the .gzip files to .gz, or read them in a job of their own')


def _listed(opts, list_path: str, output: Optional[str]) -> SiteInput:
  try:
    entries = file_list.read_file_list(list_path)
    files = file_list.expand_file_list(list_path)
  except file_list.FileListError as e:
    raise UsageError('input', str(e)) from e
  except Exception as e:  # pylint: disable=broad-except
    raise UsageError('input', f'cannot read the file list {list_path!r}: '
                     f'{type(e).__name__}: {e}') from e
  try:
    fmt = file_list.list_format(files, opts.file_list_format, list_path=list_path)
  except file_list.FileListError as e:
    raise UsageError('file_list_format' if opts.file_list_format is not None else 'input',
                     str(e)) from e
  if output:
    for _, entry in entries:
      output_folder.require_outside('output',
                                    output,
                                    'input',
                                    entry,
                                    given=f'{list_path} (entry {entry})')
  return SiteInput(fmt, tuple(files), opts.input_compression, listed=True)


def read_files(pipeline: beam.Pipeline,
               site_input: SiteInput,
               *,
               site_field: str,
               model_root: Optional[str],
               max_line_bytes: int,
               rows_per_chunk: int,
               serialized_field: Optional[str] = None):
  """``--input`` -> (raw elements, :class:`transforms.site.grouping.GroupedRows`).

  Raw elements: they hold the input records (see the module doc), for counting;
  the grouped rows' ``failed`` holds every dead letter of reading and packing.
  """
  compression = site_input.compression
  if site_input.format == file_list.JSONL:
    # Bytes: a line that is not UTF-8 becomes a dead letter, not a failed read;
    # so does a line over max_line_bytes (read as a RefusedLine, never whole).
    if site_input.listed:
      raw = pipeline | 'ReadLines' >> file_list.ReadJsonLinesFiles(site_input.patterns,
                                                                   max_line_bytes=max_line_bytes,
                                                                   compression=compression,
                                                                   block_lines=LINES_PER_ELEMENT)
    else:
      raw = pipeline | 'ReadLines' >> ReadLinesWithFileName(site_input.patterns[0],
                                                            max_line_bytes=max_line_bytes,
                                                            compression_type=compression,
                                                            block_lines=LINES_PER_ELEMENT)
    grouped = raw | 'GroupRowsBySite' >> GroupRowsBySite(
        site_field, model_root=model_root, json_lines=True, rows_per_chunk=rows_per_chunk)
    return raw, grouped
  patterns = list(site_input.patterns)
  if site_input.format == file_list.CSV:
    read = pipeline | 'ReadCsv' >> ReadCsvRows(patterns, compression=compression)
  else:
    read = pipeline | 'ReadTfRecords' >> ReadTfRecordRows(
        patterns, compression=compression, serialized_field=serialized_field)
  raw = (read.rows, read[FAILED]) | 'RecordsRead' >> beam.Flatten()
  grouped = read.rows | 'GroupRowsBySite' >> GroupRowsBySite(
      site_field, model_root=model_root, rows_per_chunk=rows_per_chunk)
  failures = (read[FAILED], grouped.failed) | 'ReadFailures' >> beam.Flatten()
  return raw, grouped._replace(failed=failures)
