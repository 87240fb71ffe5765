"""Small helpers shared by test modules."""
import json
import pathlib
from typing import List


def read_jsonl(folder: pathlib.Path) -> List[dict]:
  """Every JSON line of every file in ``folder``; a blank line fails the test."""
  records = []
  for path in sorted(pathlib.Path(folder).iterdir()):
    text = path.read_text()
    assert not text or text.endswith('\n'), path
    for line in text.split('\n')[:-1]:
      assert line.strip(), f'blank line in {path}'
      records.append(json.loads(line))
  return records
