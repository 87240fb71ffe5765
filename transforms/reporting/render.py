"""``report.html``: one self-contained page per run, from the summary and the report data.

Pure functions of plain dicts and lists (what the pipeline's side inputs
hold), so a report can also be rendered outside Beam. The page needs no
network: CSS and a few lines of JS are inline, charts are inline SVG,
thumbnails are ``data:`` URIs, and a Content-Security-Policy forbids any
other load. Templates are Jinja2 package data, autoescaped: every value from
the data (site ids, messages, records) is escaped.

Once the page has loaded, its script sets ``data-report-ready="1"`` on the
``<html>`` element, with ``data-report-images`` and
``data-report-broken-images`` (images the browser could not decode), and
records script errors in ``data-report-errors``.
"""
import datetime
import json
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

import jinja2

from transforms.reporting import plots
from transforms.reporting.site_outcomes import worst_first

SITE_TEMPLATE = 'site_report.html.j2'
DETECTION_TEMPLATE = 'detection_report.html.j2'
FALLBACK_TEMPLATE = 'fallback_report.html.j2'
MAX_TABLE_ROWS = 500
_GOOD_STATUS = re.compile(r'^(ok|succeeded|success|successful|done|complete|completed)$', re.I)
_BAD_STATUS = re.compile(r'fail|error|abort|cancel', re.I)


def environment() -> jinja2.Environment:
  """The package's templates, autoescaped, undefined names an error."""
  env = jinja2.Environment(loader=jinja2.PackageLoader('transforms.reporting', 'templates'),
                           autoescape=True,
                           undefined=jinja2.StrictUndefined,
                           trim_blocks=True,
                           lstrip_blocks=True)
  env.filters['num'] = format_number
  env.filters['pct'] = format_percent
  return env


def format_number(value: Any) -> str:
  """``1234 -> '1,234'``, ``1234.56 -> '1,234.6'``, None -> an en dash."""
  if value is None:
    return '\u2013'
  if isinstance(value, bool):
    return 'yes' if value else 'no'
  if isinstance(value, int):
    return f'{value:,}'
  if isinstance(value, float):
    return f'{value:,.1f}' if abs(value) >= 100 or value == int(value) else f'{value:,.4g}'
  return str(value)


def format_percent(fraction: float) -> str:
  return f'{100 * fraction:.1f}%' if fraction else '0%'


def status_of(summary: Mapping[str, Any], *, failed_key: str) -> Dict[str, str]:
  """``{'text', 'reason', 'level'}`` of the run; ``level`` is ``ok``, ``warn`` or ``bad``.

  Uses ``summary['status']``/``['status_reason']`` when the job set them;
  otherwise derives it from reconciliation and the failure count.
  """
  failed = summary.get(failed_key) or 0
  if summary.get('status') is not None:
    text = str(summary['status'])
    reason = summary.get('status_reason')
    if _BAD_STATUS.search(text):
      level = 'bad'
    elif _GOOD_STATUS.match(text) and not failed:
      level = 'ok'
    else:
      level = 'warn'
    return {'text': text, 'reason': '' if reason is None else str(reason), 'level': level}
  if summary.get('reconciled') is False:
    return {
        'text': 'not reconciled',
        'level': 'bad',
        'reason': 'records read differ from outputs plus dead letters'
    }
  if failed:
    return {
        'text': 'completed with dead letters',
        'level': 'warn',
        'reason': f'{format_number(failed)} records failed'
    }
  return {'text': 'completed', 'level': 'ok', 'reason': ''}


def _summary_json(summary: Mapping[str, Any]) -> str:
  return json.dumps(summary, indent=2, sort_keys=True, default=str)


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')


def _letter_sections(counts: Mapping[str, int], letters: Mapping[str, List[Dict[str, Any]]]):
  reasons = sorted(set(counts) | set(letters), key=lambda r: (-(counts.get(r) or 0), r))
  return [{'reason': r, 'count': counts.get(r), 'examples': letters.get(r, [])} for r in reasons]


def _histogram_sections(histograms: Mapping[str, Dict[str, Any]]):
  sections = []
  for index, (name, hist) in enumerate(sorted(histograms.items())):
    sections.append({
        'name': name,
        'hist': hist,
        'binned': int(sum(hist['counts'])),
        'per_row': hist['values'] / hist['rows'] if hist['rows'] else 0,
        'svg': (plots.histogram_chart(hist, name=f'hist{index}', title=name)
                if hist['counts'] else None)
    })
  return sections


