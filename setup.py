"""Batch inference jobs on Apache Beam: per-site SavedModel predictions and YOLO image detection."""
import pathlib

import setuptools

_HERE = pathlib.Path(__file__).parent


def _requirements(name):
  lines = (_HERE / name).read_text().splitlines()
  return [l.strip() for l in lines if l.strip() and not l.startswith('#')]


setuptools.setup(
    name='beam-batch-inference',
    version='0.1.0',
    description=__doc__,
    python_requires='>=3.11,<3.12',
    packages=setuptools.find_packages(
        include=['beam_jobs*', 'transforms*', 'models*', 'common*']),
    include_package_data=True,
    package_data={'transforms.reporting': ['templates/*']},
    install_requires=_requirements('requirements.txt'),
    extras_require={'test': _requirements('requirements-test.txt')},
    entry_points={
        'console_scripts': [
            'site-predictions=beam_jobs.site_predictions:main',
            'detect-images=beam_jobs.detect_images:main',
        ],
    },
)
