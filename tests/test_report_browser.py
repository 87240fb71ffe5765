"""Both jobs' ``report.html`` opened in a real headless browser (Debian's ``chromium``).

Each page comes from a real small run with the report wired in; the browser
must load it with no script error, no console message and no refused load
(the page's CSP forbids the network), show the run's numbers, decode every
thumbnail, sort the site table, and paint something that is not blank.

Never skipped: without chromium these tests fail, saying how to install it
(``make browser``; CI runs it).
"""
import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest
from PIL import Image

import detect_helpers
import report_pages
from report_pages import page_stats
from samples import energy_sites
from samples import site_demo

pytestmark = pytest.mark.e2e

BROWSERS = ('chromium', 'chromium-browser', 'google-chrome')
INSTALL_HINT = ('no headless browser found (tried %s): install Debian\'s chromium with '
                '`make browser` or `apt-get update && apt-get install -y chromium`')
N_SITES = 4
HOURS = 48
WINDOW = (1280, 2600)


@pytest.fixture(scope='module')
def chromium():
  for name in BROWSERS:
    found = shutil.which(name)
    if found:
      return found
  pytest.fail(INSTALL_HINT % ', '.join(BROWSERS), pytrace=False)


class Browser:
  """One headless chromium per call, with its own throw-away profile."""

  def __init__(self, exe: str, profile: pathlib.Path):
    self._exe = exe
    self._profile = profile

  def _run(self, url: str, *flags: str) -> subprocess.CompletedProcess:
    command = [
        self._exe, '--headless', '--disable-gpu', '--no-sandbox', '--disable-dev-shm-usage',
        '--no-first-run', '--disable-extensions', f'--user-data-dir={self._profile}',
        '--enable-logging=stderr', '--v=0', '--virtual-time-budget=5000', *flags, url
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc

  def dump_dom(self, page: pathlib.Path, fragment: str = ''):
    """``(DOM after load, console and CSP messages)``."""
    proc = self._run(page.as_uri() + fragment, '--dump-dom')
    messages = [
        l for l in proc.stderr.splitlines()
        if ':CONSOLE' in l or 'Refused to' in l or 'Uncaught' in l
    ]
    return proc.stdout, messages

  def screenshot(self, page: pathlib.Path, target: pathlib.Path) -> Image.Image:
    self._run(page.as_uri(), f'--screenshot={target}', '--hide-scrollbars',
              f'--window-size={WINDOW[0]},{WINDOW[1]}')
    return Image.open(target).convert('RGB')


@pytest.fixture(scope='module')
def browser(chromium, tmp_path_factory):
  return Browser(chromium, tmp_path_factory.mktemp('chromium-profile'))


@pytest.fixture(scope='module')
def site_report(tmp_path_factory):
  """The per-site job on the hourly energy sample (4 sites x 48 h) plus the demo's bad lines."""
  root = tmp_path_factory.mktemp('browser_site')
  energy_sites.write_model_root(str(root / 'models'), N_SITES)
  sites = [energy_sites.site_name(i) for i in range(N_SITES)]
  energy_sites.write_jsonl(str(root / 'input' / 'readings.jsonl'),
                           energy_sites.generate_rows(sites, HOURS), site_demo.BAD_LINES)
  out = root / 'out'
  report_pages.run_site_job(input_glob=f'{root}/input/*.jsonl',
                            model_root=f'{root}/models',
                            output=str(out),
                            extra=['--key_field=reading_id'])
  return out


@pytest.fixture(scope='module')
def detection_report(tmp_path_factory):
  """The detection job (real yolov3-tiny) on two sites' photos and two broken files."""
  root = tmp_path_factory.mktemp('browser_detect')
  images = root / 'images-input'
  h = detect_helpers
  h.save(images / 'kitchen' / 'coffee.jpg', h.coffee(), quality=92)
  h.save(images / 'garage' / 'motorcycle.png', h.motorcycle())
  h.save(images / 'garage' / 'plain.jpg', Image.new('RGB', (320, 240), (90, 140, 200)))
  h.truncated_jpeg(images / 'kitchen' / 'truncated.jpg')
  (images / 'garage' / 'empty.jpeg').write_bytes(b'')
  out = root / 'out'
  report_pages.run_detection_job(input_dir=str(images), output=str(out))
  return out


def _summary(out: pathlib.Path) -> dict:
  return json.loads((out / 'summary.json').read_text())


def root_attributes(dom: str) -> dict:
  """The attributes of the dumped DOM's ``<html>`` element."""
  tag = re.search(r'<html\b([^>]*)>', dom).group(1)
  return dict(re.findall(r'([\w-]+)="([^"]*)"', tag))


def assert_loaded_cleanly(dom: str, messages):
  root = root_attributes(dom)
  assert root.get('data-report-ready') == '1', 'the page\'s load handler did not run'
  assert 'data-report-errors' not in root, root['data-report-errors']
  assert root.get('data-report-broken-images') == '0', 'an image did not decode'
  assert not messages, messages


def assert_not_blank(image: Image.Image, min_colors: int, min_ink: float):
  """More than ``min_colors`` distinct colours and ``min_ink`` of the pixels dark or
  saturated (a page with one heading has ~60 colours and 0.06% ink)."""
  assert image.size == WINDOW
  colors = image.getcolors(maxcolors=1 << 20)
  assert len(colors) > min_colors, f'{len(colors)} distinct colours'
  ink = sum(n for n, (r, g, b) in colors if min(r, g, b) < 200) / (WINDOW[0] * WINDOW[1])
  assert ink > min_ink, f'{ink:.2%} of the pixels have ink'


def _site_order(dom: str):
  return re.findall(r'<tr data-site="([^"]*)">', dom)


def test_site_report_loads_and_shows_the_run(browser, site_report, tmp_path):
  summary = _summary(site_report)
  dom, messages = browser.dump_dom(site_report / 'report.html')
  assert_loaded_cleanly(dom, messages)
  stats = page_stats(dom)
  for key in ('records_read', 'predictions_written', 'failed_total', 'sites_seen', 'models_loaded',
              'models_fast_path', 'model_load_ms_total'):
    assert stats[key][0] == str(summary[key]), key
  assert summary['records_read'] == N_SITES * HOURS + len(site_demo.BAD_LINES)
  assert stats['records_read'][1] == f"{summary['records_read']:,}"
  for reason, count in summary['failed'].items():
    assert f'<code>{reason}</code> · <span class="count" data-value="{count}">' in dom
  # Worst first: rows without a site, the site without a model, the partial site.
  assert _site_order(dom)[:3] == ['', 'site-9999', 'site-0001']
  histogram = re.search(r'data-output="energy_kwh" data-binned="(\d+)"', dom)
  assert int(histogram.group(1)) == summary['predictions_written']
  assert dom.count('<svg') == 3  # dead letters, one histogram, the time series
  assert len(re.findall(r'class="[^"]*\bbadge (ok|partial|failed)\b', dom)) >= N_SITES
  shot = browser.screenshot(site_report / 'report.html', tmp_path / 'site-report.png')
  shutil.copy(tmp_path / 'site-report.png', _keep('site-report.png'))
  assert_not_blank(shot, min_colors=500, min_ink=0.02)


def test_site_table_sorts_in_the_browser(browser, site_report):
  dom, messages = browser.dump_dom(site_report / 'report.html', '#sort=-rows')
  assert_loaded_cleanly(dom, messages)
  rows = [
      int(n) for n in re.findall(
          r'<tr data-site="[^"]*">.*?</td>\s*<td>.*?</td>\s*'
          r'<td class="n" data-sort="(\d+)"', dom, re.S)
  ]
  assert len(rows) == len(_site_order(dom)) == N_SITES + 2
  assert rows == sorted(rows, reverse=True)
  assert _site_order(dom)[0] == 'site-0001'  # 48 rows + the failed one; worst first is ''
  assert 'data-key="rows" data-order="desc"' in dom


def test_detection_report_loads_and_shows_matched_images_first(browser, detection_report, tmp_path):
  summary = _summary(detection_report)
  dom, messages = browser.dump_dom(detection_report / 'report.html')
  assert_loaded_cleanly(dom, messages)
  stats = page_stats(dom)
  for key in ('images_read', 'images_ok', 'images_failed', 'detections_total', 'annotated'):
    assert stats[key][0] == str(summary[key]), key
  assert summary['images_failed'] == 2 and summary['images_ok'] == 3
  figures = re.findall(r'<figure class="(matched|unmatched)" data-image="([^"]+)">', dom)
  assert [f[1] for f in figures][-1] == 'garage/plain.jpg'
  assert [f[0] for f in figures] == ['matched', 'matched', 'unmatched']
  assert set(
      f[1] for f in figures) == {'kitchen/coffee.jpg', 'garage/motorcycle.png', 'garage/plain.jpg'}
  assert root_attributes(dom)['data-report-images'] == '3'
  assert dom.count('src="data:image/jpeg;base64,') == 3
  for label, count in summary['detections'].items():
    assert re.search(rf'<tr data-label="{label}"><td>{label}</td><td class="n">{count}<', dom)
  for reason, count in summary['failed'].items():
    assert f'<code>{reason}</code> · <span class="count" data-value="{count}">' in dom
  shot = browser.screenshot(detection_report / 'report.html', tmp_path / 'detection-report.png')
  shutil.copy(tmp_path / 'detection-report.png', _keep('detection-report.png'))
  assert_not_blank(shot, min_colors=2000, min_ink=0.03)


def _keep(name: str) -> str:
  """Where a screenshot is kept for people to look at (``REPORT_SCREENSHOTS``, else tmp)."""
  folder = os.environ.get('REPORT_SCREENSHOTS') or os.path.join(os.environ.get('TMPDIR', '/tmp'),
                                                                'report-screenshots')
  os.makedirs(folder, exist_ok=True)
  return os.path.join(folder, name)
