"""A console run prints our lines, libraries' warnings, and no start-up noise; the noise
filter drops only the known-benign lines, whole, and never a traceback."""
import json
import logging
import os
import pathlib
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

import savedmodel_builders
from beam_jobs import quiet

REPO = pathlib.Path(__file__).resolve().parents[1]

# Lines TensorFlow 2.21 printed on this project's CPU-only machines.
BENIGN = [
    'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR',
    'I0000 00:00:1796169637.413564    9288 cudart_stub.cc:31] Could not find cuda drivers on '
    'your machine, GPU will not be used.',
    'I0000 00:00:1796169637.717249    9288 cpu_feature_guard.cc:227] This TensorFlow binary is '
    'optimized to use available CPU instructions in performance-critical operations.',
    'To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow '
    'with the appropriate compiler flags.',
    'I1202 00:07:18.732000   12 port.cc:153] oneDNN custom operations are on. You may see '
    'slightly different numerical results due to floating-point round-off errors.',
]
# Close to benign, but not it: must pass.
KEPT = [
    'Traceback (most recent call last):',
    '  File "x.py", line 1, in <module>',
    'ImportError: libcudart.so.12: cannot open shared object file',
    'E0000 00:00:1796170043.846665   12798 cuda_platform.cc:52] failed call to cuInit: '
    'INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)',
    'I0000 00:00:1796169637.413564    9288 cudart_stub.cc:31] Could not find cuda drivers on '
    'your machine, GPU will not be used. And something else.',
    'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR!',
    'F0000 00:00:1.0 1 some_op.cc:1] Check failed: fatal',
    '',
]
NOISE = re.compile(r'absl::InitializeLog|cudart_stub|cuda_platform|cuInit|cpu_feature_guard|'
                   r'rebuild TensorFlow|oneDNN|apache_beam')


@pytest.mark.parametrize('line', BENIGN)
def test_benign_lines_are_dropped_with_either_line_end(line):
  assert quiet.dropped(line.encode())
  assert quiet.LineFilter().feed(line.encode() + b'\r\n') == b''


@pytest.mark.parametrize('line', KEPT)
def test_other_lines_pass(line):
  assert not quiet.dropped(line.encode())
  assert quiet.LineFilter().feed(line.encode() + b'\n') == line.encode() + b'\n'


_lines = st.lists(st.one_of(
    st.sampled_from(BENIGN + KEPT),
    st.text(st.characters(blacklist_characters='\n\r', blacklist_categories=('Cs', )),
            max_size=40)),
                  max_size=12)


@given(lines=_lines,
       cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=8),
       last=st.booleans())
def test_filter_keeps_exactly_the_other_lines_however_writes_are_cut(lines, cuts, last):
  """Whatever the chunking, out == the input less the benign lines, in order."""
  data = ''.join(line + '\n' for line in lines).encode()
  tail = b'partial line, no end' if last else b''
  data += tail
  line_filter = quiet.LineFilter()
  out = b''
  bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
  for start, end in zip(bounds, bounds[1:]):
    out += line_filter.feed(data[start:end])
  out += line_filter.flush()
  expected = ''.join(l + '\n' for l in lines if l not in BENIGN)
  assert out == expected.encode() + tail


def test_filtered_stderr_drops_benign_c_level_writes_and_keeps_the_rest(capfd):
  with quiet.filtered_stderr():
    os.write(2, (BENIGN[0] + '\n' + BENIGN[1][:30]).encode())
    os.write(2, (BENIGN[1][30:] + '\nreal problem\n').encode())
    os.write(2, b'no line end')
  os.write(2, b'\nafter: ' + BENIGN[0].encode() + b'\n')
  assert capfd.readouterr().err == f'real problem\nno line end\nafter: {BENIGN[0]}\n'


def test_filtered_stderr_lets_exceptions_through(capfd):
  with pytest.raises(ImportError, match='no such module'):
    with quiet.filtered_stderr():
      os.write(2, (BENIGN[0] + '\n').encode())
      raise ImportError('no such module')
  os.write(2, b'stderr is back\n')
  assert capfd.readouterr().err == 'stderr is back\n'


def test_debug_filters_nothing(capfd):
  with quiet.quiet_imports('DEBUG'):
    os.write(2, (BENIGN[1] + '\n').encode())
  assert capfd.readouterr().err == BENIGN[1] + '\n'


