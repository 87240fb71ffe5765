"""Site ids name their model folder verbatim; ids that cannot name one are refused
before any I/O, and storage errors while looking a site up fail that site only."""
import errno
import json
import os

import pytest
from apache_beam.io.filesystem import BeamIOError
from google.api_core import exceptions as google_errors
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from common.failures import RecordFailure
from beam_jobs import site_predictions
from models.site import layout as site_model_layout
from models.site.errors import is_permanent_storage_error
from models.site.layout import locate
from models.site.layout import site_id_problem
from tests_support import read_jsonl
from transforms.site.instances import site_id_of
from transforms.site.rows import PackJsonLinesBySiteFn
import savedmodel_builders
from test_site_rows import rows_by_site
from test_site_rows import run_bundle

LONG_TEXT = 's' * 300
LONG_NUMBER = int('9' * 400)


@pytest.mark.parametrize('value,expected',
                         [('twin ', 'twin '), (' twin', ' twin'), ('Twin', 'Twin'),
                          ('e\u0301', 'e\u0301'), ('\u00e9', '\u00e9'), ('.hidden', '.hidden'),
                          ('a b', 'a b'), ('#1~:%', '#1~:%'), ('x' * 255, 'x' * 255),
                          ('\u00e9' * 127, '\u00e9' * 127), (1.0, '1'), (-0.0, '0'), (2.5, '2.5'),
                          (7, '7')])
def test_ids_are_used_verbatim(value, expected):
  assert site_id_of(value) == expected


@pytest.mark.parametrize('value', [
    '', '.', '..', 'a/b', '/abs', 'a\\b', 'a*', 'a?', 'a[1]', 'nul\x00', 'tab\t', 'line\n', 'cr\r',
    'del\x7f', 'c1\x85', 'lone \ud800', 'x' * 256, '\u00e9' * 128, LONG_TEXT, LONG_NUMBER, 1e300,
    float('nan'), True, None, [1], {
        'a': 1
    }
])
def test_ids_that_cannot_name_a_folder_are_refused(value):
  with pytest.raises(ValueError):
    site_id_of(value)


def test_ids_too_long_for_a_gcs_object_name_under_the_root_are_refused():
  root = 'gs://bucket/' + 'p' * 850
  assert site_id_problem('x' * 200) is None
  assert 'GCS object name' in site_id_problem('x' * 200, root)
  # {prefix}/{site}/saved_model.pb: exactly 1024 bytes is allowed.
  fits = 1024 - len('p' * 850 + '/') - len('/saved_model.pb')
  assert site_id_problem('x' * fits, root) is None
  assert site_id_problem('x' * (fits + 1), root) is not None
  assert site_id_problem('x' * 200, 'gs://bucket/models') is None
  assert 'local path' in site_id_problem('x' * 200, '/r' + '/' + 'd' * 250 * 16)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40) | st.text(st.characters(max_codepoint=0x7f), max_size=300))
def test_every_accepted_id_names_exactly_its_own_folder(tmp_path_factory, site_id):
  """Accepted ids round-trip through the file system; nothing else is needed of them."""
  if site_id_problem(site_id) is not None:
    return
  root = tmp_path_factory.mktemp('ids', numbered=True)
  assert site_id_problem(site_id, str(root)) is None
  os.makedirs(root / site_id / '1')
  assert os.listdir(root) == [site_id]
  with pytest.raises(RecordFailure) as failed:  # a folder, but no SavedModel in it
    locate(str(root), site_id)
  assert failed.value.reason == 'model_load_failed'


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.text(max_size=8), st.sampled_from(['twin', 'twin ', LONG_TEXT]),
                       st.integers(), st.floats()),
             min_size=1,
             max_size=20))
def test_each_row_is_packed_under_its_verbatim_id_or_is_a_bad_site(ids):
  lines = [('f.jsonl', json.dumps({'site_id': s, 'i': i})) for i, s in enumerate(ids)]
  blocks, letters = run_bundle(PackJsonLinesBySiteFn('site_id'), lines)
  packed = {row['i']: site for site, rows in rows_by_site(blocks).items() for _, row in rows}
  refused = {letter['record']['i']: letter for letter in letters}
  assert not packed.keys() & refused.keys()
  assert sorted(packed.keys() | refused.keys()) == list(range(len(ids)))
  for i, site in packed.items():
    assert site == site_id_of(ids[i]) and (not isinstance(ids[i], str) or site == ids[i])
  for letter in refused.values():
    assert (letter['stage'], letter['reason']) in {('key_by_site', 'bad_site'),
                                                   ('key_by_site', 'missing_site')}


def test_a_bad_id_is_refused_by_locate_before_any_io(monkeypatch):

  def no_io(*args):
    raise AssertionError(f'I/O for a bad id: {args}')

  monkeypatch.setattr(os, 'listdir', no_io)
  monkeypatch.setattr(site_model_layout.paths, 'exists', no_io)
  monkeypatch.setattr(site_model_layout.paths, 'match', no_io)
  for site_id in (LONG_TEXT, str(LONG_NUMBER), 'a/../b', ''):
    with pytest.raises(RecordFailure) as refused:
      locate('/models', site_id)
    assert refused.value.reason == 'bad_site'


