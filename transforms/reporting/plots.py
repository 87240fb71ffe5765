"""The report's charts: matplotlib figures rendered to inline SVG text.

Figures are :class:`matplotlib.figure.Figure` objects drawn on the SVG
canvas directly (no pyplot, no interactive backend). Text stays text in the
SVG (``svg.fonttype: none``; matplotlib escapes it), and every ``id`` in a
chart is prefixed with the chart's name so several charts can share one page.
Margins are set from the figure size and label lengths, not measured: a
measured (tight or constrained) layout costs several times the drawing.
"""
import datetime
import io
import re
from typing import Any, Dict, List, Mapping, Sequence

import matplotlib
from matplotlib import dates as mdates
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from markupsafe import Markup

MAX_BARS = 30
MAX_LABEL = 32
_CHAR_IN = 0.075  # width of one 9 pt label character, inches (a generous estimate)
COLORS = ('#1f5fa8', '#d1495b', '#2a9d8f', '#e9a23b', '#6d597a', '#3d405b')
FAILED_COLOR = '#d1495b'
_SVG_RC = {
    'svg.fonttype': 'none',
    'svg.hashsalt': 'run-report',
    'font.size': 9,
    'axes.spines.top': False,
    'axes.spines.right': False
}
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(url\(#|href="#)([^)"]+)')


def _new_figure(width: float, height: float) -> Figure:
  fig = Figure(figsize=(width, height), dpi=96)
  FigureCanvasSVG(fig)
  return fig


def to_svg(fig: Figure, name: str) -> Markup:
  """The figure as one ``<svg>`` element (no XML prolog), ids prefixed with ``name``."""
  out = io.StringIO()
  fig.savefig(out, format='svg', metadata={'Date': None})
  text = out.getvalue()
  text = text[text.index('<svg'):]
  text = _ID.sub(lambda m: f'id="{name}-{m.group(1)}"', text)
  text = _REF.sub(lambda m: f'{m.group(1)}{name}-{m.group(2)}', text)
  return Markup(text)  # matplotlib escaped every text it wrote


def bar_chart(counts: Mapping[str, int],
              *,
              name: str,
              xlabel: str,
              color: str = COLORS[0]) -> Markup:
  """Horizontal bars, largest first; at most :data:`MAX_BARS` (the rest summed as "other")."""
  items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
  if len(items) > MAX_BARS:
    rest = sum(v for _, v in items[MAX_BARS - 1:])
    items = items[:MAX_BARS - 1] + [(f'{len(counts) - MAX_BARS + 1} others', rest)]
  items = [(_short(str(label)), value) for label, value in items]
  width, height = 4.6, 0.75 + 0.26 * max(len(items), 1)
  longest = max((len(label) for label, _ in items), default=1)
  with matplotlib.rc_context(_SVG_RC):
    fig = _new_figure(width, height)
    fig.subplots_adjust(left=min(0.6, (0.2 + _CHAR_IN * longest) / width),
                        right=0.95,
                        bottom=0.5 / height,
                        top=1 - 0.1 / height)
    ax = fig.subplots()
    labels = [label for label, _ in items][::-1]
    values = [value for _, value in items][::-1]
    bars = ax.barh(range(len(items)), values, color=color)
    ax.set_yticks(range(len(items)), labels)
    ax.bar_label(bars, padding=3)
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(x=0.12)
    return to_svg(fig, name)


def histogram_chart(histogram: Dict[str, Any], *, name: str, title: str) -> Markup:
  """Bars of ``histogram['counts']`` over ``histogram['edges']``."""
  edges = histogram['edges']
  counts = histogram['counts']
  with matplotlib.rc_context(_SVG_RC):
    fig = _new_figure(4.2, 2.6)
    fig.subplots_adjust(left=0.15, right=0.96, bottom=0.12, top=0.88)
    ax = fig.subplots()
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    ax.bar(edges[:-1],
           counts,
           width=widths,
           align='edge',
           color=COLORS[0],
           edgecolor='white',
           linewidth=0.5)
    ax.set_title(_short(title), loc='left')
    ax.set_ylabel('values')
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return to_svg(fig, name)


def series_chart(series: Sequence[Dict[str, Any]], *, name: str, columns: int = 3) -> Markup:
  """Small multiples: one panel per site, one line per output, shared y axis."""
  rows = (len(series) + columns - 1) // columns
  width, height = 3.2 * min(columns, len(series)), 2.3 * rows
  with matplotlib.rc_context(_SVG_RC):
    fig = _new_figure(width, height)
    fig.subplots_adjust(left=0.5 / width,
                        right=1 - 0.1 / width,
                        bottom=0.45 / height,
                        top=1 - 0.3 / height,
                        wspace=0.12,
                        hspace=0.55)
    axes = fig.subplots(rows, min(columns, len(series)), squeeze=False, sharey=True)
    outputs = sorted({n for s in series for point in s['values'] for n in point})
    for index, site in enumerate(series):
      ax = axes[index // columns][index % columns]
      x: List[Any] = site['x']
      if site['datetime']:
        x = [datetime.datetime.fromtimestamp(v, datetime.timezone.utc) for v in x]
        locator = mdates.AutoDateLocator(maxticks=4)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
      for k, output in enumerate(outputs):
        pairs = [(xv, p[output]) for xv, p in zip(x, site['values']) if output in p]
        if pairs:
          ax.plot([a for a, _ in pairs], [b for _, b in pairs],
                  color=COLORS[k % len(COLORS)],
                  linewidth=1.2,
                  marker='.' if len(pairs) < 40 else None,
                  label=output)
      ax.set_title(_short(str(site['site_id'])), loc='left')
      if index >= len(series) - columns:
        ax.set_xlabel(site.get('time_field') or '')
    for index in range(len(series), rows * axes.shape[1]):
      axes[index // columns][index % columns].set_visible(False)
    if len(outputs) > 1:
      axes[0][0].legend(loc='upper left', frameon=False)
    return to_svg(fig, name)


def _short(label: str) -> str:
  return label if len(label) <= MAX_LABEL else label[:MAX_LABEL - 1] + '\u2026'
