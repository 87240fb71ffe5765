"""The run report's data transforms and renderer: values checked, bounds kept, text escaped."""
import base64
import collections
import datetime
import io
import json
import math
import random
import re
from html import unescape

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from PIL import Image

from common import paths
from transforms.reporting import histograms as hist
from transforms.reporting import render
from transforms.reporting import samples
from transforms.reporting import site_outcomes as so
from transforms.reporting import thumbnails
from transforms.reporting import write
from transforms.site.inference import Prediction
import report_pages
import savedmodel_builders
import site_job_data
from report_pages import page_stats
from tests_support import read_jsonl


def _prediction(site, outputs, version='1', instance=None):
  return Prediction(site, 'in.jsonl', instance or {'site_id': site}, outputs, version)


def _letter(site, reason, record=None, message='went wrong'):
  return {'stage': 'predict', 'reason': reason, 'message': message, 'site_id': site,
          'source': 'in.jsonl', 'record': record}


def _strict(text):
  def no_constants(name):
    raise ValueError(f'not strict JSON: {name}')
  return json.loads(text, parse_constant=no_constants)


# --- per-site outcomes ------------------------------------------------------------------

def test_site_outcomes_count_each_site_and_rows_without_a_site():
  batches = [[_prediction('a', {'y': 1.0}), _prediction('a', {'y': 2.0})],
             [_prediction('b', {'y': 3.0}, version='7')], [_prediction('42', {'y': 0.5})]]
  letters = [_letter('a', 'bad_feature'), _letter('c', 'no_model'), _letter('c', 'no_model'),
             _letter(None, 'bad_json'), _letter(42, 'bad_feature')]
  loads = [('a', {'model_version': '1', 'fast_path': False, 'load_ms': 120.0}),
           ('b', {'model_version': '7', 'fast_path': True, 'load_ms': 2.5}),
           ('b', {'model_version': '7', 'fast_path': False, 'load_ms': 100.0})]
  with TestPipeline(runner='FnApiRunner') as p:
    lines = (p | 'Batches' >> beam.Create(batches)) | so.SiteOutcomes(
        failed=p | 'Letters' >> beam.Create(letters),
        model_loads=p | 'Loads' >> beam.Create(loads))
    assert_that(lines | beam.Map(lambda l: (l['site_id'], l['status'], l['rows'],
                                            l['predicted'], l['failed'], l['failed_by_reason'],
                                            l['model_versions'], l['models_loaded'],
                                            l['models_fast_path'], l['model_load_ms'])),
                equal_to([
                    ('a', 'partial', 3, 2, 1, {'bad_feature': 1}, ['1'], 1, 0, 120.0),
                    ('b', 'ok', 1, 1, 0, {}, ['7'], 2, 1, 102.5),
                    ('42', 'partial', 2, 1, 1, {'bad_feature': 1}, ['1'], 0, 0, 0.0),
                    ('c', 'failed', 2, 0, 2, {'no_model': 2}, [], 0, 0, 0.0),
                    (None, 'failed', 1, 0, 1, {'bad_json': 1}, [], 0, 0, 0.0)]))


def test_site_outcomes_without_model_loads_leave_the_load_fields_null(tmp_path):
  with TestPipeline(runner='FnApiRunner') as p:
    lines = (p | 'Batches' >> beam.Create([[_prediction('a', {'y': 1.0})]])) | so.SiteOutcomes(
        failed=p | 'Letters' >> beam.Create([_letter('a', 'bad_feature')]))
    files = lines | so.WriteSiteOutcomes(str(tmp_path))
    assert_that(files | beam.combiners.Count.Globally(), equal_to([1]))
  [written] = list((tmp_path / 'sites').glob('sites-*.jsonl'))
  [line] = [_strict(l) for l in written.read_text().splitlines()]
  assert line == {'site_id': 'a', 'status': 'partial', 'rows': 2, 'predicted': 1, 'failed': 1,
                  'failed_fraction': 0.5, 'failed_by_reason': {'bad_feature': 1},
                  'model_versions': ['1'], 'models_loaded': None, 'models_fast_path': None,
                  'model_load_ms': None}


