"""Modules marked absent while a block imports, and importable again after it."""
import subprocess
import sys
import textwrap

import pytest

from common import lean_imports


@pytest.fixture
def probe(tmp_path, monkeypatch):
  """A module ``lean_probe`` importable from ``tmp_path``; unimported before and after."""
  (tmp_path / 'lean_probe.py').write_text('VALUE = 7\n')
  monkeypatch.syspath_prepend(str(tmp_path))
  sys.modules.pop('lean_probe', None)
  yield 'lean_probe'
  sys.modules.pop('lean_probe', None)


def test_a_module_is_absent_in_the_block_and_importable_after(probe):
  with lean_imports.absent(probe):
    with pytest.raises(ImportError):
      __import__(probe)
  assert probe not in sys.modules
  assert __import__(probe).VALUE == 7


def test_the_mark_goes_even_when_the_block_raises(probe):
  with pytest.raises(RuntimeError):
    with lean_imports.absent(probe):
      raise RuntimeError('boom')
  assert probe not in sys.modules
  assert __import__(probe).VALUE == 7


def test_a_module_already_imported_is_left_as_it_is(probe):
  module = __import__(probe)
  with lean_imports.absent(probe):
    assert __import__(probe) is module
  assert sys.modules[probe] is module


# In a fresh interpreter: Beam imported the lean way runs a pipeline, has not loaded pandas,
# and pandas imports as usual afterwards.
_BEAM_WITHOUT_PANDAS = textwrap.dedent('''
    import sys
    from common import lean_imports
    lean_imports.import_beam()
    assert 'apache_beam' in sys.modules
    assert 'pandas' not in sys.modules, 'Beam imported pandas'
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to
    with beam.Pipeline() as p:
      assert_that(p | beam.Create([1, 2, 3]) | beam.Map(lambda x: x * 2), equal_to([2, 4, 6]))
    import pandas
    assert pandas.DataFrame({'a': [1]}).shape == (1, 1)
    print('ok')
    ''')


def test_beam_imports_without_pandas_and_pandas_still_imports_after():
  proc = subprocess.run([sys.executable, '-c', _BEAM_WITHOUT_PANDAS],
                        capture_output=True,
                        text=True,
                        timeout=300,
                        check=False)
  assert proc.returncode == 0 and proc.stdout.strip().endswith('ok'), proc.stderr[-3000:]
