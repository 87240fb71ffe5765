"""Small runs of the two real jobs for the report tests, and page parsing.

The runs go through each job's own ``run()`` (flag validation, the output
folder, the local runner, the summary read back), with
``--max_failed_fraction=1`` so that a run holding deliberate bad records
still ends ``ok``.
"""
import re
from typing import Sequence

import detect_helpers
from beam_jobs import detect_images
from beam_jobs import site_predictions


def run_site_job(*, input_glob: str, model_root: str, output: str,
                 extra: Sequence[str] = ()) -> None:
  site_predictions.run([
      f'--input={input_glob}', f'--model_root={model_root}', f'--output={output}',
      '--max_failed_fraction=1', *extra
  ])


def run_detection_job(*, input_dir: str, output: str, extra: Sequence[str] = ()) -> None:
  detect_images.run(['--input', input_dir, '--output', output, '--max_failed_fraction=1'] +
                    detect_helpers.darknet_flags() + list(extra))


_STAT = re.compile(r'data-stat="(\w+)" data-value="([^"]*)">([^<]*)<')


def page_stats(html: str):
  """``{key: (data-value, shown text)}`` of a report's status-line numbers."""
  return {k: (v, text) for k, v, text in _STAT.findall(html)}
