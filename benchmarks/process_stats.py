"""Running a command in its own process tree and measuring wall time and memory."""
import os
import signal
import subprocess
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

_PAGE_BYTES = os.sysconf('SC_PAGE_SIZE')


class RunStats(NamedTuple):
  """One measured run."""
  wall_s: float
  peak_tree_rss_mb: float  # peak of the summed RSS of the process and its descendants
  peak_process_rss_mb: float  # largest single-process peak RSS (VmHWM, polled; see run_measured)
  returncode: int
  log_tail: str
  cpu_s: float = 0.0  # user + system CPU seconds of the process and its waited-for children
  timed_out: bool = False  # stopped at the run's time limit: wall_s is a lower bound


def descendants(pid: int) -> List[int]:
  """``pid`` and every process below it (from /proc/<pid>/task/*/children)."""
  found, queue = [], [pid]
  while queue:
    current = queue.pop()
    found.append(current)
    try:
      for task in os.listdir(f'/proc/{current}/task'):
        with open(f'/proc/{current}/task/{task}/children', encoding='ascii') as f:
          queue.extend(int(child) for child in f.read().split())
    except OSError:
      continue  # exited meanwhile
  return found


def tree_rss_bytes(pid: int) -> int:
  total = 0
  for process in descendants(pid):
    try:
      with open(f'/proc/{process}/statm', encoding='ascii') as f:
        total += int(f.read().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
      continue
  return total


def peak_process_rss_bytes(pid: int) -> int:
  """The largest high-water RSS (``VmHWM``, since its exec) of ``pid`` and its descendants."""
  peak = 0
  for process in descendants(pid):
    try:
      with open(f'/proc/{process}/status', encoding='ascii') as f:
        for line in f:
          if line.startswith('VmHWM:'):
            peak = max(peak, int(line.split()[1]) * 1024)
            break
    except (OSError, IndexError, ValueError):
      continue
  return peak


def run_measured(command: Sequence[str],
                 *,
                 env: Dict[str, str],
                 cwd: str,
                 log_path: str,
                 poll_s: float = 0.1,
                 limit_s: Optional[float] = None) -> RunStats:
  """Runs ``command``; polls its process tree's RSS until it exits.

  The single-process peak is each process's own high-water mark (``VmHWM``),
  read at every poll: ``getrusage``'s ``ru_maxrss`` of a child also counts
  the RSS it was forked with, which is this (benchmark) process's RSS at the
  time, so it overstated later runs of a benchmark whose own process had
  grown (1,076 MiB for a run whose process peaked at 864). It is only used
  for runs too short to be polled.

  With ``limit_s``, a run still going after that many seconds is stopped
  (SIGKILL to its whole process group) and comes back with ``timed_out``.
  """
  started = time.perf_counter()
  timed_out = False
  with open(log_path, 'wb') as log:
    proc = subprocess.Popen(list(command),
                            env=env,
                            cwd=cwd,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True)
    peak = process_peak = 0
    while True:
      pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
      if pid == proc.pid:
        break
      peak = max(peak, tree_rss_bytes(proc.pid))
      process_peak = max(process_peak, peak_process_rss_bytes(proc.pid))
      if limit_s is not None and not timed_out and time.perf_counter() - started > limit_s:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
      time.sleep(poll_s)
  wall = time.perf_counter() - started
  proc.returncode = os.waitstatus_to_exitcode(status)
  with open(log_path, 'rb') as f:
    tail = f.read()[-3000:].decode('utf-8', 'replace')
  # ru_maxrss is in KiB on Linux and covers the child's waited-for children.
  process_peak_mb = process_peak / 2**20 if process_peak else usage.ru_maxrss / 1024
  return RunStats(wall, peak / 2**20, process_peak_mb, proc.returncode, tail,
                  usage.ru_utime + usage.ru_stime, timed_out)
