"""Progress lines of local runs: counted where the elements are made, the final line equal
to summary.json, silent unless asked (or on a terminal)."""
import functools
import io
import json
import logging
import re

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

import detect_helpers
from beam_jobs import progress
from beam_jobs import site_predictions
from beam_jobs import detect_images

LINE = re.compile(r'^(?P<counts>[^()]+?)(?: \((?P<rate>[\d,.]+) (?P<unit>\w+)/s\))?$')


class _Clock:

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def _plan():
  return progress.Plan(taps=(),
                       fields=(progress.Field('read', 'records read',
                                              'records'), progress.Field('sites', 'sites seen'),
                               progress.Field('written', 'predictions written',
                                              'predictions'), progress.Field('failed', 'failed')))


def test_line_counts_and_rate_of_the_last_counter_that_moved():
  tally, clock = progress.Tally(), _Clock()
  reporter = progress.Reporter(_plan(), tally, clock=clock)
  assert reporter.line() == '0 records read, 0 sites seen, 0 predictions written, 0 failed'
  tally.add([('read', 120_000)])
  clock.now += 10
  assert reporter.line() == ('120,000 records read, 0 sites seen, 0 predictions written, '
                             '0 failed (12,000 records/s)')
  tally.add([('read', 5), ('sites', 812), ('written', 98_500), ('failed', 3)])
  clock.now += 10
  assert reporter.line() == ('120,005 records read, 812 sites seen, 98,500 predictions '
                             'written, 3 failed (9,850 predictions/s)')
  tally.add([('sites', 1), ('failed', 1)])  # no unit: no rate of their own
  clock.now += 10
  assert reporter.line() == ('120,005 records read, 813 sites seen, 98,500 predictions '
                             'written, 4 failed')
  tally.add([('read', 3)])
  clock.now += 10
  assert reporter.line().endswith('(0.3 records/s)')


def test_auto_means_a_terminal():

  class Tty(io.StringIO):

    def isatty(self):
      return True

  assert progress.enabled('auto', Tty()) and not progress.enabled('auto', io.StringIO())
  assert progress.enabled('on', io.StringIO()) and not progress.enabled('off', Tty())


def _stat_of(n):
  return ('even' if n % 2 == 0 else 'odd', ), 1


def _same(x):
  return x


def test_taps_count_each_element_once_through_flattens():
  plan = progress.Plan(taps=(progress.Tap('Sink', functools.partial(progress.each, field='all')),
                             progress.Tap('Stats',
                                          functools.partial(progress.stats, fields=('even', ))),
                             progress.Tap('NoSuchStep',
                                          functools.partial(progress.each, field='never'))),
                       fields=(progress.Field('all', 'elements'), ))
  pipeline, merged = _flattened_pipeline()
  assert [p.producer.full_label.split('/')[0] for p in progress.sources(merged)] == ['A', 'B', 'C']
  with progress.reporting(pipeline, plan, interval_s=60) as tally:
    pipeline.run().wait_until_finish()
  assert tally.snapshot() == {'all': 18, 'even': 5 + 4 + 1}
  # Each run counts into its own tally: a second run does not add to the first.
  pipeline, _ = _flattened_pipeline()
  with progress.reporting(pipeline, plan, interval_s=60) as again:
    pipeline.run().wait_until_finish()
  assert again is not tally and again.snapshot() == tally.snapshot()


def _flattened_pipeline():
  pipeline = beam.Pipeline(options=PipelineOptions(['--runner=FnApiRunner']))
  a = pipeline | 'A' >> beam.Create(range(10))
  b = pipeline | 'B' >> beam.Create(range(100, 107))
  ab = (a, b) | 'AB' >> beam.Flatten()
  c = pipeline | 'C' >> beam.Create([1000])
  merged = (ab, c) | 'ABC' >> beam.Flatten()
  _ = merged | 'Sink' >> beam.Map(_same)
  _ = merged | 'AsStats' >> beam.Map(_stat_of) | 'Stats' >> beam.Map(_same)
  return pipeline, merged


