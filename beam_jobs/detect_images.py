"""Finds objects in images with a YOLO detector (Darknet or TorchScript).

Reads every ``.jpg/.jpeg/.png`` (any case) below ``--input`` (folder, prefix
or glob; local or gs://; recursive), runs the detector inside Beam's
RunInference and writes under ``--output``:

- ``detections/detections-*.jsonl``: one line per image (path, site, size,
  model, detections);
- ``annotated/<relative path>-det.<ext>``: copies with boxes, label, score;
- ``errors/errors-*.jsonl``: dead letters (``decode_failed``, ``empty_file``,
  ``image_too_large``, ``not_found``, ``inference_failed``, ``annotate_failed``);
- ``summary.json``: counts (read, ok, failed by reason, per label, per site)
  and ``status`` ``ok``/``failed``: failed when no image was read or
  processed or more than ``--max_failed_fraction`` of them failed (the run
  then exits 1 locally, or fails the Dataflow job, after writing all this).

Then, with ``--delete_inputs`` or ``--move_inputs_to``, removes or moves the
inputs that were processed, only after all of the above is committed and
only if the run is ok.

``--output`` must be new or empty (or ``--overwrite``); it and
``--move_inputs_to`` must hold nothing ``--input`` can match. Unknown flags
are errors.

Needs the model files (local or gs://) and, with ``--device cuda``, a GPU.

  python -m beam_jobs.detect_images --input gs://b/images-input/ \\
      --output gs://b/detections/run-1 --model_config yolov3.cfg \\
      --model_weights yolov3.weights --class_names coco.names --classes zebra

Progress: local runs log images read, done and failed every
``--progress_interval_s`` seconds with ``--progress=on`` (default: when
stderr is a terminal); on Dataflow, the job's counters in the Dataflow
console.
"""
import sys

if __name__ == '__main__':
  # Run as a script or with -m: the console entry answers --help before the
  # imports below (Beam, torch) and imports this module by name to run.
  from beam_jobs import cli
  sys.exit(cli.detect_images())

# pylint: disable=wrong-import-position
import dataclasses
import functools
import logging
import os
import time
from typing import List, Optional, Sequence

import apache_beam as beam
import torch
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult

from beam_jobs import flags_detect
from beam_jobs import output_folder
from beam_jobs import progress
from beam_jobs import provenance
from beam_jobs import runtime
from beam_jobs.io_options import JobIOOptions
from beam_jobs.usage import UsageError
from beam_jobs.usage import require
from beam_jobs.usage import require_exists
from beam_jobs.usage import require_fraction
from models.detector import darknet_cfg
from models.detector import ultralytics_torchscript
from models.detector import yolo_handler
from common import paths
from transforms.detection import objects as detection
from transforms.detection.annotate import AnnotateImages
from transforms import reporting
from transforms.dead_letters import WriteDeadLetters
from transforms.detection.image_files import ListImages
from transforms.detection.image_files import resolve_input
from transforms.detection.input_cleanup import CleanUpInputs
from transforms import run_stats
from transforms.run_summary import OK
from transforms.run_summary import FailJobIfRunFailed
from transforms.run_summary import StatusPolicy
from transforms.run_summary import WriteRunSummary

_LOGGER = logging.getLogger(__name__)


class DetectImagesOptions(PipelineOptions):
  """Flags of the image detection job."""

  @classmethod
  def _add_argparse_args(cls, parser):
    # --input (images: folder, prefix or glob, recursive; the first folder
    # below it names the site) and --output (a fresh folder per run, never
    # inside --input) are shared with the other job: see JobIOOptions. The
    # flags are defined in beam_jobs.flags_detect, which --help reads without
    # Beam or torch.
    flags_detect.add_flags(parser)