_SITES = st.one_of(st.none(), st.sampled_from(['a', 'b', 'site-\u00e9', '<x>']), st.integers(0, 3))
_OUTCOMES = st.lists(st.tuples(_SITES, st.one_of(st.none(), st.sampled_from(
    ['bad_json', 'no_model', 'bad_feature']))), max_size=60)


@settings(max_examples=80, deadline=None)
@given(outcomes=_OUTCOMES, seed=st.integers(0, 1000))
def test_site_lines_reconcile_and_do_not_depend_on_how_the_combine_is_split(outcomes, seed):
  events = []
  predictions = [_prediction(so.site_key(s), {'y': 1.0}) for s, reason in outcomes
                 if reason is None and s is not None]
  rng = random.Random(seed)
  rng.shuffle(predictions)
  cut = rng.randint(0, len(predictions))
  for batch in (predictions[:cut], predictions[cut:]):
    events.extend(so.prediction_events(batch))
  events.extend(so.failure_event(_letter(s, r)) for s, r in outcomes
                if r is not None or s is None)
  rng.shuffle(events)
  fn = so.SiteOutcomeFn()
  by_site = {}
  for site, event in events:  # each event in its own accumulator, merged in random groups
    by_site.setdefault(site, []).append(fn.add_input(fn.create_accumulator(), event))
  lines = []
  for site, accs in by_site.items():
    while len(accs) > 1:
      k = rng.randint(2, len(accs))
      accs = [fn.merge_accumulators(accs[:k])] + accs[k:]
    lines.append(so.outcome_line((site, fn.extract_output(accs[0])), True))
  assert sum(l['rows'] for l in lines) == len(outcomes)
  assert sum(l['predicted'] for l in lines) == len(predictions)
  table_fn = so.SiteTableFn(max_sites=3)
  parts = [table_fn.create_accumulator()]
  for line in lines:
    if rng.random() < 0.3:
      parts.append(table_fn.create_accumulator())
    parts[-1] = table_fn.add_input(parts[-1], line)
    _strict(json.dumps(line, allow_nan=False))
    assert line['rows'] == line['predicted'] + sum(line['failed_by_reason'].values())
    assert line['status'] == ('ok' if not line['failed'] else
                              'failed' if not line['predicted'] else 'partial')
  table = table_fn.extract_output(table_fn.merge_accumulators(parts))
  acc = table['totals']
  assert acc['rows'] == len(outcomes) and acc['lines'] == len(lines)
  assert acc['ok'] + acc['partial'] + acc['failed'] == acc['sites']
  assert table['worst'] == sorted(lines, key=so.worst_first)[:3]


def test_site_table_is_bounded_and_worst_first():
  lines = [so.outcome_line((f's{i}', c), False) for i, c in enumerate(_counts_list())]
  with TestPipeline(runner='FnApiRunner') as p:
    table = p | beam.Create(lines) | so.SiteTable(max_sites=3)
    assert_that(table | beam.Map(lambda t: ([l['site_id'] for l in t['worst']],
                                            t['totals']['sites'], t['totals']['rows'])),
                equal_to([(['s2', 's1', 's3'], 5, 22)]))


def _counts_list():
  out = []
  for predicted, failed in ((5, 0), (3, 3), (0, 1), (8, 2), (0, 0)):
    c = so._Counts()  # pylint: disable=protected-access
    c.predicted = predicted
    c.failed = {'bad_feature': failed} if failed else {}
    out.append(c)
  return out


# --- histograms ---------------------------------------------------------------------------

_NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                    st.integers(-1000, 1000), st.booleans())
_VALUE = st.one_of(_NUMBER, st.text(max_size=3), st.none(),
                   st.lists(_NUMBER, max_size=4),
                   st.lists(st.one_of(_NUMBER, st.text(max_size=2),
                                      st.lists(_NUMBER, max_size=2)), max_size=3))


def _flat_numbers(value):
  if isinstance(value, (bool, int, float)):
    return [float(value)]
  if isinstance(value, list):
    return [x for item in value for x in _flat_numbers(item)]
  return []


