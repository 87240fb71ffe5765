"""``WriteSiteReport`` / ``WriteDetectionReport``: the run's ``<output>/report.html``.

Both are applied to the PCollection holding the one summary dict that
:class:`transforms.run_summary.WriteRunSummary` returns, so the page is
written after every output and ``summary.json`` are committed. Their other
inputs are reduced in the pipeline to bounded side inputs (per-site lines,
histograms, samples, at most ~60 thumbnails) before one worker renders.

Error policy: the report never fails a job whose outputs are written. If
rendering raises, a minimal page with the status and the summary is written
instead (and the error logged); a failing write raises (transient: the
runner retries, the write is one atomic create).
"""
import logging
from typing import Any, Callable, Dict, List, Optional

import apache_beam as beam

from common import paths
from transforms.reporting.histograms import DEFAULT_BINS
from transforms.reporting.histograms import OutputHistograms
from transforms.reporting.series import AUTO
from transforms.reporting.samples import DEFAULT_LETTERS_PER_REASON
from transforms.reporting.series import DEFAULT_SERIES_SITES
from transforms.reporting.samples import SampleDeadLetters
from transforms.reporting.series import SampleSeries
from transforms.reporting.site_outcomes import DEFAULT_TABLE_SITES
from transforms.reporting.site_outcomes import SiteOutcomes
from transforms.reporting.site_outcomes import SiteTable
from transforms.reporting.thumbnails import DEFAULT_THUMBNAILS
from transforms.reporting.thumbnails import ContactSheet

_LOGGER = logging.getLogger(__name__)


def _renderer():
  """:mod:`transforms.reporting.render`, imported when a page is written: it pulls in
  matplotlib and Jinja2 (about 0.5 s), which a job needs only at its end."""
  from transforms.reporting import render  # pylint: disable=import-outside-toplevel
  return render


REPORT_NAME = 'report.html'
MIME_TYPE = 'text/html; charset=utf-8'


def _write_page(path: str, summary: Dict[str, Any], page: Callable[[], str], *, title: str,
                failed_key: str) -> str:
  try:
    html = page()
  except Exception as e:  # pylint: disable=broad-except
    # Any rendering bug or odd value: the run's outputs are fine, say so.
    _LOGGER.exception('rendering %s failed; writing a minimal report', path)
    html = _renderer().render_fallback(summary,
                                       title=title,
                                       failed_key=failed_key,
                                       error=f'{type(e).__name__}: {e}')
  paths.write_bytes(path, html.encode('utf-8'), mime_type=MIME_TYPE)
  _LOGGER.info('Run report: %s', path)
  return path


def write_site_page(summary: Dict[str, Any], path: str, site_table: Dict[str, Any],
                    histograms: Dict[str, Any], series: List[Dict[str, Any]],
                    letters: Dict[str, List[Dict[str, Any]]]) -> str:
  """Renders and writes the per-site page; returns ``path``."""
  return _write_page(
      path,
      summary,
      lambda: _renderer().render_site_report(
          summary, site_table=site_table, histograms=histograms, series=series, letters=letters),
      title='Per-site predictions',
      failed_key='failed_total')


def write_detection_page(summary: Dict[str, Any], path: str, thumbnails: List[Dict[str, Any]],
                         letters: Dict[str, List[Dict[str, Any]]], images_matched: int) -> str:
  """Renders and writes the detection page; returns ``path``."""
  return _write_page(
      path,
      summary,
      lambda: _renderer().render_detection_report(
          summary, thumbnails=thumbnails, letters=letters, images_matched=images_matched),
      title='Image detection',
      failed_key='images_failed')


class _WriteReport(beam.PTransform):
  """What both reports do: sample the run's dead letters per reason, then render and
  write the page once, from the summary, with every reduced input a singleton side input."""

  def __init__(self, output_dir: str, *, failed: beam.PCollection, letters_per_reason: int):
    super().__init__()
    self._output_dir = output_dir
    self._path = paths.join(output_dir, REPORT_NAME)
    self._failed = failed
    self._letters_per_reason = letters_per_reason

  def _render(self, summary, write_page: Callable[..., str], **reduced: beam.PCollection):
    """``write_page(summary, path, letters=..., **reduced)``, each one element, on one worker."""
    reduced['letters'] = self._failed | 'SampleDeadLetters' >> SampleDeadLetters(
        per_reason=self._letters_per_reason)
    return summary | 'Render' >> beam.Map(
        write_page, self._path, **{
            name: beam.pvalue.AsSingleton(pcoll)
            for name, pcoll in reduced.items()
        })


