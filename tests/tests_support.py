"""Small helpers shared by test modules."""
import json
import pathlib
from typing import List


def read_jsonl(folder: pathlib.Path) -> List[dict]:
  """Every JSON line of every file in ``folder``."""
  records = []
  for path in sorted(pathlib.Path(folder).iterdir()):
    for line in path.read_text().splitlines():
      if line.strip():
        records.append(json.loads(line))
  return records