@settings(max_examples=120, deadline=None)
@given(outputs=st.lists(st.dictionaries(st.sampled_from(['y', 'z', 'label']), _VALUE,
                                        min_size=1), max_size=30),
       seed=st.integers(0, 1000))
def test_histogram_counts_equal_numpy_over_all_values_however_batched(outputs, seed):
  rng = random.Random(seed)
  predictions = [_prediction('a', o) for o in outputs]
  batches, i = [], 0
  while i < len(predictions):
    k = rng.randint(1, 5)
    batches.append(predictions[i:i + k])
    i += k
  fn = hist.OutputRangesFn()
  ranges = fn.extract_output(fn.merge_accumulators(
      [fn.add_input(fn.create_accumulator(), hist.numeric_columns(b)) for b in batches]
      or [fn.create_accumulator()]))
  edges = hist.chosen_ranges(ranges, 12, 7)
  counts = hist.sum_counts(hist.batch_counts(hist.numeric_columns(b), edges) for b in batches)
  result = hist.histograms(counts, ranges, edges)
  for name in set(n for o in outputs for n in o):
    values = np.array([x for o in outputs if name in o for x in _flat_numbers(o[name])])
    finite = values[np.isfinite(values)]
    if not finite.size:
      assert result[name]['counts'] == [] and result[name]['rows'] > 0
      continue
    h = result[name]
    assert h['rows'] == sum(1 for o in outputs if name in o)
    assert h['values'] == values.size and h['non_finite'] == values.size - finite.size
    assert hist.values_in(h) == finite.size
    expected, _ = np.histogram(finite, bins=np.asarray(h['edges']))
    assert h['counts'] == expected.tolist()
    assert h['min'] == finite.min() and h['max'] == finite.max()


def test_output_histograms_in_a_pipeline_bin_every_element_of_list_outputs():
  batches = [[_prediction('a', {'y': [1.0, 2.0], 's': 'text'}),
              _prediction('b', {'y': [3.0, float('nan')], 's': 'more'})],
             [_prediction('c', {'y': [10.0, 10.0]})]]
  with TestPipeline(runner='FnApiRunner') as p:
    out = p | beam.Create(batches) | hist.OutputHistograms(bins=3)
    assert_that(out, equal_to([{
        'y': {'rows': 3, 'values': 6, 'non_finite': 1, 'non_numeric': 0, 'min': 1.0,
              'max': 10.0, 'edges': [1.0, 4.0, 7.0, 10.0], 'counts': [3, 0, 2]},
        's': {'rows': 2, 'values': 0, 'non_finite': 0, 'non_numeric': 2, 'min': None,
              'max': None, 'edges': [], 'counts': []}}]))


def test_output_histograms_of_nothing_is_empty():
  with TestPipeline(runner='FnApiRunner') as p:
    out = p | beam.Create([]) | hist.OutputHistograms()
    assert_that(out, equal_to([{}]))


def test_numeric_values_of_odd_outputs():
  assert hist.numeric_values(10 ** 400)[0].tolist() == [math.inf]
  values, other = hist.numeric_values([[1, 2], [3], 'x', None, True])
  assert values.tolist() == [1.0, 2.0, 3.0, 1.0] and other == 2
  assert hist.numeric_values(b'bytes')[0].size == 0


# --- samples ------------------------------------------------------------------------------

def test_dead_letter_samples_are_bounded_per_reason_and_truncated():
  long_record = {'text': 'x' * 5000}
  letters = ([_letter('a', 'bad_json', record='{"a": ' + 'y' * 900)] * 10
             + [_letter('b', 'no_model', record=long_record, message='m' * 800)] * 2
             + [{'reason': None, 'record': {1, 2}}])
  with TestPipeline(runner='FnApiRunner') as p:
    out = p | beam.Create(letters) | samples.SampleDeadLetters(per_reason=3)
    assert_that(out | beam.Map(lambda d: sorted((r, len(e), max(len(x['record']) for x in e),
                                                 max(len(x['message']) for x in e))
                                                for r, e in d.items())),
                equal_to([[('bad_json', 3, samples.MAX_TEXT, 10),
                           ('no_model', 2, samples.MAX_TEXT, samples.MAX_TEXT),
                           ('unknown', 1, 6, 4)]]))


