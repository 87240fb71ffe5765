"""What a console run prints on stderr: our log lines, libraries' warnings, no start-up noise.

Policy (``--log_level``, default INFO):

- this package's loggers (``beam_jobs``, ``transforms``, ``models``,
  ``common``) log at ``--log_level``; every other logger (Beam, TensorFlow,
  absl, Google clients, ...) at WARNING, or at DEBUG with ``--log_level=DEBUG``;
- TensorFlow's C++ logging: ``TF_CPP_MIN_LOG_LEVEL`` defaults to 3 (errors
  that end the process only), unless the environment already sets it or
  ``--log_level=DEBUG``;
- the lines TensorFlow's shared libraries print while they load, before
  TensorFlow's logging exists (so no setting reaches them; see
  :data:`BENIGN_STDERR_LINES`), are dropped while the job's modules are
  imported by the console script, unless ``--log_level=DEBUG``. Every other
  byte written to stderr meanwhile, Python tracebacks included, is passed on.

Importing this module is light (standard library only).
"""
import contextlib
import logging
import os
import re
import sys
import threading
from typing import Iterator, MutableMapping, Pattern, Sequence

from beam_jobs import flags_io

OWN_LOGGERS = ('beam_jobs', 'transforms', 'models', 'common')
LOG_FORMAT = '%(asctime)s %(levelname)s %(name)s: %(message)s'
TF_LOG_ENV = 'TF_CPP_MIN_LOG_LEVEL'
TF_QUIET = '3'

# absl's early-line prefix: severity, MMDD, time (or seconds since the epoch), thread id.
_ABSL_PREFIX = r'[IWE]\d{4} [\d:.]+\s+\d+ '
BENIGN_STDERR_LINES = tuple(
    re.compile(p) for p in (
        # absl's notice that precedes its first early line.
        r'WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR',
        # A CPU-only TensorFlow or machine: the GPU is not used, as intended.
        _ABSL_PREFIX + r'cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, '
        r'GPU will not be used\.',
        # Build information, two lines.
        _ABSL_PREFIX + r'cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized to use '
        r'available CPU instructions in performance-critical operations\.',
        r'To enable the following instructions: [A-Za-z0-9_ ,.]+, in other operations, rebuild '
        r'TensorFlow with the appropriate compiler flags\.',
        _ABSL_PREFIX + r'port\.cc:\d+\] oneDNN custom operations are on\. .*',
        # TensorFlow CUDA wheels registering their plugins twice.
        _ABSL_PREFIX + r'cuda_(?:dnn|fft|blas)\.cc:\d+\] Unable to register cu(?:DNN|FFT|BLAS) '
        r'factory: Attempting to register factory for plugin cu(?:DNN|FFT|BLAS) when one has '
        r'already been registered',
    ))
"""Whole lines (line end excluded) that :func:`filtered_stderr` drops."""


def log_level_in(args: Sequence[str]) -> str:
  """The ``--log_level`` in ``args`` (``--log_level=X`` or ``--log_level X``), upper case;
  the default when absent or not a level (the flag check then reports it)."""
  value = (flags_io.raw_flag(args, 'log_level') or '').upper()
  return value if value in flags_io.LOG_LEVELS else flags_io.DEFAULT_LOG_LEVEL


def quiet_tensorflow(environ: MutableMapping[str, str], level: str) -> None:
  """Defaults ``TF_CPP_MIN_LOG_LEVEL`` to 3 (before TensorFlow is imported), unless set
  already or ``level`` is DEBUG."""
  if level != 'DEBUG':
    environ.setdefault(TF_LOG_ENV, TF_QUIET)


def configure_logging(level: str) -> None:
  """Our loggers at ``level``, the others at WARNING (all at DEBUG for DEBUG); adds a
  stderr handler to the root logger only if it has none (pytest's, an application's)."""
  root = logging.getLogger()
  if not root.handlers:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
  root.setLevel(logging.DEBUG if level == 'DEBUG' else logging.WARNING)
  for name in OWN_LOGGERS:
    logging.getLogger(name).setLevel(level)


def dropped(line: bytes, patterns: Sequence[Pattern] = BENIGN_STDERR_LINES) -> bool:
  """Whether ``line`` (no line end) is one of ``patterns``, whole."""
  text = line.rstrip(b'\r').decode('utf-8', 'replace')
  return any(p.fullmatch(text) for p in patterns)


class LineFilter:
  """Bytes in, the same bytes out less whole lines that :func:`dropped` matches.

  Output is released line by line (a line is kept until its end arrives, so
  a benign line split across writes is still recognised); :meth:`flush`
  releases an unterminated last line.
  """

  def __init__(self, patterns: Sequence[Pattern] = BENIGN_STDERR_LINES):
    self._patterns = patterns
    self._pending = b''

  def feed(self, chunk: bytes) -> bytes:
    *lines, self._pending = (self._pending + chunk).split(b'\n')
    return b''.join(line + b'\n' for line in lines if not dropped(line, self._patterns))

  def flush(self) -> bytes:
    rest, self._pending = self._pending, b''
    return b'' if not rest or dropped(rest, self._patterns) else rest


@contextlib.contextmanager
def filtered_stderr(patterns: Sequence[Pattern] = BENIGN_STDERR_LINES,
                    *,
                    fd: int = 2) -> Iterator[None]:
  """Passes everything written to file descriptor ``fd`` while active (by Python or by C
  libraries) through a :class:`LineFilter`, as it is written, to where ``fd`` went before.

  Exceptions raised inside propagate unchanged (their traceback is printed
  after ``fd`` is restored). A child process started meanwhile keeps the
  filter for as long as it lives.
  """
  _flush_python_streams()
  target = os.dup(fd)
  read_end, write_end = os.pipe()
  os.dup2(write_end, fd)
  os.close(write_end)
  forwarder = threading.Thread(target=_forward,
                               args=(read_end, target, LineFilter(patterns)),
                               name='stderr-filter',
                               daemon=True)
  forwarder.start()
  try:
    yield
  finally:
    _flush_python_streams()
    os.dup2(target, fd)  # the pipe's last write end closes: the forwarder reads EOF
    forwarder.join(timeout=5)
    if not forwarder.is_alive():
      os.close(target)


def _forward(read_end: int, target: int, line_filter: LineFilter) -> None:
  try:
    while True:
      chunk = os.read(read_end, 1 << 16)
      if not chunk:
        break
      _write_all(target, line_filter.feed(chunk))
    _write_all(target, line_filter.flush())
  finally:
    os.close(read_end)


def _write_all(fd: int, data: bytes) -> None:
  view = memoryview(data)
  while view:
    view = view[os.write(fd, view):]


def _flush_python_streams() -> None:
  for stream in (sys.stdout, sys.stderr):
    with contextlib.suppress(Exception):
      stream.flush()


@contextlib.contextmanager
def quiet_imports(level: str) -> Iterator[None]:
  """:func:`filtered_stderr` on file descriptor 2, unless ``level`` is DEBUG or 2 is closed."""
  if level == 'DEBUG' or not _is_open(2):
    yield
    return
  with filtered_stderr(fd=2):
    yield


def _is_open(fd: int) -> bool:
  try:
    os.fstat(fd)
  except OSError:
    return False
  return True
