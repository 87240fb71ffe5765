"""The operator's view of a run: ``sites/sites-*.jsonl`` and a self-contained ``report.html``.

Per-site job (after ``WriteRunSummary`` returned ``summary``)::

  from transforms import reporting
  site_lines = inference.prediction_batches | 'SiteOutcomes' >> reporting.SiteOutcomes(
      failed=failures, model_loads=model_loads)            # model_loads optional
  site_files = site_lines | 'WriteSiteOutcomes' >> reporting.WriteSiteOutcomes(output)
  _ = summary | 'WriteRunReport' >> reporting.WriteSiteReport(
      output, prediction_batches=inference.prediction_batches, failed=failures,
      site_lines=site_lines)

Detection job::

  _ = summary | 'WriteRunReport' >> reporting.WriteDetectionReport(
      output, input_root=input_root, records=annotated.records, failed=failed)

The pieces (``OutputHistograms``, ``SampleDeadLetters``, ``SampleSeries``,
``ContactSheet``) and the renderer (:mod:`transforms.reporting.render`, pure
functions of plain dicts) are usable on their own.
"""
from transforms.reporting.histograms import OutputHistograms
from transforms.reporting.series import AUTO
from transforms.reporting.samples import SampleDeadLetters
from transforms.reporting.series import SampleSeries
from transforms.reporting.site_outcomes import SiteOutcomes
from transforms.reporting.site_outcomes import SiteTable
from transforms.reporting.site_outcomes import WriteSiteOutcomes
from transforms.reporting.thumbnails import ContactSheet
from transforms.reporting.write import REPORT_NAME
from transforms.reporting.write import WriteDetectionReport
from transforms.reporting.write import WriteSiteReport

__all__ = [
    'AUTO',
    'ContactSheet',
    'OutputHistograms',
    'REPORT_NAME',
    'SampleDeadLetters',
    'SampleSeries',
    'SiteOutcomes',
    'SiteTable',
    'WriteDetectionReport',
    'WriteSiteOutcomes',
    'WriteSiteReport',
]