_FIVE_AM = datetime.datetime(2026, 11, 20, 5, tzinfo=datetime.timezone.utc).timestamp()


@settings(max_examples=80, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from('abc'), st.one_of(st.integers(), st.text())),
                      max_size=50),
       k=st.integers(1, 5), seed=st.integers(0, 1000))
def test_bottom_k_samples_are_bounded_and_do_not_depend_on_the_split(pairs, k, seed):
  fn = samples.BottomKPerKeyFn(k)
  whole = fn.extract_output(fn.merge_accumulators([
      fn.add_input(fn.create_accumulator(), p) for p in pairs] or [fn.create_accumulator()]))
  rng = random.Random(seed)
  parts = [fn.create_accumulator()]
  for pair in rng.sample(pairs, len(pairs)):
    if rng.random() < 0.3:
      parts.append(fn.create_accumulator())
    parts[-1] = fn.add_input(parts[-1], pair)
  assert fn.extract_output(fn.merge_accumulators(parts)) == whole
  for key, kept in whole.items():
    values = [v for kk, v in pairs if kk == key]
    assert len(kept) == min(k, len(values)) and all(v in values for v in kept)


@settings(max_examples=80, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from('abc'), st.one_of(st.integers(0, 20), st.text())),
                      max_size=60),
       k=st.integers(1, 5), cuts=st.lists(st.integers(0, 60), max_size=6))
def test_pre_sampled_batches_keep_what_sending_every_value_keeps(pairs, k, cuts):
  # A producer samples each batch itself (bottom_k) and sends one element per key.
  whole = samples.BottomKPerKeyFn(k)
  expected = whole.extract_output(whole.merge_accumulators(
      [whole.add_input(whole.create_accumulator(), p) for p in pairs]
      or [whole.create_accumulator()]))
  bounds = sorted({0, len(pairs), *(c for c in cuts if c < len(pairs))})
  merge = samples.MergeBottomKPerKeyFn(k)
  accumulator = merge.create_accumulator()
  for start, stop in zip(bounds, bounds[1:]):
    batch = pairs[start:stop]
    for key in sorted({key for key, _ in batch}):
      accumulator = merge.add_input(
          accumulator, (key, samples.bottom_k([v for kk, v in batch if kk == key], k)))
  assert merge.extract_output(merge.merge_accumulators([accumulator])) == expected


def _first_number_reference(value):
  values, _ = hist.numeric_values(value)
  return next((n for n in values.tolist() if math.isfinite(n)), None)


_OUTPUT_SCALARS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                            st.booleans(), st.text(max_size=3), st.none())


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(_OUTPUT_SCALARS, st.lists(_OUTPUT_SCALARS, max_size=3),
                       st.lists(st.lists(st.floats(), min_size=1, max_size=2), max_size=2)))
def test_first_number_of_an_output_is_what_its_numeric_values_give(value):
  got, want = samples.first_number(value), _first_number_reference(value)
  assert got == want or (got is not None and want is not None and math.isclose(got, want))


def _reference_point(prediction, time_field):
  """A prediction's series point as the report defines it, row by row, with its rank."""
  found = samples.row_time(prediction.instance, time_field)
  if found is None:
    return None
  values, row = {}, []
  for name in sorted(prediction.outputs)[:samples.MAX_SERIES_OUTPUTS]:
    number = samples.first_number(prediction.outputs[name])
    row.append(math.nan if number is None else number)
    if number is not None:
      values[name] = number
  point = (found[0], found[1], values, found[2])
  rank = int(samples.point_ranks(np.array([found[0]]), np.array([row]))[0])
  return (rank, point) if values else None


_TIMES = st.one_of(st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=False),
                   st.sampled_from(['2026-11-20T05:00:00Z', 'soon', '2026-11-20']), st.none())
