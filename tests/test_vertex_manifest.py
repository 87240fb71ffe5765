"""Per-site version manifests: pins, defaults for other sites, no silent fallback, exact lines."""
import json

import pytest

from common.failures import RecordFailure
from common import paths
from models.site.layout import locate
from models.site.pool import SiteModelPool
from models.site.version_manifest import load_manifest
from models.site.version_manifest import pinned_version
from savedmodel_builders import save_linear


def write(tmp_path, name, text):
  path = tmp_path / name
  path.write_bytes(text.encode() if isinstance(text, str) else text)
  return str(path)


def test_json_and_csv_manifests_give_the_same_pins(tmp_path):
  as_json = write(tmp_path, 'v.json', '{\n  "site-a": "3",\n  "007": 12,\n  "é x": "003"\n}\n')
  as_csv = write(tmp_path, 'v.csv',
                 '\ufeffversion,site_id\r\n3,site-a\r\n\r\n12,007\r\n003,é x\r\n')
  want = {'site-a': '3', '007': '12', 'é x': '003'}
  assert load_manifest(as_json) == want
  assert load_manifest(as_csv) == want


def test_other_names_are_told_apart_by_their_first_character(tmp_path):
  assert load_manifest(write(tmp_path, 'pins', ' {"a": "1"}')) == {'a': '1'}
  assert load_manifest(write(tmp_path, 'pins.txt', 'site_id,version\na,1\n')) == {'a': '1'}
  assert load_manifest(write(tmp_path, 'empty.csv', '')) == {}
  assert load_manifest(write(tmp_path, 'header.csv', 'site_id,version\n')) == {}
  assert load_manifest(write(tmp_path, 'empty.json', '{}')) == {}


@pytest.mark.parametrize('name,text,line,words', [
    ('m.json', '{\n  "a": "1",\n  "b": "x"\n}', 3, "version 'x' of site 'b'"),
    ('m.json', '{\n  "a": "1",\n  "a": "2"\n}', 3, "'a' is listed twice (first on line 2)"),
    ('m.json', '{\n  "a": "1",\n  "b": 2.0\n}', 3, 'version 2.0'),
    ('m.json', '{\n  "a": "-1"\n}', 2, 'not a non-negative integer'),
    ('m.json', '{\n  "a": true\n}', 2, 'version True'),
    ('m.json', '{\n  "a": ["1"]\n}', 2, "version ['1']"),
    ('m.json', '{\n  "": "1"\n}', 2, 'empty site id'),
    ('m.json', '{\n  "a": "1",\n  "b": "2",\n}', 4, 'invalid JSON'),
    ('m.json', '["a", "1"]', 1, 'one JSON object'),
    ('m.json', '', 1, 'invalid JSON'),
    ('m.json', '{"a": "٣"}', 1, 'not a non-negative integer'),
    ('m.csv', 'site_id,version\na,1\nb,2,3\n', 3, '3 fields'),
    ('m.csv', 'site_id,version\na,1\nb,v2\n', 3, "version 'v2' of site 'b'"),
    ('m.csv', 'site_id,version\na,1\nb,2\na,3\n', 4, "'a' is listed twice (first on line 2)"),
    ('m.csv', 'site,version\na,1\n', 1, 'the header must name the columns site_id,version'),
    ('m.csv', 'a,1\nb,2\n', 1, 'the header must name'),
    ('m.csv', 'site_id,version\n"a,1\n', 2, 'invalid CSV'),
    ('m.csv', 'site_id,version\n,1\n', 2, 'empty site id'),
    ('m.csv', b'site_id,version\na,1\n\xff,2\n', 3, 'not UTF-8'),
])
def test_a_malformed_manifest_names_the_file_and_the_line(tmp_path, name, text, line, words):
  path = write(tmp_path, name, text)
  with pytest.raises(ValueError) as e:
    load_manifest(path)
  assert str(e.value).startswith(f'{path}: line {line}: ')
  assert words in str(e.value)


def test_a_manifest_on_gcs(gcs_bucket):
  paths.write_bytes(f'{gcs_bucket}/conf/pins.json', json.dumps({'s': '2'}).encode())
  assert load_manifest(f'{gcs_bucket}/conf/pins.json') == {'s': '2'}


def test_pinned_version_falls_back_to_the_default_for_unlisted_sites():
  manifest = {'a': '3'}
  assert pinned_version('a', manifest, '9') == '3'
  assert pinned_version('b', manifest, '9') == '9'
  assert pinned_version('b', manifest) is None
  assert pinned_version('a', {}, None) is None


@pytest.fixture
def model_root(tmp_path):
  for site, version, bias in (('a', '1', 1.0), ('a', '2', 2.0), ('a', '3', 3.0), ('b', '1', 10.0),
                              ('b', '5', 50.0)):
    save_linear(str(tmp_path / site / version), [1.0], bias)
  return str(tmp_path)


def test_locate_with_the_pins_loads_the_pinned_or_the_highest(model_root, tmp_path):
  manifest = load_manifest(write(tmp_path, 'pins.csv', 'site_id,version\na,2\n'))
  assert locate(model_root, 'a', pinned_version('a', manifest)).version == '2'
  assert locate(model_root, 'b', pinned_version('b', manifest)).version == '5'
  assert locate(model_root, 'b', pinned_version('b', manifest, '1')).version == '1'


def test_a_pinned_version_that_does_not_exist_is_no_model_never_another_version(
    model_root, tmp_path):
  manifest = load_manifest(write(tmp_path, 'pins.json', '{"a": "7"}'))
  with pytest.raises(RecordFailure) as e:
    locate(model_root, 'a', pinned_version('a', manifest))
  assert e.value.reason == 'no_model' and 'version 7' in e.value.message


def test_a_pool_locating_through_the_manifest_fails_only_the_pinned_missing_site(model_root):
  """What the wiring gives: the pool's locate call with pinned_version(...)."""
  manifest = {'a': '7', 'b': '1'}

  class PinnedPool(SiteModelPool):

    def get(self, site_id):
      self._model_version = pinned_version(site_id, manifest)
      return super().get(site_id)

  pool = PinnedPool(model_root=model_root, signature='serving_default', share_graphs=False)
  with pytest.raises(RecordFailure) as e:
    pool.get('a')
  assert e.value.reason == 'no_model'
  model = pool.get('b').model
  assert model.version == '1'
  assert model.predict([{'x': [2.0]}])[0].outputs['y'] == pytest.approx(12.0)