def test_a_name_too_long_for_the_os_is_the_sites_dead_letter_not_a_crash(tmp_path):
  root = str(tmp_path / ('r' * 300))  # a root component beyond NAME_MAX: ENAMETOOLONG
  with pytest.raises(RecordFailure) as failed:
    locate(root, 'site')
  assert failed.value.reason == 'model_load_failed'
  assert 'File name too long' in failed.value.message


@pytest.mark.parametrize('error,permanent', [
    (PermissionError(errno.EACCES, 'Permission denied'), True),
    (OSError(errno.ENAMETOOLONG, 'File name too long'), True),
    (NotADirectoryError(errno.ENOTDIR, 'Not a directory'), True),
    (OSError(errno.EIO, 'Input/output error'), False),
    (TimeoutError(errno.ETIMEDOUT, 'timed out'), False),
    (BeamIOError('Match operation failed', {'gs://b/m/s/*': google_errors.Forbidden('no')}), True),
    (BeamIOError('Match operation failed',
                 {'gs://b/m/s/*': google_errors.BadRequest('bad')}), True),
    (BeamIOError('Match operation failed',
                 {'gs://b/m/s/*': google_errors.ServiceUnavailable('later')}), False),
    (BeamIOError('Match operation failed',
                 {'gs://b/m/s/*': google_errors.TooManyRequests('slow down')}), False),
    (BeamIOError('Match operation failed'), False),
    (google_errors.Forbidden('no'), True),
    (google_errors.InternalServerError('oops'), False),
    (ConnectionResetError(errno.ECONNRESET, 'reset'), False),
    (RuntimeError('?'), False),
],
                         ids=repr)
def test_storage_errors_are_sorted_into_permanent_and_transient(error, permanent):
  assert is_permanent_storage_error(error) is permanent


def test_permission_denied_fails_the_site_and_a_transient_error_propagates(tmp_path, monkeypatch):
  (tmp_path / 'site' / '1').mkdir(parents=True)
  real_listdir = os.listdir

  def listdir(path):
    if os.path.basename(path) == 'site':
      raise error
    return real_listdir(path)

  monkeypatch.setattr(os, 'listdir', listdir)
  error = PermissionError(errno.EACCES, 'Permission denied', str(tmp_path / 'site'))
  with pytest.raises(RecordFailure) as failed:
    locate(str(tmp_path), 'site')
  assert failed.value.reason == 'model_load_failed' and 'Permission denied' in failed.value.message
  error = OSError(errno.EIO, 'Input/output error')
  with pytest.raises(OSError) as propagated:
    locate(str(tmp_path), 'site')
  assert not isinstance(propagated.value, RecordFailure)


def test_version_folders_named_with_non_ascii_digits_are_ignored(tmp_path):
  savedmodel_builders.save_linear(str(tmp_path / 's' / '3'), [1.0], 0.0)
  (tmp_path / 's' / '\u00b2').mkdir()  # '²'.isdigit() is True, int('²') raises
  (tmp_path / 's' / '\u00b2' / 'saved_model.pb').write_bytes(b'x')
  assert locate(str(tmp_path), 's').version == '3'


@pytest.mark.e2e
def test_twin_sites_get_their_own_models_and_unusable_ids_fail_alone(tmp_path):
  models = tmp_path / 'models'
  dirs = {
      'twin': savedmodel_builders.save_linear(str(models / 'twin' / '1'), [1.0, 2.0], 0.0),
      'twin ': savedmodel_builders.save_linear(str(models / 'twin ' / '1'), [-3.0, 0.5], 7.5),
      ' twin': savedmodel_builders.save_linear(str(models / ' twin' / '1'), [0.0, 10.0], -1.0),
  }
  good = [{
      'site_id': site,
      'rid': f'{site!r}-{i}',
      'x': [float(i), 2.0]
  } for site in dirs for i in range(3)]
  bad = [{
      'site_id': LONG_TEXT,
      'rid': 'long',
      'x': [1.0, 2.0]
  }, {
      'site_id': LONG_NUMBER,
      'rid': 'digits',
      'x': [1.0, 2.0]
  }, {
      'site_id': 'twin\t',
      'rid': 'tab',
      'x': [1.0, 2.0]
  }]
  rows = good[:3] + bad[:1] + good[3:6] + bad[1:] + good[6:]
  (tmp_path / 'in.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
  out = tmp_path / 'out'
  site_predictions.run([
      f'--input={tmp_path}/in.jsonl', f'--model_root={models}', f'--output={out}',
      '--key_field=rid', '--max_failed_fraction=1'
  ])

  lines = read_jsonl(out / 'predictions')
  assert sorted(l['key'] for l in lines) == sorted(r['rid'] for r in good)
  by_key = {l['key']: l for l in lines}
  for row in good:
    line = by_key[row['rid']]
    assert line['site_id'] == row['site_id'] and line['instance'] == row
    expected = savedmodel_builders.call_directly(dirs[row['site_id']], row)['y']
    assert line['prediction']['y'] == pytest.approx(float(expected), rel=1e-6)
  same_x = {l['site_id']: l['prediction']['y'] for l in lines if l['instance']['x'][0] == 1.0}
  assert len(set(same_x.values())) == 3, same_x

  letters = read_jsonl(out / 'errors')
  assert sorted((l['record']['rid'], l['stage'], l['reason'])
                for l in letters) == [('digits', 'key_by_site', 'bad_site'),
                                      ('long', 'key_by_site', 'bad_site'),
                                      ('tab', 'key_by_site', 'bad_site')]
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['reconciled'] is True and summary['sites_seen'] == 3
