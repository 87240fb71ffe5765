"""Local-or-gs:// path helpers, against a local folder and the local GCS server."""
import pytest

from common import paths


def test_local_exists_match_and_copy(tmp_path):
  paths.write_bytes(str(tmp_path / 'a' / 'b' / 'f.bin'), b'\x00\x01')
  assert paths.exists(str(tmp_path / 'a')) and not paths.exists(str(tmp_path / 'zz'))
  assert [m.path for m in paths.match(str(tmp_path / 'a' / '**'))
          ] == [str(tmp_path / 'a' / 'b' / 'f.bin')]
  with paths.localize_tree(str(tmp_path / 'a')) as local:
    assert local == str(tmp_path / 'a')
  assert paths.relative_to(str(tmp_path / 'a' / 'b' / 'f.bin'), str(tmp_path)) == 'a/b/f.bin'


def test_read_text_drops_a_bom_and_names_the_line_of_the_first_bad_byte(tmp_path):
  path = str(tmp_path / 'f.txt')
  paths.write_bytes(path, '\ufeffcaf\u00e9\r\nok\n'.encode('utf-8'))
  assert paths.read_text(path) == 'caf\u00e9\r\nok\n'
  paths.write_bytes(path, b'one\ntwo\nthr\xe9e\n\xff\n')
  with pytest.raises(paths.NotUtf8Text) as e:
    paths.read_text(path)
  assert isinstance(e.value, ValueError) and e.value.line == 3
  assert str(e.value) == f'{path}: line 3: not UTF-8 text'


@pytest.mark.gcs
def test_gcs_bucket_root_prefix_and_localized_copy(gcs_bucket):
  paths.write_bytes(f'{gcs_bucket}/models/s1/1/saved_model.pb', b'pb')
  paths.write_bytes(f'{gcs_bucket}/models/s1/1/variables/v.index', b'ix')
  assert paths.exists(gcs_bucket) and paths.exists(gcs_bucket + '/')
  assert paths.exists(f'{gcs_bucket}/models') and paths.exists(
      f'{gcs_bucket}/models/s1/1/saved_model.pb')
  assert not paths.exists(f'{gcs_bucket}/other')
  with paths.localize_tree(f'{gcs_bucket}/models/s1') as local:
    with open(f'{local}/1/variables/v.index', 'rb') as f:
      assert f.read() == b'ix'
    kept = local
  import os  # pylint: disable=import-outside-toplevel
  assert not os.path.exists(kept), 'the temporary copy is removed'