@dataclasses.dataclass(frozen=True)
class JobConfig:
  """Validated, resolved settings (what ``build_pipeline`` wires)."""
  pattern: str
  input_root: str
  output: str
  handler: yolo_handler.YoloModelHandler
  classes: Optional[List[str]]
  max_image_pixels: int
  delete_inputs: bool
  move_to: Optional[str]
  policy: StatusPolicy


def validate(opts: DetectImagesOptions, *, local_runner: bool) -> JobConfig:
  """Checks every flag before the pipeline runs. Raises UsageError."""
  io = opts.view_as(JobIOOptions)
  require('input', io.input)
  require('output', io.output)
  pattern, root = resolve_input(io.input)
  try:
    found = paths.match(pattern, limit=1)
  except Exception as e:  # pylint: disable=broad-except
    raise UsageError('input', f'cannot list {pattern!r}: {e}') from e
  if not found:
    raise UsageError('input', f'no files match {pattern!r}')
  output = _absolute(io.output)
  output_folder.require_outside('output', output, 'input', pattern, io.input)
  require_fraction('max_failed_fraction', io.max_failed_fraction)
  _check_numbers(opts)
  model, names, image_size = _check_model(opts)
  classes = _check_classes(opts.classes, names)
  if opts.delete_inputs and opts.move_inputs_to:
    raise UsageError('move_inputs_to', 'use either --delete_inputs or --move_inputs_to, not both')
  move_to = _absolute(opts.move_inputs_to) if opts.move_inputs_to else None
  if move_to:
    output_folder.require_outside('move_inputs_to', move_to, 'input', pattern, io.input)
    if paths.is_local(move_to) != paths.is_local(root):
      raise UsageError('move_inputs_to', 'must be on the same filesystem as --input')
  if opts.device == 'cuda' and local_runner and not torch.cuda.is_available():
    raise UsageError('device', yolo_handler.cuda_missing_message())
  handler = yolo_handler.YoloModelHandler(model=model,
                                          image_size=image_size,
                                          device=opts.device,
                                          batch_size=opts.batch_size,
                                          score_threshold=opts.score_threshold,
                                          iou_threshold=opts.iou_threshold,
                                          max_detections=opts.max_detections,
                                          cpu_threads=opts.cpu_threads)
  return JobConfig(pattern, root, output, handler, classes, opts.max_image_pixels,
                   opts.delete_inputs, move_to, status_policy(io.max_failed_fraction))


def status_policy(max_failed_fraction: float) -> StatusPolicy:
  """ok unless no image was read or processed, or too many failed."""
  return StatusPolicy(read_key='images_read',
                      done_key='images_ok',
                      failed_key='images_failed',
                      noun='images',
                      done_verb='processed',
                      max_failed_fraction=max_failed_fraction)