def _progress_lines(caplog):
  return [r.getMessage() for r in caplog.records if r.name == 'beam_jobs.progress']


def _counts(line):
  counts = LINE.match(line).group('counts')
  return {
      words: int(n.replace(',', ''))
      for n, words in (part.split(' ', 1) for part in counts.split(', '))
  }


@pytest.fixture
def site_job(tmp_path):
  import savedmodel_builders  # pylint: disable=import-outside-toplevel
  savedmodel_builders.save_linear(str(tmp_path / 'models' / 'a' / '1'), [1.0, 2.0], 0.5)
  savedmodel_builders.save_linear(str(tmp_path / 'models' / 'b' / '1'), [3.0, -1.0], 0.0)
  (tmp_path / 'in').mkdir()
  rows = [json.dumps({'site_id': 'abc'[i % 3], 'x': [i, 1.0]}) for i in range(300)]
  rows += ['{"site_id": "a", "x": [1, 2', json.dumps({'site_id': 'a', 'x': 'oops'})]
  (tmp_path / 'in' / 'x.jsonl').write_text('\n'.join(rows) + '\n')
  return [
      f'--input={tmp_path}/in/x.jsonl', f'--model_root={tmp_path}/models', '--max_failed_fraction=1'
  ]


def test_site_run_progress_ends_with_the_summarys_counts(site_job, tmp_path, caplog):
  caplog.set_level(logging.INFO, logger='beam_jobs.progress')
  out = tmp_path / 'out'
  site_predictions.run(site_job + [f'--output={out}', '--progress=on', '--progress_interval_s=0.2'])
  lines = _progress_lines(caplog)
  assert len(lines) >= 2 and all(LINE.match(l) for l in lines)
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['records_read'] == 302 and summary['failed_total'] == 102
  assert _counts(lines[-1]) == {
      'records read': summary['records_read'],
      'sites seen': summary['sites_seen'],
      'predictions written': summary['predictions_written'],
      'failed': summary['failed_total']
  }
  seen = [_counts(l) for l in lines]
  for before, after in zip(seen, seen[1:]):
    assert all(after[k] >= before[k] for k in before)


@pytest.mark.parametrize('flags', [[], ['--progress=auto'], ['--progress=off']])
def test_no_progress_lines_unless_asked(site_job, tmp_path, caplog, flags):
  caplog.set_level(logging.INFO, logger='beam_jobs.progress')
  site_predictions.run(site_job + [f'--output={tmp_path}/out', '--progress_interval_s=0.1'] + flags)
  assert not _progress_lines(caplog)
  assert json.loads((tmp_path / 'out' / 'summary.json').read_text())['records_read'] == 302


@pytest.mark.e2e
def test_detect_run_progress_ends_with_the_summarys_counts(tmp_path, caplog):
  caplog.set_level(logging.INFO, logger='beam_jobs.progress')
  h = detect_helpers
  h.save(tmp_path / 'in' / 'siteA' / 'coffee.jpg', h.coffee())
  h.save(tmp_path / 'in' / 'siteB' / 'motorcycle.png', h.motorcycle())
  (tmp_path / 'in' / 'siteB' / 'empty.jpg').write_bytes(b'')
  out = tmp_path / 'out'
  detect_images.run([
      '--input',
      str(tmp_path / 'in'), '--output',
      str(out), '--progress=on', '--progress_interval_s=0.5', '--max_failed_fraction=0.5'
  ] + h.darknet_flags())
  summary = json.loads((out / 'summary.json').read_text())
  assert (summary['images_read'], summary['images_ok'], summary['images_failed']) == (3, 2, 1)
  assert _counts(_progress_lines(caplog)[-1]) == {
      'images read': 3,
      'done': 2,
      'failed': 1,
      'annotated': summary['annotated']
  }