def render_site_report(summary: Mapping[str, Any],
                       *,
                       site_table: Optional[Dict[str, Any]],
                       histograms: Mapping[str, Dict[str, Any]],
                       series: Sequence[Dict[str, Any]],
                       letters: Mapping[str, List[Dict[str, Any]]],
                       generated_at: Optional[str] = None) -> str:
  """The per-site job's page.

  Args:
    summary: the run's ``summary.json`` dict.
    site_table: :class:`SiteTable` output (``{'totals', 'worst'}``), or None.
    histograms: :class:`OutputHistograms` output.
    series: :class:`SampleSeries` output.
    letters: :class:`SampleDeadLetters` output.
    generated_at: time shown in the footer (default: now).
  """
  failed_counts = dict(summary.get('failed') or {})
  worst = sorted((site_table or {}).get('worst', []), key=worst_first)
  context = {
      'title': 'Per-site predictions',
      'summary': summary,
      'summary_json': _summary_json(summary),
      'status': status_of(summary, failed_key='failed_total'),
      'totals': (site_table or {}).get('totals'),
      'sites': worst,
      'letters': _letter_sections(failed_counts, letters),
      'failed_svg': (plots.bar_chart(
          failed_counts, name='failed', xlabel='dead letters', color=plots.FAILED_COLOR)
                     if failed_counts else None),
      'histograms': _histogram_sections(histograms),
      'series_svg': plots.series_chart(series, name='series') if series else None,
      'series': series,
      'generated_at': generated_at or _now(),
  }
  return environment().get_template(SITE_TEMPLATE).render(context)


def _site_rows(sites: Mapping[str, Dict[str, Any]]):
  """The detection job's per-site rows, worst first, at most ``MAX_TABLE_ROWS``."""
  rows = []
  for site, counts in sites.items():
    read = counts.get('images_read') or 0
    failed = counts.get('images_failed') or 0
    rows.append(dict(counts, site_id=site, failed_fraction=failed / read if read else 0.0))
  rows.sort(key=lambda r: (-r['failed_fraction'], -(r.get('images_failed') or 0), r['site_id']))
  return rows[:MAX_TABLE_ROWS]


def render_detection_report(summary: Mapping[str, Any],
                            *,
                            thumbnails: Sequence[Dict[str, Any]],
                            letters: Mapping[str, List[Dict[str, Any]]],
                            images_matched: Optional[int] = None,
                            generated_at: Optional[str] = None) -> str:
  """The detection job's page.

  Args:
    summary: the run's ``summary.json`` dict.
    thumbnails: :class:`ContactSheet` output.
    letters: :class:`SampleDeadLetters` output.
    images_matched: images with at least one kept detection.
    generated_at: time shown in the footer (default: now).
  """
  labels = dict(summary.get('detections') or {})
  sites = dict(summary.get('sites') or {})
  failed_counts = dict(summary.get('failed') or {})
  per_site = {site: c.get('detections') or 0 for site, c in sites.items()}
  context = {
      'title': 'Image detection',
      'summary': summary,
      'summary_json': _summary_json(summary),
      'status': status_of(summary, failed_key='images_failed'),
      'images_matched': images_matched,
      'thumbnails': thumbnails,
      'labels': sorted(labels.items(), key=lambda kv: (-kv[1], kv[0])),
      'labels_svg': (plots.bar_chart(labels, name='labels', xlabel='detections')
                     if labels else None),
      'sites_svg': (plots.bar_chart(per_site, name='sites', xlabel='detections')
                    if any(per_site.values()) else None),
      'sites': _site_rows(sites),
      'sites_total': len(sites),
      'letters': _letter_sections(failed_counts, letters),
      'failed_svg': (plots.bar_chart(
          failed_counts, name='failed', xlabel='dead letters', color=plots.FAILED_COLOR)
                     if failed_counts else None),
      'generated_at': generated_at or _now(),
  }
  return environment().get_template(DETECTION_TEMPLATE).render(context)


def render_fallback(summary: Mapping[str, Any],
                    *,
                    title: str,
                    failed_key: str,
                    error: str,
                    generated_at: Optional[str] = None) -> str:
  """A minimal page (status and the summary as JSON) for when the full page fails to render."""
  context = {
      'title': title,
      'summary': summary,
      'summary_json': _summary_json(summary),
      'status': status_of(summary, failed_key=failed_key),
      'error': error,
      'generated_at': generated_at or _now(),
  }
  return environment().get_template(FALLBACK_TEMPLATE).render(context)
