"""Instances echoed as the text they came in: the same records as encoding the parsed rows,
and only for text that a strict reader reads back as the parsed value."""
import json

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from transforms import json_lines
from transforms.site.grouping import parse_chunk
from transforms.site.predictions import Prediction
from transforms.site.prediction_output import encode_predictions
from transforms.site.rows import pack
from tests_support import strict_json

_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                     st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from([1e300, 1e-320, 5e-324, 1.7976931348623157e308, 2.5]),
                     st.text(max_size=6), st.sampled_from(['NaN', 'e123', 'caf\u00e9', 'a\rb']))
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=8)
_ROWS = st.dictionaries(st.sampled_from(['site_id', 'rid', 'x', 'note', 'n']), _VALUES, max_size=5)
# How writers lay out a row: Python's defaults, compact, non-ASCII kept, big floats as text.
_LAYOUTS = st.sampled_from([
    lambda row: json.dumps(row),
    lambda row: json.dumps(row, separators=(',', ':')),
    lambda row: json.dumps(row, ensure_ascii=False),
    lambda row: json.dumps(row).replace(
        '1e+300',
        '1000000000000000052504760255204420248704468581108159154915854115111802457988908195786371375080447864043704443832883878176942523235360430575644792184786706982848387200926575803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115467196834763571968.0'
    ),
])


def _strict_or_none(text):
  try:
    return json_lines.loads_strict(text)
  except ValueError:
    return None


@settings(max_examples=400, deadline=None)
@given(row=_ROWS, layout=_LAYOUTS)
def test_verbatim_text_reads_back_strictly_as_the_parsed_row(row, layout):
  text = layout(row)
  parsed = json.loads(text)
  if json_lines.writes_verbatim(text):
    assert _strict_or_none(text) is not None
    assert json_lines.loads_strict(text) == json_lines.loads_strict(
        json_lines.dumps(parsed, non_finite=json_lines.AS_STRING))
    assert '\n' not in text and '\r' not in text and text.isascii()


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(_ROWS, _LAYOUTS), min_size=1, max_size=6),
       key_field=st.sampled_from([None, 'rid', 'absent']))
def test_a_chunk_echoing_its_texts_writes_the_same_records(rows, key_field):
  texts = [layout(dict(row, site_id='s')) for row, layout in rows]
  chunk = parse_chunk(('s', pack((('in.jsonl', len(texts)), ), texts)))
  assert repr(chunk.rows) == repr([json.loads(t) for t in texts])  # NaN-aware
  outputs = {'y': 1.5}
  with_texts = [
      Prediction('s', 'in.jsonl', row, outputs, '2', text)
      for row, text in zip(chunk.rows, chunk.texts or [None] * len(texts))
  ]
  parsed_only = [p._replace(instance_text=None) for p in with_texts]
  echoed = [strict_json(l) for l in encode_predictions(with_texts, key_field).split('\n')]
  encoded = [strict_json(l) for l in encode_predictions(parsed_only, key_field).split('\n')]
  assert echoed == encoded
  assert [list(line) for line in echoed] == [list(line) for line in encoded]  # field order


def test_a_chunk_keeps_its_texts_only_when_all_may_be_echoed():
  plain = ['{"site_id": "s", "x": 1.5}', '{"site_id":"s","x":[1,2],"id":"site-00001-e100"}']
  chunk = parse_chunk(('s', pack((('f', 2), ), plain)))
  assert chunk.texts == plain
  for odd in [
      '{"site_id": "s", "x": NaN}', '{"site_id": "s", "x": 1e400}',
      '{"site_id": "s", "x": 2.5E-400}', '{"site_id": "s", "x": ' + '9' * 309 + '.0}',
      '{"site_id": "s", "x": "caf\u00e9"}', '{"site_id": "s", "x": 1}\r'
  ]:
    chunk = parse_chunk(('s', pack((('f', 3), ), plain + [odd])))
    assert chunk.texts is None and len(chunk.rows) == 3