_CRASHING_IMPORT = r'''
import os, sys
from beam_jobs import quiet
with quiet.quiet_imports('INFO'):
  os.write(2, (sys.argv[1] + '\n').encode())
  print('from python, to stderr', file=sys.stderr)
  import json; json.loads('{broken')
'''


def test_a_traceback_in_a_quiet_import_is_printed_whole():
  proc = subprocess.run([sys.executable, '-c', _CRASHING_IMPORT, BENIGN[1]],
                        cwd=REPO,
                        env=dict(os.environ, PYTHONPATH=str(REPO)),
                        capture_output=True,
                        text=True,
                        timeout=120,
                        check=False)
  assert proc.returncode == 1
  lines = proc.stderr.splitlines()
  assert lines[0] == 'from python, to stderr'
  assert lines[1] == 'Traceback (most recent call last):'
  assert lines[-1].startswith('json.decoder.JSONDecodeError: Expecting property name')
  assert 'cudart_stub' not in proc.stderr


@pytest.mark.parametrize('args,level', [([], 'INFO'), (['--log_level=debug'], 'DEBUG'),
                                        (['--log_level', 'WARNING'], 'WARNING'),
                                        (['--log_level=LOUD'], 'INFO'), (['--log_level'], 'INFO'),
                                        (['--log_level=ERROR', '--log_level=DEBUG'], 'DEBUG')])
def test_log_level_is_read_before_the_flags_are_parsed(args, level):
  assert quiet.log_level_in(args) == level


def test_tensorflow_is_quiet_unless_told_otherwise():
  environ = {}
  quiet.quiet_tensorflow(environ, 'INFO')
  assert environ == {'TF_CPP_MIN_LOG_LEVEL': '3'}
  environ = {'TF_CPP_MIN_LOG_LEVEL': '0'}
  quiet.quiet_tensorflow(environ, 'INFO')
  assert environ == {'TF_CPP_MIN_LOG_LEVEL': '0'}
  environ = {}
  quiet.quiet_tensorflow(environ, 'DEBUG')
  assert not environ


def test_our_loggers_at_the_level_libraries_at_warning():
  try:
    quiet.configure_logging('INFO')
    assert logging.getLogger('beam_jobs.runtime').isEnabledFor(logging.INFO)
    assert logging.getLogger('models.site.pool').isEnabledFor(logging.INFO)
    assert not logging.getLogger('apache_beam.io.iobase').isEnabledFor(logging.INFO)
    assert logging.getLogger('apache_beam.io.iobase').isEnabledFor(logging.WARNING)
    quiet.configure_logging('DEBUG')
    assert logging.getLogger('apache_beam.runners').isEnabledFor(logging.DEBUG)
    quiet.configure_logging('ERROR')
    assert not logging.getLogger('beam_jobs.runtime').isEnabledFor(logging.WARNING)
  finally:
    quiet.configure_logging('INFO')


@pytest.fixture(scope='module')
def tiny_site_job(tmp_path_factory):
  root = tmp_path_factory.mktemp('quiet')
  savedmodel_builders.save_linear(str(root / 'models' / 'a' / '1'), [1.0, 2.0], 0.5)
  savedmodel_builders.save_linear(str(root / 'models' / 'b' / '1'), [3.0, -1.0], 0.0)
  (root / 'in').mkdir()
  (root / 'in' / 'x.jsonl').write_text(''.join(
      json.dumps({
          'site_id': 'ab'[i % 2],
          'x': [i, 1.0]
      }) + '\n' for i in range(40)))
  return root


def test_a_successful_console_run_prints_only_our_lines(tiny_site_job):
  root = tiny_site_job
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  env['PYTHONPATH'] = str(REPO)
  proc = subprocess.run([
      sys.executable, '-m', 'beam_jobs.site_predictions', f'--input={root}/in/x.jsonl',
      f'--model_root={root}/models', f'--output={root}/out'
  ],
                        cwd=REPO,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=600,
                        check=False)
  assert proc.returncode == 0, proc.stderr
  lines = proc.stderr.splitlines()
  assert not [l for l in lines if NOISE.search(l)], proc.stderr
  # 'Starting on FnApiRunner' and at most one line per model loaded (2 sites).
  assert 1 <= len(lines) <= 3, proc.stderr
  assert all(
      re.match(r'\d{4}-\d\d-\d\d [\d:,]+ INFO (beam_jobs|models|transforms)\.', l) for l in lines)
  assert json.loads(proc.stdout[proc.stdout.index('{'):])['predictions_written'] == 40