def build_pipeline(pipeline: beam.Pipeline,
                   options: PipelineOptions,
                   config: Optional[JobConfig] = None,
                   *,
                   fail_job: Optional[bool] = None) -> None:
  """Adds the detection job to ``pipeline`` (validating the flags unless ``config`` is given).

  ``fail_job``: end with a step that fails the job when the summary says
  ``failed`` (after the summary and report are written); default: on remote
  runners.
  """
  if config is None:
    config = validate(options.view_as(DetectImagesOptions), local_runner=runtime.is_local(options))
  started_at = time.time()
  listed = pipeline | 'ListImages' >> ListImages(config.pattern, config.input_root)
  detected = listed.images | 'DetectObjects' >> detection.DetectObjects(
      config.handler, classes=config.classes, max_image_pixels=config.max_image_pixels)
  annotated = detected.ok | 'Annotate' >> AnnotateImages(config.output,
                                                         only_with_detections=bool(config.classes))
  detection_files = annotated.records | 'WriteDetections' >> detection.WriteDetections(
      config.output)
  failed = (detected.failed, annotated.failed) | 'AllFailed' >> beam.Flatten()
  error_files = failed | 'WriteDeadLetters' >> WriteDeadLetters(config.output)
  annotated_folder = (
      annotated.written
      | 'CountAnnotated' >> beam.combiners.Count.Globally()
      | 'AnnotatedFolder' >> beam.FlatMap(_folder_if_any, paths.join(config.output, 'annotated')))
  stats = pipeline | 'RunStats' >> run_stats.RunStats({
      'ImageStats': (listed.images, run_stats.StatsOf(detection.image_stats)),
      'IgnoredStats': (listed.ignored, run_stats.StatsOf(detection.ignored_stats)),
      'RecordStats': (annotated.records, run_stats.StatsOf(detection.record_stats)),
      'FailureStats': (failed, run_stats.StatsOf(detection.failure_stats)),
      'AnnotatedStats': (annotated.written, run_stats.StatsOf(detection.annotated_stats)),
  })
  summary = stats | 'WriteSummary' >> WriteRunSummary(
      config.output,
      started_at=started_at,
      finalize=detection.finalize_summary,
      outputs={
          'detections': detection_files,
          'errors': error_files,
          'annotated': annotated_folder
      },
      extra={
          'provenance': provenance.detection_job(
              options.view_as(DetectImagesOptions),
              pattern=config.pattern,
              max_failed_fraction=config.policy.max_failed_fraction)
      },
      policy=config.policy)
  report = summary | 'WriteRunReport' >> reporting.WriteDetectionReport(
      config.output, input_root=config.input_root, records=annotated.records, failed=failed)
  if fail_job is None:
    fail_job = not runtime.is_local(options)
  if fail_job:
    _ = summary | 'FailJobIfRunFailed' >> FailJobIfRunFailed(config.output, after=[report])
  if config.delete_inputs or config.move_to:
    committed = summary | 'OnlyIfOk' >> beam.Map(_cleanup_signal)
    _ = (annotated.records
         | 'ProcessedInputs' >> beam.Map(_image_uri)
         | 'CleanUpInputs' >> CleanUpInputs(
             committed, input_root=config.input_root, move_to=config.move_to))


PROGRESS = progress.Plan(taps=(progress.Tap(
    'WriteSummary',
    functools.partial(progress.stats, fields=('images_read', 'images_ok', 'annotated'))),
                               progress.Tap('WriteDeadLetters',
                                            functools.partial(progress.each, field='failed'))),
                         fields=(progress.Field('images_read', 'images read', 'images'),
                                 progress.Field('images_ok', 'done',
                                                'images'), progress.Field('failed', 'failed'),
                                 progress.Field('annotated', 'annotated')))
"""Progress lines of local runs: the stats summary.json is made of, as they come."""


def run(argv: Optional[Sequence[str]] = None) -> PipelineResult:
  """Validates every flag, then runs the job (local runs wait and print the summary).

  Raises UsageError before running anything; RunFailed after a local run
  whose summary says it failed.
  """
  options = runtime.parse_options(sys.argv[1:] if argv is None else argv)
  config = validate(options.view_as(DetectImagesOptions), local_runner=runtime.is_local(options))
  return runtime.launch(options,
                        functools.partial(build_pipeline, config=config),
                        output_dir=config.output,
                        progress_plan=PROGRESS)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """The console script's run (``beam_jobs.cli.detect_images`` answers --help first):
  exit 0, 1 for a failed run, or 2 with a one-line usage error."""
  return runtime.main(run,
                      argv,
                      prog='detect-images',
                      description=__doc__,
                      options_classes=(DetectImagesOptions, ))


def _image_uri(record: dict) -> str:
  return record['image']


def _cleanup_signal(summary: dict) -> dict:
  """What CleanUpInputs checks: inputs of a failed run are all kept, for the rerun."""
  return {'reconciled': bool(summary.get('reconciled')) and summary.get('status') == OK}


def _folder_if_any(count: int, folder: str):
  if count:
    yield folder


def _absolute(path: str) -> str:
  return os.path.abspath(path) if paths.is_local(path) else path.rstrip('/')


