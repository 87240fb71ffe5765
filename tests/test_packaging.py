"""The wheel ships what production runs and declares what each job needs.

The wheel is built from a copy of the working tree (so no build/ or egg-info
is left behind) with ``pip wheel --no-deps``, as the image's wheel stage does.
"""
import email.parser
import importlib.metadata
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = {'beam_jobs', 'transforms', 'models', 'common'}
# Modules both jobs run; a subpackage missing from the wheel loses one of these.
PRODUCTION_MODULES = [
    'beam_jobs/site_predictions.py',
    'beam_jobs/detect_images.py',
    'common/paths.py',
    'models/site/handler.py',
    'models/site/pool.py',
    'models/detector/yolo_handler.py',
    'models/detector/darknet.py',
    'transforms/site/inference.py',
    'transforms/site/rows.py',
    'transforms/detection/annotate.py',
    'transforms/dead_letters.py',
    'transforms/run_summary.py',
]
NOT_SHIPPED = ('samples/', 'tests/', 'templates/', 'functions/', 'benchmarks/', 'docs/')
_IGNORED = shutil.ignore_patterns('.git', '.venv', 'build', 'dist', '*.egg-info', '__pycache__',
                                  '*.pyc', '.pytest_cache', 'demo-output')


@pytest.fixture(scope='module')
def source(tmp_path_factory):
  copy = tmp_path_factory.mktemp('wheel') / 'src'
  shutil.copytree(REPO, copy, ignore=_IGNORED)
  return copy


@pytest.fixture(scope='module')
def wheel(source):
  dist = source.parent / 'dist'
  subprocess.run([
      sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index',
      '--quiet', '--wheel-dir',
      str(dist),
      str(source)
  ],
                 check=True,
                 timeout=300)
  (path, ) = dist.glob('*.whl')
  with zipfile.ZipFile(path) as archive:
    yield archive


def dist_info(wheel, name):
  (path, ) = [n for n in wheel.namelist() if re.fullmatch(rf'[^/]+\.dist-info/{name}', n)]
  return wheel.read(path).decode()


def requirement_sections():
  """{section: {canonical name: Requirement}} of requirements.txt as setup.py splits it."""
  sections, current = {'': {}}, ''
  for line in (REPO / 'requirements.txt').read_text().splitlines():
    marker = re.match(r'^#\s*\[extra:\s*(\S+?)\]', line)
    if marker:
      current = marker.group(1)
      sections[current] = {}
    elif line.strip() and not line.startswith('#'):
      req = Requirement(line)
      sections[current][canonicalize_name(req.name)] = req
  return sections


def test_wheel_holds_exactly_the_four_packages(wheel):
  tops = {name.split('/')[0] for name in wheel.namelist()}
  dist_infos = {t for t in tops if t.endswith('.dist-info')}
  assert len(dist_infos) == 1
  assert tops - dist_infos == PACKAGES


def test_every_file_of_the_packages_is_shipped(source, wheel):
  """Subpackages (a folder without __init__.py would be dropped) and package
  data (Jinja2 templates, CSS) included."""
  names = set(wheel.namelist())
  expected = {
      p.relative_to(source).as_posix()
      for pkg in PACKAGES
      for p in (source / pkg).rglob('*') if p.is_file()
  }
  assert expected, 'no source files found'
  assert sorted(expected - names) == []
  shipped = {n for n in names if not n.split('/')[0].endswith('.dist-info')}
  assert sorted(shipped - expected) == [], 'files in the wheel that the tree does not have'
  for module in PRODUCTION_MODULES:
    assert module in names, module


def test_no_samples_tests_or_credentials_in_the_wheel(wheel):
  for name in wheel.namelist():
    assert not name.startswith(NOT_SHIPPED), name
    assert 'local_credentials' not in name and not name.endswith('.pyc'), name
    assert '__pycache__' not in name, name


def test_base_requirements_are_requirements_txt_without_torch(wheel):
  metadata = email.parser.Parser().parsestr(dist_info(wheel, 'METADATA'))
  declared = [Requirement(r) for r in metadata.get_all('Requires-Dist')]
  base = {canonicalize_name(r.name): str(r) for r in declared if r.marker is None}
  sections = requirement_sections()
  assert base == {name: str(req) for name, req in sections[''].items()}
  assert 'torch' not in base
  by_extra = {}
  for req in declared:
    if req.marker is not None:
      (extra, ) = re.findall(r'extra == "([^"]+)"', str(req.marker))
      by_extra.setdefault(extra, {})[canonicalize_name(req.name)] = str(req).split(';')[0]
  assert set(metadata.get_all('Provides-Extra')) == {'detect', 'test'} == set(by_extra)
  assert by_extra['detect'] == {'torch': str(sections['detect']['torch'])}
  assert by_extra['detect']['torch'] == 'torch==2.13.0'


def test_console_scripts_point_at_the_jobs(wheel):
  entry_points = dist_info(wheel, 'entry_points.txt')
  assert 'site-predictions = beam_jobs.cli:site_predictions' in entry_points
  assert 'detect-images = beam_jobs.cli:detect_images' in entry_points


def _closure(requirements):
  """Names of the installed distributions the requirements pull in (no extras of ours)."""
  seen, todo = set(), [(Requirement(str(r)), frozenset(r.extras)) for r in requirements]
  while todo:
    req, extras = todo.pop()
    name = canonicalize_name(req.name)
    if (name, extras) in seen:
      continue
    seen.add((name, extras))
    try:
      requires = importlib.metadata.requires(req.name) or []
    except importlib.metadata.PackageNotFoundError:
      continue  # not installed here (an optional platform dependency)
    for line in requires:
      sub = Requirement(line)
      active = any(sub.marker.evaluate({'extra': e}) for e in extras | {''}) \
          if sub.marker else True
      if active:
        todo.append((sub, frozenset(sub.extras)))
  return {name for name, _ in seen}


def test_nothing_the_base_requires_pulls_in_torch_or_scipy():
  """The per-site image installs the base only; torch must not come in transitively
  (checked against the versions installed here), nor SciPy, which TensorFlow imports
  whenever it is installed."""
  base = requirement_sections()['']
  closure = _closure(base.values())
  assert {'apache-beam', 'tensorflow'} <= closure
  assert 'torch' not in closure and 'scipy' not in closure
  assert 'torch' in _closure(requirement_sections()['detect'].values())
