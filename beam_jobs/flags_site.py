"""The per-site prediction job's flags and ``--help`` text, without Beam or TensorFlow.

``beam_jobs.site_predictions.SitePredictionOptions`` registers these flags
with Beam; the console script prints ``--help`` from here before importing
anything heavy. The defaults below are the library's own
(``models.site.pool``, ``transforms.site.grouping``, ``transforms.text_lines``,
``transforms.site.prediction_output``, ``transforms.site.bigquery_output``),
repeated so that importing this module stays light; a test keeps them equal.
"""
DEFAULT_MAX_MODELS = 256
DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_ROWS_PER_CHUNK = 1000
DEFAULT_MAX_LINE_BYTES = 64 << 20
JSONL = 'jsonl'
AIPLATFORM = 'aiplatform'
OUTPUT_FORMATS = (JSONL, AIPLATFORM)
FILE_LOADS = 'FILE_LOADS'
WRITE_METHODS = (FILE_LOADS, 'STREAMING_INSERTS')
INPUT_FORMATS = ('jsonl', 'csv', 'tfrecord', 'file_list')
LISTED_FORMATS = ('jsonl', 'csv', 'tfrecord')
AUTO = 'auto'
COMPRESSIONS = (AUTO, 'gzip', 'bzip2', 'zstd', 'lzma', 'deflate', 'uncompressed')
INSTANCE_TYPES = ('object', 'array')

PROG = 'site-predictions'
DESCRIPTION = ("Per-site batch predictions: every site's rows through that site's own "
               'TensorFlow SavedModel, {model_root}/{site}/[{version}/]saved_model.pb. '
               'Writes predictions/, errors/ (one dead letter per failed record) and '
               'summary.json under --output.')
USAGE = (f'{PROG} (--input=GLOB | --input_table=TABLE | --input_query=SQL) '
         '\n       --model_root=DIR --output=DIR [flag=value ...]')
EXAMPLE = (f"  {PROG} --input='readings/*.jsonl' --model_root=models/ --output=out/run-1\n"
           '  (on Dataflow, with gs:// paths: add --runner=DataflowRunner --project=P\n'
           '   --region=R --temp_location=gs://B/tmp)')
INPUT_HELP = ('File or glob (local or gs://) of instances: JSON-lines (one object per line, '
              'AI Platform batch-prediction format), CSV or TFRecord, or a file list; see '
              '--input_format.')