def _check_numbers(opts: DetectImagesOptions) -> None:
  if opts.image_size is not None and (opts.image_size < 32 or opts.image_size % 32):
    raise UsageError('image_size', f'must be a positive multiple of 32, got {opts.image_size}')
  for flag in ('score_threshold', 'iou_threshold'):
    value = getattr(opts, flag)
    if not 0.0 <= value <= 1.0:
      raise UsageError(flag, f'must be within [0, 1], got {value}')
  for flag in ('batch_size', 'max_detections', 'max_image_pixels', 'cpu_threads'):
    if getattr(opts, flag) is not None and getattr(opts, flag) < 1:
      raise UsageError(flag, f'must be at least 1, got {getattr(opts, flag)}')


def _check_model(opts: DetectImagesOptions):
  """``(model source, class names, image size)``; reads only small files and headers."""
  darknet_flags = [f for f in ('model_config', 'model_weights') if getattr(opts, f)]
  if opts.model and darknet_flags:
    raise UsageError('model', f'give either --model or --{"/--".join(darknet_flags)}, not both')
  if opts.model:
    return _check_torchscript(opts)
  if not darknet_flags:
    raise UsageError(
        'model_config', 'a model is required: --model_config, --model_weights and '
        '--class_names (Darknet), or --model (TorchScript)')
  for flag in ('model_config', 'model_weights', 'class_names'):
    require(flag, getattr(opts, flag), 'is required with a Darknet model')
    require_exists(flag, getattr(opts, flag))
  try:
    config = darknet_cfg.parse_cfg(paths.read_bytes(opts.model_config).decode('utf-8'))
  except (darknet_cfg.DarknetError, UnicodeDecodeError) as e:
    raise UsageError('model_config', f'{opts.model_config}: {e}') from e
  names = yolo_handler.read_class_names(opts.class_names)
  try:
    darknet_cfg.check_class_names(config, names)
  except darknet_cfg.DarknetError as e:
    raise UsageError('class_names', f'{opts.class_names}: {e} ({opts.model_config})') from e
  with paths.open_raw(opts.model_weights) as f:
    probe = f.read(darknet_cfg.HEADER_PROBE_BYTES)
  size = paths.match(opts.model_weights)[0].size_in_bytes
  try:
    darknet_cfg.check_weights_size(config, size, darknet_cfg.weights_header_size(probe))
  except darknet_cfg.DarknetError as e:
    raise UsageError('model_weights', f'{opts.model_weights}: {e} ({opts.model_config})') from e
  model = yolo_handler.DarknetModel(opts.model_config, opts.model_weights, opts.class_names)
  return model, names, opts.image_size or model.default_image_size


def _check_torchscript(opts: DetectImagesOptions):
  require_exists('model', opts.model)
  try:
    with paths.open_raw(opts.model) as f:
      metadata = ultralytics_torchscript.read_metadata(f)
  except ultralytics_torchscript.TorchScriptModelError as e:
    raise UsageError('model', f'{opts.model}: {e}') from e
  if opts.class_names:
    require_exists('class_names', opts.class_names)
    names = yolo_handler.read_class_names(opts.class_names)
  else:
    names = ultralytics_torchscript.class_names_from_metadata(metadata)
    if not names:
      raise UsageError('class_names', f'{opts.model} stores no class names: pass --class_names')
  image_size = (opts.image_size or ultralytics_torchscript.image_size_from_metadata(metadata)
                or ultralytics_torchscript.DEFAULT_IMAGE_SIZE)
  model = yolo_handler.TorchScriptModel(opts.model, opts.class_names)
  return model, names, image_size


def _check_classes(spec: Optional[str], names: Sequence[str]) -> Optional[List[str]]:
  if not spec:
    return None
  classes = [c.strip() for c in spec.split(',') if c.strip()]
  unknown = [c for c in classes if c not in names]
  if unknown:
    raise UsageError('classes', f'unknown label(s) {unknown}; the model knows: {", ".join(names)}')
  return classes or None