_OUTPUT = st.one_of(st.floats(allow_nan=True), st.lists(st.floats(), max_size=2), st.text(max_size=2))


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from('ab'), st.sampled_from(['hour', 'timestamp', 'x']),
                               _TIMES, st.dictionaries(st.sampled_from('pqrs'), _OUTPUT,
                                                       max_size=4)), max_size=30),
       k=st.integers(1, 6), cut=st.integers(0, 30))
def test_series_points_from_columns_are_the_rows_points(rows, k, cut):
  predictions = [_prediction(site, outputs, instance={field: t})
                 for site, field, t, outputs in rows]
  expected = {}
  for p in predictions:
    ranked = _reference_point(p, samples.AUTO)
    if ranked is not None:
      expected.setdefault(p.site_id, []).append(ranked)
  expected = {site: [point for _, point in sorted(ranked, key=lambda r: (r[0], repr(r[1])))[:k]]
              for site, ranked in expected.items()}
  merge = samples.MergeBottomKPerKeyFn(k)
  accumulator = merge.create_accumulator()
  for batch in (predictions[:cut], predictions[cut:]):
    for element in samples.timed_points(batch, samples.AUTO):
      for sampled in samples.series_points(element, sites=['a', 'b'], k=k):
        accumulator = merge.add_input(accumulator, sampled)
  assert merge.extract_output(accumulator) == expected


@pytest.mark.parametrize('value, expected', [
    (7, (7.0, False)), (2.5, (2.5, False)), (True, None), (float('nan'), None),
    (10 ** 400, None), ('2026-11-20T05:00:00Z', (_FIVE_AM, True)),
    ('2026-11-20 05:00:00', (_FIVE_AM, True)), ('2026-11-20T06:00:00+01:00', (_FIVE_AM, True)),
    ('2026-11-20', (_FIVE_AM - 5 * 3600, True)), ('soon', None), (None, None), ([1], None)])
def test_time_values(value, expected):
  assert samples.time_value(value) == expected


def test_series_sample_the_worst_sites_that_predicted_sorted_by_time():
  batches = []
  for site in 'abcd':
    batches.append([_prediction(site, {'y': [float(h)], 'z': 'text'},
                                instance={'hour': h, 'site_id': site})
                    for h in range(30, -1, -1)])
  batches.append([_prediction('b', {'y': 1.0}, instance={'no_time': 1})])
  lines = [so.outcome_line((s, c), False) for s, c in zip('abcd', _counts_list()[:4])]
  with TestPipeline(runner='FnApiRunner') as p:
    site_lines = p | 'Lines' >> beam.Create(lines)
    out = (p | 'Batches' >> beam.Create(batches)) | samples.SampleSeries(
        site_lines=site_lines, max_sites=2, points_per_site=10)
    # b: 50% failed, d: 20%, a: 0% (left out: two sites); c predicted nothing.
    assert_that(out | beam.Map(lambda s: [
        (x['site_id'], x['time_field'], len(x['x']), x['x'] == sorted(x['x']),
         all(v['y'] == t for v, t in zip(x['values'], x['x']))) for x in s]),
        equal_to([[('b', 'hour', 10, True, True), ('d', 'hour', 10, True, True)]]))


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
  records = [{'image': str(inputs / 'site' / name), 'site_id': 'site', 'detections': dets}
             for name, dets in (('a.jpg', [{'label': 'cup', 'score': 0.4}]), ('b.jpg', []),
                                ('gone.jpg', []))]
  made = [thumbnails.make_thumbnail(r, output_dir=str(output), input_root=str(inputs))
          for r in records]
  (size_a, pixel_a), (size_b, pixel_b) = (_decoded_pixel(m['src']) for m in made[:2])
  assert pixel_a[2] > 150 and pixel_a[0] < 60, 'the annotated copy, not the input'
  assert made[0]['annotated'] == 'annotated/site/a-det.jpg'
  assert pixel_b[1] > 150 and made[1]['annotated'] is None
  assert size_a == (240, 180) and size_b == (240, 24)
  assert made[2]['src'] is None and made[2]['relative_path'] == 'site/gone.jpg'


