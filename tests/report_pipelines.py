"""Both jobs' pipelines with the run report wired in, and page parsing, for the report tests.

Each mirrors its job's ``build_pipeline`` step by step, from the jobs' own
transforms and option classes, plus the reporting calls; the per-site one
also opens up ``PredictPerSite`` to give the per-load model facts
(``(site_id, {'model_version', 'fast_path', 'load_ms'})``) the report takes.
"""
import re
import time
from typing import List, Optional

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions

import detect_helpers
from beam_jobs import detect_images
from beam_jobs import runtime
from beam_jobs import site_predictions
from beam_jobs.io_options import JobIOOptions
from models.site.handler import SiteModelHandler
from transforms.detection import objects as detection
from transforms import reporting
from transforms.detection.annotate import AnnotateImages
from transforms.dead_letters import WriteDeadLetters
from transforms.detection.image_files import ListImages
from transforms.site.prediction_output import WritePredictions
from transforms.run_summary import WriteRunSummary
from transforms.site.inference import ChunkSite
from transforms.site.inference import SplitOutcomes


def model_load_facts(result):
  """``PredictionResult(chunk, ChunkOutcome)`` -> ``(site_id, facts)`` when it loaded a model."""
  outcome = result.inference
  if outcome.model_loaded:
    yield result.example.site_id, {'model_version': outcome.model_version,
                                   'fast_path': outcome.model_fast_path,
                                   'load_ms': outcome.model_load_ms}


def build_site_job(pipeline: beam.Pipeline, options: PipelineOptions, *,
                   with_model_loads: bool = True) -> None:
  """``site_predictions.build_pipeline`` (JSON-lines input and output) + the report."""
  opts = options.view_as(site_predictions.SitePredictionOptions)
  output = options.view_as(JobIOOptions).output
  # pylint: disable=protected-access
  raw, site_rows, unusable = site_predictions._read_site_rows(pipeline, opts)
  chunks = (site_rows
            | 'GroupBySite' >> beam.GroupByKey()
            | 'ChunkSite' >> beam.ParDo(ChunkSite(opts.rows_per_chunk)).with_outputs(
                'stats', main='chunks'))
  results = chunks.chunks | 'RunSiteModels' >> RunInference(
      SiteModelHandler(model_root=opts.model_root, signature=opts.signature))
  outcomes = results | 'SplitOutcomes' >> beam.ParDo(SplitOutcomes()).with_outputs(
      'failed', 'stats', main='predictions')
  model_loads = (results | 'ModelLoads' >> beam.FlatMap(model_load_facts)
                 if with_model_loads else None)
  batches = outcomes.predictions
  failures = (unusable, outcomes.failed) | 'AllFailures' >> beam.Flatten()

  site_lines = batches | 'SiteOutcomes' >> reporting.SiteOutcomes(
      failed=failures, model_loads=model_loads)
  outputs = {
      'predictions': batches | 'WritePredictions' >> WritePredictions(
          output, key_field=opts.key_field),
      'errors': failures | 'WriteDeadLetters' >> WriteDeadLetters(output),
      'sites': site_lines | 'WriteSiteOutcomes' >> reporting.WriteSiteOutcomes(output),
  }
  stats = (
      raw | 'CountRead' >> site_predictions._CountAs('records_read'),
      batches | 'CountWritten' >> site_predictions._CountAs('predictions_written', batched=True),
      failures | 'CountFailed' >> beam.Map(site_predictions._failure_stat),
      chunks.stats, outcomes.stats,
  ) | 'AllStats' >> beam.Flatten()
  summary = stats | 'WriteSummary' >> WriteRunSummary(
      output, started_at=time.time(), outputs=outputs,
      finalize=site_predictions.finalize_summary, extra={'run_id': 'report-test-run'})
  _ = summary | 'WriteRunReport' >> reporting.WriteSiteReport(
      output, prediction_batches=batches, failed=failures, site_lines=site_lines)


def build_detection_job(pipeline: beam.Pipeline, options: PipelineOptions) -> None:
  """``detect_images.build_pipeline`` (without input clean-up) + the report."""
  config = detect_images.validate(options.view_as(detect_images.DetectImagesOptions),
                                  local_runner=True)
  listed = pipeline | 'ListImages' >> ListImages(config.pattern, config.input_root)
  detected = listed.images | 'DetectObjects' >> detection.DetectObjects(
      config.handler, classes=config.classes, max_image_pixels=config.max_image_pixels)
  annotated = detected.ok | 'Annotate' >> AnnotateImages(
      config.output, only_with_detections=bool(config.classes))
  detection_files = annotated.records | 'WriteDetections' >> detection.WriteDetections(
      config.output)
  failed = (detected.failed, annotated.failed) | 'AllFailed' >> beam.Flatten()
  error_files = failed | 'WriteDeadLetters' >> WriteDeadLetters(config.output)
  stats = (
      listed.images | 'ImageStats' >> beam.FlatMap(detection.image_stats),
      listed.ignored | 'IgnoredStats' >> beam.FlatMap(detection.ignored_stats),
      annotated.records | 'RecordStats' >> beam.FlatMap(detection.record_stats),
      failed | 'FailureStats' >> beam.FlatMap(detection.failure_stats),
      annotated.written | 'AnnotatedStats' >> beam.FlatMap(detection.annotated_stats),
  ) | 'AllStats' >> beam.Flatten()
  summary = stats | 'WriteSummary' >> WriteRunSummary(
      config.output, started_at=time.time(), finalize=detection.finalize_summary,
      outputs={'detections': detection_files, 'errors': error_files})
  _ = summary | 'WriteRunReport' >> reporting.WriteDetectionReport(
      config.output, input_root=config.input_root, records=annotated.records, failed=failed)


def run(build, argv: List[str], **build_options) -> None:
  """Runs ``build`` on the local runner the jobs use, waiting for the end."""
  options = PipelineOptions(argv)
  runtime.choose_runner(options)
  pipeline = beam.Pipeline(options=options)
  build(pipeline, options, **build_options)
  pipeline.run().wait_until_finish()


def run_site_job(*, input_glob: str, model_root: str, output: str,
                 key_field: Optional[str] = None, with_model_loads: bool = True) -> None:
  argv = [f'--input={input_glob}', f'--model_root={model_root}', f'--output={output}']
  if key_field:
    argv.append(f'--key_field={key_field}')
  run(build_site_job, argv, with_model_loads=with_model_loads)


def run_detection_job(*, input_dir: str, output: str, extra: List[str] = ()) -> None:
  run(build_detection_job, ['--input', input_dir, '--output', output]
      + detect_helpers.darknet_flags() + list(extra))


_STAT = re.compile(r'data-stat="(\w+)" data-value="([^"]*)">([^<]*)<')


def page_stats(html: str):
  """``{key: (data-value, shown text)}`` of a report's status-line numbers."""
  return {k: (v, text) for k, v, text in _STAT.findall(html)}
