"""common.json_loads.loads gives what json.loads gives: the same value (types, float bits,
key order) or the same error, on texts written the way JSON writers write them and on
texts cut, spliced and mangled."""
import json
import math
import struct
import sys

import pytest
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from common import json_loads

NUMBERS = st.one_of(
    st.integers(), st.integers(-2**70, 2**70),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -2**63, -2**63 - 1, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(width=32),
    st.sampled_from([2.0**63, -2.0**63, 1e19, 9.2e18, 5e-324, -0.0, 1.7976931348623157e308]))
TEXT = st.text(alphabet=st.characters(codec='utf-8'), max_size=8) | st.sampled_from(
    ['\ud800', '\udfff\ud800', '\x00', '\u2028', '"', '\\', '\ufeff'])
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12)
# Number literals as people and other writers spell them, beyond what json.dumps writes.
LITERALS = st.one_of(
    st.from_regex(r'\A-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,20})?([eE][-+]?[0-9]{1,3})?\Z'),
    st.sampled_from([
        '1E400', '-1e400', '1e-400', '0.1e1', '01', '1.', '.5', '+1', '-', 'NaN', 'Infinity',
        '-Infinity', 'nan', 'true', 'null'
    ]))


def _same(text):
  try:
    expected = json.loads(text)
  except (ValueError, RecursionError) as e:
    with pytest.raises(type(e)) as raised:
      json_loads.loads(text)
    assert str(raised.value) == str(e)
    return
  got = json_loads.loads(text)
  assert _typed(got) == _typed(expected), text


def _typed(value):
  """A value with every scalar's type, float bits and dict key order spelled out."""
  if isinstance(value, dict):
    return ('dict', [(k, _typed(v)) for k, v in value.items()])
  if isinstance(value, list):
    return ('list', [_typed(v) for v in value])
  if isinstance(value, float):
    return ('float', struct.pack('<d', value) if not math.isnan(value) else 'nan')
  return (type(value).__name__, value)


@settings(max_examples=400, deadline=None)
@given(VALUES)
@example({'id': 18446744073709551616, 'x': 1.5})
@example({'a': [[{'b': -9223372036854775809}]]})
@example(float('nan'))
@example({'x': 1e19})
def test_what_json_dumps_writes_reads_back_as_json_loads_reads_it(value):
  _same(json.dumps(value))
  _same(json.dumps(value, ensure_ascii=False, indent=1))


@settings(max_examples=400, deadline=None)
@given(st.lists(LITERALS, min_size=1, max_size=4))
@example(['18446744073709551616', '1.5'])
@example(['-9223372036854775809'])
def test_number_literals_read_the_same(literals):
  _same('{"v":[' + ','.join(literals) + ']}')
  _same(literals[0])


@settings(max_examples=300, deadline=None)
@given(st.lists(VALUES, min_size=1, max_size=3), st.data())
def test_cut_and_spliced_texts_read_the_same_or_fail_the_same(values, data):
  text = ''.join(json.dumps(v) for v in values)
  start = data.draw(st.integers(0, len(text)))
  end = data.draw(st.integers(start, len(text)))
  junk = data.draw(st.sampled_from(['', ',', ' ', '\n', '}', ']', '{', '"', 'NaN', '\t']))
  _same(text[:start] + junk + text[end:])
  _same(text[start:end])


@pytest.mark.parametrize('depth', [99, 100, 500, 1023, 1024, 1025, 5000])
def test_deep_nesting_reads_as_json_loads_with_stack_enough_or_fails(depth):
  """Where json.loads runs out of interpreter stack (its limit depends on how deep the
  caller already is), orjson reads up to 1,024 levels: the value json would give with
  stack enough. Deeper, both fail; json's error is raised."""
  for text in ('[' * depth + ']' * depth, '{"a":' * depth + '1' + '}' * depth):
    try:
      got = json_loads.loads(text)
    except RecursionError:
      assert depth > 900, 'json fails first near the interpreter limit only'
      continue
    assert depth <= 1024
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * depth + 1000))
    try:
      assert _typed(got) == _typed(json.loads(text))
    finally:
      sys.setrecursionlimit(limit)


def test_blank_and_bom_texts_fail_as_json_loads():
  for text in ('', ' ', '\n', '\ufeff{}', '\ufeff'):
    _same(text)


@settings(max_examples=400, deadline=None)
@given(VALUES)
@example({'id': 18446744073709551616})
@example({'id': 9223372036854775807, 'x': 0.1234567890123456789})
def test_a_text_shown_to_have_no_long_digit_run_reads_the_same_unchecked(value):
  text = json.dumps(value)
  data = text.encode('utf-8', 'surrogatepass')
  if json_loads.integers_fit(data):
    try:
      expected = json.loads(text)
    except (ValueError, RecursionError):
      return
    assert _typed(json_loads.loads(text, integers_fit=True)) == _typed(expected)
  else:
    assert json_loads.LONG_DIGIT_RUN in data.translate(bytes.maketrans(b'123456789', b'0' * 9))


def test_integers_fit_is_false_for_every_integer_orjson_would_make_a_float_of():
  for number in (2**64, 2**63 * 3, -2**63 - 1, 10**25):
    assert not json_loads.integers_fit(str(number).encode())
  assert json_loads.integers_fit(str(10**18 - 1).encode())  # 18 digits
  assert json_loads.integers_fit(b'{"site": "s-000000000000000000", "n": 123456789012345678}')