def add_flags(parser) -> None:
  """Adds the job's own flags (``--input``/``--output``: ``beam_jobs.flags_io``)."""
  source = parser.add_argument_group(
      'input (required: exactly one of --input, --input_table, --input_query)')
  source.add_argument(
      '--input_table',
      metavar='TABLE',
      help='BigQuery table PROJECT:DATASET.TABLE (or DATASET.TABLE) read with DIRECT_READ.')
  source.add_argument('--input_query',
                      metavar='SQL',
                      help='BigQuery standard SQL query to read instances from.')
  formats = parser.add_argument_group('input format (with --input)')
  formats.add_argument(
      '--input_format',
      default=None,
      metavar='|'.join(INPUT_FORMATS),
      help='What --input holds. jsonl: one JSON object per line; csv: a header row naming '
      'the fields, then one instance per record (values typed by each site\'s '
      'signature dtypes); tfrecord: serialized tf.train.Example records, features by '
      'name; file_list: --input is a text file naming input files (one a line, '
      'relative to the list\'s folder, globs allowed), all of one format. Default: '
      'from --input\'s extension (.csv, .tfrecord/.tfrecords/.tfr/.tfrec, a .gz etc. '
      'suffix ignored), else jsonl.')
  formats.add_argument(
      '--file_list_format',
      default=None,
      metavar='|'.join(LISTED_FORMATS),
      help='With --input_format=file_list: the format of the listed files (default: from '
      'their extensions, which must agree).')
  formats.add_argument(
      '--input_compression',
      default=AUTO,
      choices=COMPRESSIONS,
      help='Compression of the input files; auto: by extension (.gz/.gzip, .bz2, .zst/.zstd, '
      '.xz/.lzma, .deflate; anything else is read as it is).')
  formats.add_argument(
      '--tfrecord_serialized_field',
      default=None,
      metavar='FIELD',
      help='TFRecord input: also give each instance its serialized tf.Example, as '
      '{"b64": ...}, in this field (for signatures that parse Examples themselves).')
  instances = parser.add_argument_group('instance config (what is fed to the model and echoed)')
  instances.add_argument(
      '--included_fields',
      default=None,
      metavar='A,B,...',
      help='Feed only these fields (in this order for array instances); predictions echo '
      'them plus --site_field and --key_field. Not with --excluded_fields.')
  instances.add_argument(
      '--excluded_fields',
      default=None,
      metavar='A,B,...',
      help='Feed every field but these; predictions do not echo them either (--site_field '
      'and --key_field are always echoed). Not with --included_fields.')
  instances.add_argument(
      '--instance_type',
      default='object',
      metavar='|'.join(INSTANCE_TYPES),
      help='object: fields fed by signature input name; array: the --included_fields '
      'values, in that order, fed as one list to a signature with exactly one input.')
  parser.add_argument(
      '--selected_fields',
      default=None,
      metavar='A,B,...',
      help='With --input_table: comma-separated columns to read (must include --site_field).')
  parser.add_argument(
      '--row_restriction',
      default=None,
      metavar='SQL',
      help=
      "With --input_table: SQL filter applied by the Storage Read API, e.g. \"day = '2026-11-20'\"."
  )
  parser.add_argument(
      '--bigquery_temp_dataset',
      default=None,
      metavar='DATASET',
      help='Existing dataset (PROJECT:DATASET or DATASET) for BigQuery temporary tables '
      '(default: Beam creates and deletes one).')
  parser.add_argument('--site_field', default='site_id', help='Field naming the site of each row.')
  parser.add_argument(
      '--max_line_bytes',
      type=int,
      default=DEFAULT_MAX_LINE_BYTES,
      metavar='BYTES',
      help='With --input: longest line read, in bytes, line end not counted; a longer '
      'line becomes a line_too_long dead letter.')
  parser.add_argument('--key_field',
                      default=None,
                      help='Optional field copied to each prediction line as "key".')
  parser.add_argument(
      '--model_root',
      required=False,
      metavar='DIR',
      help='(required) Folder (local or gs://) with {site}/{version}/saved_model.pb or '
      '{site}/saved_model.pb.')
  parser.add_argument(
      '--model_version',
      default=None,
      metavar='N',
      help='Integer version folder to use for every site not pinned by --model_versions '
      '(default: highest present).')
  parser.add_argument(
      '--model_versions',
      default=None,
      metavar='MANIFEST',
      help='JSON ({"site": "version", ...}) or CSV (header site_id,version) file, local or '
      'gs://, pinning the version of listed sites; others take --model_version or the '
      'highest. A pinned version that does not exist fails that site\'s rows '
      '(no_model), never falling back to another version.')
  parser.add_argument('--signature',
                      default='serving_default',
                      help='SavedModel signature to call.')
  parser.add_argument('--output_format',
                      default=JSONL,
                      choices=OUTPUT_FORMATS,
                      help='jsonl: our prediction lines; aiplatform: legacy batch '
                      'prediction files prediction.results-* and prediction.errors_stats-*.')
  parser.add_argument(
      '--output_table',
      default=None,
      metavar='TABLE',
      help='Also write one row per prediction to this BigQuery table PROJECT:DATASET.TABLE '
      '(created if needed, appended to); or, naming a dataset PROJECT:DATASET, tables '
      'predictions and errors there, laid out as Vertex AI batch prediction does.')
  parser.add_argument('--errors_table',
                      default=None,
                      metavar='TABLE',
                      help='Also write dead letters to this BigQuery table PROJECT:DATASET.TABLE.')
  parser.add_argument('--bigquery_write_method',
                      default=FILE_LOADS,
                      choices=WRITE_METHODS,
                      help='How --output_table/--errors_table are written: FILE_LOADS (batch '
                      'load jobs, needs a gs:// --temp_location) or STREAMING_INSERTS.')
  parser.add_argument(
      '--run_id',
      default=None,
      help='Identifier stored with BigQuery rows and in summary.json (default: UTC time + '
      'random suffix).')
  parser.add_argument('--rows_per_chunk',
                      type=int,
                      default=DEFAULT_ROWS_PER_CHUNK,
                      metavar='N',
                      help='Most rows of one site per model call.')
  parser.add_argument('--max_models_per_worker',
                      type=int,
                      default=DEFAULT_MAX_MODELS,
                      metavar='N',
                      help='Most site models one worker process keeps loaded.')
  parser.add_argument('--max_model_mb_per_worker',
                      type=int,
                      default=DEFAULT_MAX_BYTES >> 20,
                      metavar='MIB',
                      help='Most estimated MiB of site models one worker process keeps loaded.')
  # Outputs (reporting): one block, kept together.
  parser.add_argument(
      '--sites_table',
      default=None,
      metavar='TABLE',
      help='Also write one row per site (counts by outcome and reason, model versions) to '
      'this BigQuery table PROJECT:DATASET.TABLE, as in sites/sites-*.jsonl.')