def test_contact_sheet_shows_matched_images_first_and_at_most_max(tmp_path):
  records = [{'image': f'{tmp_path}/s/{i}.jpg', 'site_id': 's',
              'detections': [{'label': 'x', 'score': i / 10}] if i % 2 else []}
             for i in range(10)]
  with TestPipeline(runner='FnApiRunner') as p:
    sheet = p | beam.Create(records) | thumbnails.ContactSheet(
        output_dir=str(tmp_path / 'out'), input_root=str(tmp_path), max_images=6)
    assert_that(sheet | beam.Map(lambda s: [t['relative_path'] for t in s]),
                equal_to([['s/9.jpg', 's/7.jpg', 's/5.jpg', 's/3.jpg', 's/1.jpg', 's/0.jpg']]))


# --- rendering ----------------------------------------------------------------------------

SUMMARY = {'records_read': 1234, 'predictions_written': 1230, 'failed_total': 4,
           'failed': {'bad_json': 3, 'no_model': 1}, 'sites_seen': 3, 'models_loaded': 2,
           'models_fast_path': 1, 'model_load_ms_total': 12.5, 'reconciled': True,
           'run_id': 'r-1', 'wall_time_s': 3.2}


def _site_page(summary=SUMMARY, **overrides):
  data = dict(site_table=None, histograms={}, series=[], letters={})
  data.update(overrides)
  return render.render_site_report(summary, generated_at='now', **data)


def test_the_page_shows_the_summary_numbers():
  stats = page_stats(_site_page())
  for key in ('records_read', 'predictions_written', 'failed_total', 'sites_seen',
              'models_loaded', 'models_fast_path'):
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
  line = so.outcome_line((evil, _counts_list()[1]), True)
  html = _site_page(
      dict(SUMMARY, failed={evil: 2}, run_id=evil),
      site_table={'totals': {'lines': 1, 'sites': 1, 'ok': 0, 'partial': 1, 'failed': 0,
                             'rows': 6, 'predicted': 3, 'failed_rows': 3}, 'worst': [line]},
      histograms={evil: {'rows': 1, 'values': 1, 'non_finite': 0, 'non_numeric': 0, 'min': 1.0,
                         'max': 1.0, 'edges': [0.5, 1.5], 'counts': [1]}},
      series=[{'site_id': evil, 'datetime': False, 'time_field': evil, 'x': [1.0, 2.0],
               'values': [{evil: 1.0}, {evil: 2.0}]}],
      letters={evil: [samples.letter_example(_letter(evil, evil, record=evil, message=evil))[1]]})
  assert '<script>alert' not in html
  assert html.count('<script>') == 2  # the page's own two
  assert '&lt;script&gt;alert(1)&lt;/script&gt;' in html


def test_the_page_loads_nothing_from_the_network():
  html = _site_page(histograms={'y': {'rows': 2, 'values': 2, 'non_finite': 0, 'non_numeric': 0,
                                      'min': 0.0, 'max': 1.0, 'edges': [0.0, 0.5, 1.0],
                                      'counts': [1, 1]}})
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
  summary = {'images_read': 5, 'images_ok': 4, 'images_failed': 1, 'annotated': 4,
             'detections_total': 3, 'detections': {'cup': 2, 'zebra': 1},
             'failed': {'decode_failed': 1}, 'ignored_files': 0, 'reconciled': True,
             'sites': {'k': {'images_read': 2, 'images_ok': 2, 'images_failed': 0,
                             'detections': 2},
                       'g': {'images_read': 3, 'images_ok': 2, 'images_failed': 1,
                             'detections': 1}}}
  html = render.render_detection_report(summary, thumbnails=[], letters={},
                                        images_matched=2, generated_at='now')
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
  report_pages.run_site_job(input_glob=f'{root}/input/*.jsonl', model_root=f'{root}/models',
                            output=str(out), extra=['--key_field=rid'])
  return out