class WriteSiteReport(_WriteReport):
  """Summary (one dict) -> ``<output>/report.html`` of the per-site job; returns its path.

  Args:
    output_dir: the run's output folder.
    prediction_batches: ``List[Prediction]`` per chunk (``PredictPerSite``).
    failed: every dead letter of the run.
    site_lines: :class:`SiteOutcomes` output when the job already computes it
      (to write ``sites/``); otherwise it is computed here from the above and
      ``model_loads``.
    model_loads: optional ``(site_id, {'model_version', 'fast_path', 'load_ms'})``.
    time_field: instance field holding the row's time for the time-series
      panel; ``'auto'`` tries common names (``hour``, ``timestamp``, ...),
      None leaves the panel out.
  """

  def __init__(self,
               output_dir: str,
               *,
               prediction_batches: beam.PCollection,
               failed: beam.PCollection,
               site_lines: Optional[beam.PCollection] = None,
               model_loads: Optional[beam.PCollection] = None,
               time_field: Optional[str] = AUTO,
               max_table_sites: int = DEFAULT_TABLE_SITES,
               bins: int = DEFAULT_BINS,
               series_sites: int = DEFAULT_SERIES_SITES,
               letters_per_reason: int = DEFAULT_LETTERS_PER_REASON):
    super().__init__(output_dir, failed=failed, letters_per_reason=letters_per_reason)
    self._batches = prediction_batches
    self._site_lines = site_lines
    self._model_loads = model_loads
    self._time_field = time_field
    self._max_table_sites = max_table_sites
    self._bins = bins
    self._series_sites = series_sites

  def expand(self, summary):
    site_lines = self._site_lines
    if site_lines is None:
      site_lines = self._batches | 'SiteOutcomes' >> SiteOutcomes(failed=self._failed,
                                                                  model_loads=self._model_loads)
    table = site_lines | 'SiteTable' >> SiteTable(max_sites=self._max_table_sites)
    histograms = self._batches | 'OutputHistograms' >> OutputHistograms(bins=self._bins)
    series = self._batches | 'SampleSeries' >> SampleSeries(
        site_lines=site_lines, time_field=self._time_field, max_sites=self._series_sites)
    return self._render(summary,
                        write_site_page,
                        site_table=table,
                        histograms=histograms,
                        series=series)


def _matched(record: Dict[str, Any]) -> int:
  return 1 if record.get('detections') else 0


class WriteDetectionReport(_WriteReport):
  """Summary (one dict) -> ``<output>/report.html`` of the detection job; returns its path.

  Args:
    output_dir: the run's output folder (annotated copies are read from it).
    input_root: the input folder (to find each image's annotated copy).
    records: detection line dicts (``AnnotateImages(...).records``).
    failed: every dead letter of the run.
    max_thumbnails: images on the contact sheet, matched first.
  """

  def __init__(self,
               output_dir: str,
               *,
               input_root: str,
               records: beam.PCollection,
               failed: beam.PCollection,
               max_thumbnails: int = DEFAULT_THUMBNAILS,
               letters_per_reason: int = DEFAULT_LETTERS_PER_REASON):
    super().__init__(output_dir, failed=failed, letters_per_reason=letters_per_reason)
    self._input_root = input_root
    self._records = records
    self._max_thumbnails = max_thumbnails

  def expand(self, summary):
    thumbnails = self._records | 'ContactSheet' >> ContactSheet(
        output_dir=self._output_dir, input_root=self._input_root, max_images=self._max_thumbnails)
    matched = (self._records
               | 'Matched' >> beam.Map(_matched)
               | 'CountMatched' >> beam.CombineGlobally(sum))
    return self._render(summary,
                        write_detection_page,
                        thumbnails=thumbnails,
                        images_matched=matched)
