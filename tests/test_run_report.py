"""The run report's pages: thumbnails, the renderer (values shown, text escaped, nothing
loaded from the network, a fallback page), and real runs with the report wired in.

The data the pages are made from: tests/test_report_reductions.py (site outcomes,
histograms) and tests/test_report_samples.py (samples)."""
import base64
import collections
import io
import json
import math
import re
from html import unescape

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
from PIL import Image

from common import paths
from transforms.reporting import render
from transforms.reporting import samples
from transforms.reporting import site_outcomes as so
from transforms.reporting import thumbnails
from transforms.reporting import write
import report_pages
import savedmodel_builders
import site_job_data
from report_data import counts_list
from report_data import flat_numbers
from report_data import make_letter
from report_pages import page_stats
from tests_support import read_jsonl
from tests_support import strict_json

# --- thumbnails ---------------------------------------------------------------------------


def _jpeg(path, color, size=(400, 300)):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.new('RGB', size, color).save(path, 'JPEG')


def _decoded_pixel(uri):
  data = base64.b64decode(uri.split(',', 1)[1])
  with Image.open(io.BytesIO(data)) as im:
    return im.size, im.convert('RGB').getpixel((im.width // 2, im.height // 2))


def test_thumbnails_prefer_the_annotated_copy_then_the_input_then_a_caption(tmp_path):
  inputs, output = tmp_path / 'in', tmp_path / 'out'
  _jpeg(inputs / 'site' / 'a.jpg', (200, 0, 0))
  _jpeg(output / 'annotated' / 'site' / 'a-det.jpg', (0, 0, 200))
  _jpeg(inputs / 'site' / 'b.jpg', (0, 200, 0), size=(1000, 100))
  records = [{
      'image': str(inputs / 'site' / name),
      'site_id': 'site',
      'detections': dets
  } for name, dets in (('a.jpg', [{
      'label': 'cup',
      'score': 0.4
  }]), ('b.jpg', []), ('gone.jpg', []))]
  made = [
      thumbnails.make_thumbnail(r, output_dir=str(output), input_root=str(inputs)) for r in records
  ]
  (size_a, pixel_a), (size_b, pixel_b) = (_decoded_pixel(m['src']) for m in made[:2])
  assert pixel_a[2] > 150 and pixel_a[0] < 60, 'the annotated copy, not the input'
  assert made[0]['annotated'] == 'annotated/site/a-det.jpg'
  assert pixel_b[1] > 150 and made[1]['annotated'] is None
  assert size_a == (240, 180) and size_b == (240, 24)
  assert made[2]['src'] is None and made[2]['relative_path'] == 'site/gone.jpg'


def test_contact_sheet_shows_matched_images_first_and_at_most_max(tmp_path):
  records = [{
      'image': f'{tmp_path}/s/{i}.jpg',
      'site_id': 's',
      'detections': [{
          'label': 'x',
          'score': i / 10
      }] if i % 2 else []
  } for i in range(10)]
  with TestPipeline(runner='FnApiRunner') as p:
    sheet = p | beam.Create(records) | thumbnails.ContactSheet(
        output_dir=str(tmp_path / 'out'), input_root=str(tmp_path), max_images=6)
    assert_that(sheet | beam.Map(lambda s: [t['relative_path'] for t in s]),
                equal_to([['s/9.jpg', 's/7.jpg', 's/5.jpg', 's/3.jpg', 's/1.jpg', 's/0.jpg']]))


# --- rendering ----------------------------------------------------------------------------

SUMMARY = {
    'records_read': 1234,
    'predictions_written': 1230,
    'failed_total': 4,
    'failed': {
        'bad_json': 3,
        'no_model': 1
    },
    'sites_seen': 3,
    'models_loaded': 2,
    'models_fast_path': 1,
    'model_load_ms_total': 12.5,
    'reconciled': True,
    'run_id': 'r-1',
    'wall_time_s': 3.2
}


def _site_page(summary=SUMMARY, **overrides):
  data = dict(site_table=None, histograms={}, series=[], letters={})
  data.update(overrides)
  return render.render_site_report(summary, generated_at='now', **data)


def test_the_page_shows_the_summary_numbers():
  stats = page_stats(_site_page())
  for key in ('records_read', 'predictions_written', 'failed_total', 'sites_seen', 'models_loaded',
              'models_fast_path'):
    assert stats[key] == (str(SUMMARY[key]), f'{SUMMARY[key]:,}')
  assert stats['model_load_ms_total'] == ('12.5', '12.5')


def test_status_and_reason_are_shown_when_the_job_sets_them():
  html = _site_page(dict(SUMMARY, status='failed', status_reason='2 sites had no model'))
  assert re.search(r'class="status bad".*id="run-status">failed<', html, re.S)
  assert 'id="status-reason">2 sites had no model<' in html
  ok = _site_page(dict(SUMMARY, failed_total=0, failed={}, status='succeeded'))
  assert 'class="status ok"' in ok
  derived = _site_page(dict(SUMMARY, reconciled=False))
  assert 'class="status bad"' in derived and 'not reconciled' in derived


def test_every_value_from_the_data_is_escaped():
  evil = '<script>alert(1)</script>'
  line = so.outcome_line((evil, counts_list()[1]), True)
  html = _site_page(
      dict(SUMMARY, failed={evil: 2}, run_id=evil),
      site_table={
          'totals': {
              'lines': 1,
              'sites': 1,
              'ok': 0,
              'partial': 1,
              'failed': 0,
              'rows': 6,
              'predicted': 3,
              'failed_rows': 3
          },
          'worst': [line]
      },
      histograms={
          evil: {
              'rows': 1,
              'values': 1,
              'non_finite': 0,
              'non_numeric': 0,
              'min': 1.0,
              'max': 1.0,
              'edges': [0.5, 1.5],
              'counts': [1]
          }
      },
      series=[{
          'site_id': evil,
          'datetime': False,
          'time_field': evil,
          'x': [1.0, 2.0],
          'values': [{
              evil: 1.0
          }, {
              evil: 2.0
          }]
      }],
      letters={
          evil: [samples.letter_example(make_letter(evil, evil, record=evil, message=evil))[1]]
      })
  assert '<script>alert' not in html
  assert html.count('<script>') == 2  # the page's own two
  assert '&lt;script&gt;alert(1)&lt;/script&gt;' in html


def test_the_page_loads_nothing_from_the_network():
  html = _site_page(
      histograms={
          'y': {
              'rows': 2,
              'values': 2,
              'non_finite': 0,
              'non_numeric': 0,
              'min': 0.0,
              'max': 1.0,
              'edges': [0.0, 0.5, 1.0],
              'counts': [1, 1]
          }
      })
  assert not re.search(r'(src|href)="(https?:)?//', html)
  assert "default-src 'none'" in html
  svg_ids = re.findall(r'\bid="([^"]+)"', html)
  assert len(svg_ids) == len(set(svg_ids)), 'ids are unique across charts'


def test_a_rendering_error_still_writes_a_page_with_the_summary(tmp_path):
  path = str(tmp_path / 'report.html')
  bad_histograms = {'y': {'rows': 1}}  # not what OutputHistograms makes
  assert write.write_site_page(SUMMARY, path, None, bad_histograms, [], {}) == path
  html = (tmp_path / 'report.html').read_text()
  assert 'id="render-error"' in html and 'KeyError' in html
  assert '"records_read": 1234' in unescape(html)
  assert page_stats(html) == {}, 'no half-rendered numbers'


def test_detection_page_numbers_and_tables():
  summary = {
      'images_read': 5,
      'images_ok': 4,
      'images_failed': 1,
      'annotated': 4,
      'detections_total': 3,
      'detections': {
          'cup': 2,
          'zebra': 1
      },
      'failed': {
          'decode_failed': 1
      },
      'ignored_files': 0,
      'reconciled': True,
      'sites': {
          'k': {
              'images_read': 2,
              'images_ok': 2,
              'images_failed': 0,
              'detections': 2
          },
          'g': {
              'images_read': 3,
              'images_ok': 2,
              'images_failed': 1,
              'detections': 1
          }
      }
  }
  html = render.render_detection_report(summary,
                                        thumbnails=[],
                                        letters={},
                                        images_matched=2,
                                        generated_at='now')
  stats = page_stats(html)
  for key in ('images_read', 'images_ok', 'images_failed', 'detections_total', 'annotated'):
    assert stats[key][0] == str(summary[key])
  assert stats['images_matched'][0] == '2'
  assert re.findall(r'<tr data-site="(\w+)">', html) == ['g', 'k']
  assert re.findall(r'<tr data-label="(\w+)">', html) == ['cup', 'zebra']


# --- a real run of the per-site job with the report wired in -------------------------------


@pytest.fixture(scope='module')
def site_run(tmp_path_factory):
  root = tmp_path_factory.mktemp('report_site')
  savedmodel_builders.build_model_root(str(root / 'models'))
  site_job_data.write_inputs(root / 'input')
  out = root / 'out'
  report_pages.run_site_job(input_glob=f'{root}/input/*.jsonl',
                            model_root=f'{root}/models',
                            output=str(out),
                            extra=['--key_field=rid'])
  return out


@pytest.mark.e2e
def test_real_run_page_numbers_equal_the_summary(site_run):
  summary = json.loads((site_run / 'summary.json').read_text())
  html = (site_run / 'report.html').read_text()
  stats = page_stats(html)
  for key in ('records_read', 'predictions_written', 'failed_total', 'sites_seen', 'models_loaded',
              'models_fast_path', 'model_load_ms_total'):
    assert stats[key][0] == str(summary[key]), key
  assert summary['reconciled'] and 'data-value="true"' in html
  for reason, count in summary['failed'].items():
    assert re.search(
        rf'data-reason="{reason}">\s*<h3><code>{reason}</code> · '
        rf'<span class="count" data-value="{count}"', html), reason
  assert 'sites/sites-00000-of-00001.jsonl' in ' '.join(summary['outputs']['sites'])


@pytest.mark.e2e
def test_real_run_site_lines_agree_with_the_written_outputs(site_run):
  summary = json.loads((site_run / 'summary.json').read_text())
  lines = [
      strict_json(l) for f in sorted((site_run / 'sites').glob('*.jsonl'))
      for l in f.read_text().splitlines()
  ]
  by_site = {l['site_id']: l for l in lines}
  assert len(by_site) == len(lines)
  predictions = read_jsonl(site_run / 'predictions')
  letters = read_jsonl(site_run / 'errors')
  assert sum(l['rows'] for l in lines) == summary['records_read']
  for site, line in by_site.items():
    assert line['predicted'] == sum(1 for p in predictions if p['site_id'] == site)
    reasons = collections.Counter(l['reason'] for l in letters if so.site_key(l['site_id']) == site)
    assert line['failed_by_reason'] == dict(reasons), site
  assert by_site['lin-a']['model_versions'] == ['2']
  assert by_site['lin-b']['model_versions'] == ['10']
  assert by_site['42']['status'] == 'ok'
  assert by_site['empty']['status'] == 'failed' and by_site['empty']['models_loaded'] == 0
  assert by_site[None]['failed_by_reason'] == {
      'bad_encoding': 1,
      'bad_json': 1,
      'bad_site': 3,
      'empty_line': 1,
      'missing_site': 2,
      'not_an_object': 1
  }
  assert sum(l['models_loaded'] for l in lines) == summary['models_loaded']
  assert sum(l['models_fast_path'] for l in lines) == summary['models_fast_path']
  assert sum(l['model_load_ms'] for l in lines) == pytest.approx(summary['model_load_ms_total'],
                                                                 abs=0.1 * len(lines))
  html = (site_run / 'report.html').read_text()
  shown = re.findall(r'<tr data-site="([^"]*)">', html)
  assert len(shown) == len(lines)
  worst = sorted(by_site, key=lambda s: so.worst_first(by_site[s]))
  assert shown[:3] == [s or '' for s in worst[:3]]


@pytest.mark.e2e
def test_real_run_histograms_count_every_numeric_output_value(site_run):
  predictions = read_jsonl(site_run / 'predictions')
  html = (site_run / 'report.html').read_text()
  shown = {
      name: (int(binned), int(rows))
      for name, binned, rows in re.findall(
          r'data-output="([^"]+)" data-binned="(\d+)" data-rows="(\d+)"', html)
  }
  expected = {}
  for p in predictions:
    for name, value in p['prediction'].items():
      values = [v for v in flat_numbers(value) if math.isfinite(v)]
      binned, rows = expected.get(name, (0, 0))
      expected[name] = (binned + len(values), rows + 1)
  assert shown == expected
  assert shown['key'] == (0, 2), 'the echo model\'s text output: listed, nothing binned'
  assert sum(binned for binned, _ in shown.values()) > 0


@pytest.mark.gcs
def test_report_and_thumbnails_on_gcs(gcs_bucket, tmp_path):
  run = f'{gcs_bucket}/runs/r1'
  data = io.BytesIO()
  Image.new('RGB', (300, 200), (0, 0, 220)).save(data, 'JPEG')
  paths.write_bytes(f'{run}/annotated/site/a-det.jpg', data.getvalue())
  made = thumbnails.make_thumbnail(
      {
          'image': f'{gcs_bucket}/in/site/a.jpg',
          'site_id': 'site',
          'detections': []
      },
      output_dir=run,
      input_root=f'{gcs_bucket}/in')
  assert made['annotated'] == 'annotated/site/a-det.jpg' and made['relative_path'] == 'site/a.jpg'
  assert _decoded_pixel(made['src'])[1][2] > 150
  path = write.write_detection_page({
      'images_read': 1,
      'images_ok': 1,
      'reconciled': True
  }, f'{run}/report.html', [made], {}, 0)
  assert path == f'{run}/report.html'
  html = paths.read_bytes(path).decode('utf-8')
  assert page_stats(html)['images_read'][0] == '1' and made['src'] in html
  [meta] = paths.match(path)
  assert meta.size_in_bytes == len(html.encode('utf-8'))
  from google.cloud import storage  # pylint: disable=import-outside-toplevel
  blob = storage.Client().bucket('test-bucket').get_blob('runs/r1/report.html')
  assert blob.content_type.startswith('text/html'), 'opens in a browser from the console'