@pytest.mark.e2e
def test_real_run_page_numbers_equal_the_summary(site_run):
  summary = json.loads((site_run / 'summary.json').read_text())
  html = (site_run / 'report.html').read_text()
  stats = page_stats(html)
  for key in ('records_read', 'predictions_written', 'failed_total', 'sites_seen',
              'models_loaded', 'models_fast_path', 'model_load_ms_total'):
    assert stats[key][0] == str(summary[key]), key
  assert summary['reconciled'] and 'data-value="true"' in html
  for reason, count in summary['failed'].items():
    assert re.search(rf'data-reason="{reason}">\s*<h3><code>{reason}</code> · '
                     rf'<span class="count" data-value="{count}"', html), reason
  assert 'sites/sites-00000-of-00001.jsonl' in ' '.join(summary['outputs']['sites'])


@pytest.mark.e2e
def test_real_run_site_lines_agree_with_the_written_outputs(site_run):
  summary = json.loads((site_run / 'summary.json').read_text())
  lines = [_strict(l) for f in sorted((site_run / 'sites').glob('*.jsonl'))
           for l in f.read_text().splitlines()]
  by_site = {l['site_id']: l for l in lines}
  assert len(by_site) == len(lines)
  predictions = read_jsonl(site_run / 'predictions')
  letters = read_jsonl(site_run / 'errors')
  assert sum(l['rows'] for l in lines) == summary['records_read']
  for site, line in by_site.items():
    assert line['predicted'] == sum(1 for p in predictions if p['site_id'] == site)
    reasons = collections.Counter(
        l['reason'] for l in letters if so.site_key(l['site_id']) == site)
    assert line['failed_by_reason'] == dict(reasons), site
  assert by_site['lin-a']['model_versions'] == ['2']
  assert by_site['lin-b']['model_versions'] == ['10']
  assert by_site['42']['status'] == 'ok'
  assert by_site['empty']['status'] == 'failed' and by_site['empty']['models_loaded'] == 0
  assert by_site[None]['failed_by_reason'] == {
      'bad_encoding': 1, 'bad_json': 1, 'bad_site': 3, 'empty_line': 1, 'missing_site': 2,
      'not_an_object': 1}
  assert sum(l['models_loaded'] for l in lines) == summary['models_loaded']
  assert sum(l['models_fast_path'] for l in lines) == summary['models_fast_path']
  assert sum(l['model_load_ms'] for l in lines) == pytest.approx(
      summary['model_load_ms_total'], abs=0.1 * len(lines))
  html = (site_run / 'report.html').read_text()
  shown = re.findall(r'<tr data-site="([^"]*)">', html)
  assert len(shown) == len(lines)
  worst = sorted(by_site, key=lambda s: so.worst_first(by_site[s]))
  assert shown[:3] == [s or '' for s in worst[:3]]


@pytest.mark.e2e
def test_real_run_histograms_count_every_numeric_output_value(site_run):
  predictions = read_jsonl(site_run / 'predictions')
  html = (site_run / 'report.html').read_text()
  shown = {name: (int(binned), int(rows)) for name, binned, rows in re.findall(
      r'data-output="([^"]+)" data-binned="(\d+)" data-rows="(\d+)"', html)}
  expected = {}
  for p in predictions:
    for name, value in p['prediction'].items():
      values = [v for v in _flat_numbers(value) if math.isfinite(v)]
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
      {'image': f'{gcs_bucket}/in/site/a.jpg', 'site_id': 'site', 'detections': []},
      output_dir=run, input_root=f'{gcs_bucket}/in')
  assert made['annotated'] == 'annotated/site/a-det.jpg' and made['relative_path'] == 'site/a.jpg'
  assert _decoded_pixel(made['src'])[1][2] > 150
  path = write.write_detection_page({'images_read': 1, 'images_ok': 1, 'reconciled': True},
                                    f'{run}/report.html', [made], {}, 0)
  assert path == f'{run}/report.html'
  html = paths.read_bytes(path).decode('utf-8')
  assert page_stats(html)['images_read'][0] == '1' and made['src'] in html
  [meta] = paths.match(path)
  assert meta.size_in_bytes == len(html.encode('utf-8'))
  from google.cloud import storage  # pylint: disable=import-outside-toplevel
  blob = storage.Client().bucket('test-bucket').get_blob('runs/r1/report.html')
  assert blob.content_type.startswith('text/html'), 'opens in a browser from the console'
