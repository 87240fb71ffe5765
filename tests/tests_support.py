"""Small helpers shared by test modules.

Lines are parsed with the product's strict reader, ``transforms.json_lines.loads_strict``,
whose own tests (tests/test_json_lines.py) pin what it refuses.
"""
import pathlib
import subprocess
import sys
from typing import Any, List

import numpy as np

from transforms.json_lines import loads_strict


def strict_json(line: str) -> Any:
  """``line`` parsed as a strict RFC 8259 parser would (BigQuery loads, jq,
  Java, Go, JavaScript): ``NaN``, ``Infinity``, numbers overflowing a double
  and blank lines fail the test."""
  assert line.strip(), 'blank line'
  return loads_strict(line)


def read_jsonl(folder: pathlib.Path) -> List[dict]:
  """Every JSON line of every file in ``folder``, parsed strictly (:func:`strict_json`)."""
  records = []
  for path in sorted(pathlib.Path(folder).iterdir()):
    text = path.read_text()
    assert not text or text.endswith('\n'), path
    for number, line in enumerate(text.split('\n')[:-1], 1):
      assert line.strip(), f'blank line {number} in {path}'
      try:
        records.append(loads_strict(line))
      except ValueError as e:
        raise AssertionError(f'{path} line {number} is not strict JSON: {e}: {line[:200]}') from e
  return records


def assert_outputs_equal(actual, expected):
  """A prediction's outputs equal the model's own (text as text, numbers to 1e-6)."""
  assert set(actual) == set(expected)
  for name, value in expected.items():
    if isinstance(value, bytes):
      assert actual[name] == value.decode()
    else:
      np.testing.assert_allclose(np.asarray(actual[name]), value, rtol=1e-6, atol=1e-6)


def run_benchmark(script: str, *args: str, timeout: int = 900) -> str:
  """Runs ``benchmarks/<script>`` with ``args`` from the checkout; its stdout (the run
  must exit 0: the failure shows the tails of its output)."""
  repo = pathlib.Path(__file__).resolve().parents[1]
  proc = subprocess.run([sys.executable, str(repo / 'benchmarks' / script), *args],
                        cwd=repo,
                        capture_output=True,
                        text=True,
                        timeout=timeout,
                        check=False)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc.stdout
