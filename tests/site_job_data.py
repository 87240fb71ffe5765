"""The standard per-site job input: good rows for every test site plus one row per bad case."""
import json
from typing import Dict, List, Tuple, Union

GOOD_ROWS: List[Dict] = [
    {
        'site_id': 'lin-a',
        'rid': 'a1',
        'x': [1.0, 2.0, 3.0],
        'note': 'kept as is'
    },
    {
        'site_id': 'lin-a',
        'rid': 'a2',
        'x': [0, -1, 0.5]
    },
    {
        'site_id': 'lin-a',
        'rid': 'a3',
        'x': [2.5, 2.5, 2.5]
    },
    {
        'site_id': 'lin-b',
        'rid': 'b1',
        'x': [1.0, 2.0, 3.0]
    },
    {
        'site_id': 'lin-b',
        'rid': 'b2',
        'x': [-3, 7, 0.1]
    },
    {
        'site_id': 42,
        'rid': 'n1',
        'x': [9.0, 8.0, 7.0]
    },
    {
        'site_id': 'flat',
        'rid': 'f1',
        'x': [1.0, 1.0, 1.0]
    },
    {
        'site_id': 'multi',
        'rid': 'm1',
        'a': 1.5,
        'b': 3
    },
    {
        'site_id': 'multi',
        'rid': 'm2',
        'a': -2.0,
        'b': 4.0
    },
    {
        'site_id': 'echo',
        'rid': 'e1',
        'key': 'first',
        'x': [0.1, 0.2]
    },
    {
        'site_id': 'echo',
        'rid': 'e2',
        'key': 'second',
        'x': [3.0, -1.0]
    },
]

# (raw line, expected reason); bytes are written as they are
BAD_LINES: List[Tuple[Union[str, bytes], str]] = [
    ('{"site_id": "lin-a", "rid": ', 'bad_json'),
    ('', 'empty_line'),
    ('[1, 2, 3]', 'not_an_object'),
    (json.dumps({
        'rid': 'nosite',
        'x': [1, 2, 3]
    }), 'missing_site'),
    (json.dumps({
        'site_id': None,
        'rid': 'nullsite',
        'x': [1, 2, 3]
    }), 'missing_site'),
    (json.dumps({
        'site_id': True,
        'rid': 'boolsite',
        'x': [1, 2, 3]
    }), 'bad_site'),
    (json.dumps({
        'site_id': ['lin-a'],
        'rid': 'listsite',
        'x': [1, 2, 3]
    }), 'bad_site'),
    (json.dumps({
        'site_id': '../lin-a',
        'rid': 'escape',
        'x': [1, 2, 3]
    }), 'bad_site'),
    (json.dumps({
        'site_id': 'nope',
        'rid': 'nomodel',
        'x': [1, 2, 3]
    }), 'no_model'),
    (json.dumps({
        'site_id': 'empty',
        'rid': 'emptymodel',
        'x': [1, 2, 3]
    }), 'model_load_failed'),
    (json.dumps({
        'site_id': 'corrupt',
        'rid': 'corrupt',
        'x': [1, 2, 3]
    }), 'model_load_failed'),
    (json.dumps({
        'site_id': 'lin-a',
        'rid': 'nox',
        'y': [1, 2, 3]
    }), 'missing_feature'),
    (json.dumps({
        'site_id': 'multi',
        'rid': 'nulla',
        'a': None,
        'b': 1
    }), 'missing_feature'),
    (json.dumps({
        'site_id': 'lin-a',
        'rid': 'strx',
        'x': ['1', 'b', 'c']
    }), 'bad_feature'),
    (json.dumps({
        'site_id': 'lin-b',
        'rid': 'scalarx',
        'x': 'oops'
    }), 'bad_feature'),
    (json.dumps({
        'site_id': 'lin-a',
        'rid': 'shortx',
        'x': [1.0, 2.0]
    }), 'bad_feature'),
    (json.dumps({
        'site_id': 'multi',
        'rid': 'fracb',
        'a': 1.0,
        'b': 2.5
    }), 'bad_feature'),
    (b'{"site_id": "lin-a", "rid": "latin1", "note": "caf\xe9", "x": [1, 2, 3]}', 'bad_encoding'),
]

_BAD_IN_FIRST = 8


def file_of(bad_line: Union[str, bytes]) -> str:
  """The input file :func:`write_inputs` puts a line of BAD_LINES in."""
  index = [line for line, _ in BAD_LINES].index(bad_line)
  return 'part-1.jsonl' if index < _BAD_IN_FIRST else 'part-2.jsonl'


def _bytes(line: Union[str, bytes]) -> bytes:
  return line if isinstance(line, bytes) else line.encode('utf-8')


def write_inputs(folder) -> None:
  """Two files (so the glob matters), good and bad lines interleaved; the
  second as Windows tools write it: a byte-order mark and CRLF line ends."""
  lines = [_bytes(json.dumps(r)) for r in GOOD_ROWS]
  bad = [_bytes(line) for line, _ in BAD_LINES]
  first = lines[:6] + bad[:_BAD_IN_FIRST]
  second = bad[_BAD_IN_FIRST:] + lines[6:]
  folder.mkdir(parents=True, exist_ok=True)
  (folder / 'part-1.jsonl').write_bytes(b'\n'.join(first) + b'\n')
  (folder / 'part-2.jsonl').write_bytes(b'\xef\xbb\xbf' + b'\r\n'.join(second) + b'\r\n')


def expected_failures() -> Dict[str, int]:
  counts: Dict[str, int] = {}
  for _, reason in BAD_LINES:
    counts[reason] = counts.get(reason, 0) + 1
  return counts
