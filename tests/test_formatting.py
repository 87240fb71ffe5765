"""The tree is formatted as pyproject.toml configures yapf (`make format`)."""
import pathlib
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parents[1]


def _formatted_paths():
  makefile = (REPO / 'Makefile').read_text()
  return re.search(r'^FORMATTED := (.+)$', makefile, re.M).group(1).split()


def test_the_tree_is_formatted_with_the_projects_yapf_style():
  proc = subprocess.run([sys.executable, '-m', 'yapf', '--diff', '-r', *_formatted_paths()],
                        cwd=REPO,
                        capture_output=True,
                        text=True,
                        timeout=900,
                        check=False)
  changed = re.findall(r'^\+\+\+ (\S+)', proc.stdout, re.M)
  assert proc.returncode == 0 and not changed, (
      f'not formatted (run `make format`): {changed[:20]}\n{proc.stderr[-2000:]}')
