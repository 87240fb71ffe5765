"""Batch inference jobs on Apache Beam: per-site SavedModel predictions and YOLO image detection.

``pip install .`` is what the per-site job needs (no torch); ``pip install '.[detect]'``
adds what the image detection job needs. Requirements come from requirements.txt
(sections, see :func:`_sections`) and requirements-test.txt (the ``test`` extra).
"""
import pathlib
import re

import setuptools

_HERE = pathlib.Path(__file__).parent
_EXTRA_MARKER = re.compile(r'^#\s*\[extra:\s*([a-z][a-z0-9_-]*)\]')


def _sections(name):
  """{section: [requirement]} of a requirements file, in file order.

  Lines before the first ``# [extra: NAME]`` comment go to section ``''`` (the
  base requirements); the lines after one go to NAME. Other comments and blank
  lines are skipped.
  """
  sections = {'': []}
  current = ''
  for line in (_HERE / name).read_text().splitlines():
    line = line.strip()
    marker = _EXTRA_MARKER.match(line)
    if marker:
      current = marker.group(1)
      if current in sections:
        raise ValueError(f'{name}: extra {current!r} marked twice')
      sections[current] = []
    elif line and not line.startswith('#'):
      sections[current].append(line)
  return sections


_REQUIREMENTS = _sections('requirements.txt')
_EXTRAS = {extra: reqs for extra, reqs in _REQUIREMENTS.items() if extra}
_EXTRAS['test'] = _sections('requirements-test.txt')['']

setuptools.setup(
    name='beam-batch-inference',
    version='0.1.0',
    description=__doc__.splitlines()[0],
    python_requires='>=3.11,<3.12',
    packages=setuptools.find_packages(include=['beam_jobs*', 'transforms*', 'models*', 'common*']),
    include_package_data=True,
    package_data={'transforms.reporting': ['templates/*']},
    install_requires=_REQUIREMENTS[''],
    extras_require=_EXTRAS,
    entry_points={
        'console_scripts': [
            'site-predictions=beam_jobs.cli:site_predictions',
            'detect-images=beam_jobs.cli:detect_images',
        ],
    },
)
