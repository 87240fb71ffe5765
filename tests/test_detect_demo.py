"""The detection demo (what `make demo` runs) works offline and finds the cup."""
import json

import pytest

from samples import detection_demo


@pytest.mark.e2e
def test_demo_writes_photos_runs_the_job_and_reports(tmp_path, capsys):
  detection_demo.run_demo(str(tmp_path))
  printed = capsys.readouterr().out
  assert 'kitchen/coffee.jpg' in printed and 'cup 0.' in printed
  assert 'motorbike 0.' in printed
  summary = json.loads((tmp_path / 'images-output' / 'summary.json').read_text())
  assert summary['images_read'] == summary['images_ok'] == 4
  assert set(summary['sites']) == {'kitchen', 'garage'}
  assert (tmp_path / 'images-output' / 'annotated' / 'kitchen' / 'coffee-det.jpg').is_file()
  # `make demo` a second time replaces the first demo's outputs (not refused, not mixed).
  detection_demo.run_demo(str(tmp_path))
  again = json.loads((tmp_path / 'images-output' / 'summary.json').read_text())
  assert again['images_read'] == again['images_ok'] == 4 and again['status'] == 'ok'
  assert len(list((tmp_path / 'images-output' / 'detections').glob('*.jsonl'))) == len(
      again['outputs']['detections'])
