"""Parsing JSON lines and finding each row's site."""
import json

import pytest
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from common import json_loads
from common.failures import RecordFailure
from transforms.dead_letters import failure_letter
from transforms.site.instances import MAX_NESTING
from transforms.site.instances import decode_line
from transforms.site.instances import parse_line
from transforms.site.instances import parse_utf8_line
from transforms.site.instances import site_id_of
from transforms.site.instances import site_of


@pytest.mark.parametrize('value,expected', [('store-1', 'store-1'), (17, '17'), (17.0, '17'),
                                            (2.5, '2.5'), (' a ', ' a '), ('twin ', 'twin '),
                                            ('caf\u00e9', 'caf\u00e9')])
def test_site_ids_from_strings_and_numbers(value, expected):
  assert site_id_of(value) == expected


@pytest.mark.parametrize('value', [True, None, [1], {'a': 1}, '', '..', 'a/b', 'a*', float('nan')])
def test_unusable_site_ids_are_refused(value):
  with pytest.raises(ValueError):
    site_id_of(value)


@pytest.mark.parametrize('line,reason', [('', 'empty_line'), ('   ', 'empty_line'),
                                         ('{"a": ', 'bad_json'), ('"text"', 'not_an_object'),
                                         ('null', 'not_an_object'), ('[{}]', 'not_an_object')])
def test_bad_lines_are_refused_with_a_reason(line, reason):
  with pytest.raises(RecordFailure) as refused:
    parse_line(line)
  letter = failure_letter(refused.value, 'f.jsonl')
  assert (letter['stage'], letter['reason'], letter['source']) == ('parse', reason, 'f.jsonl')


@pytest.mark.parametrize('data,text', [(b'{"a": "caf\xc3\xa9"}', '{"a": "caf\u00e9"}'),
                                       (b'\xef\xbb\xbf{}', '{}'), ('{}', '{}')])
def test_lines_decode_as_utf8_without_a_byte_order_mark(data, text):
  assert decode_line(data) == text


def test_a_line_that_is_not_utf8_is_refused_and_kept_readable():
  with pytest.raises(RecordFailure) as refused:
    decode_line(b'{"a": "caf\xe9"}')
  letter = failure_letter(refused.value, 'f.jsonl')
  assert (letter['stage'], letter['reason']) == ('parse', 'bad_encoding')
  assert letter['record'] == '{"a": "caf\\xe9"}'


def test_good_line_parses_to_its_object():
  assert parse_line('{"site_id": "a", "x": [1, 2.5]}') == {'site_id': 'a', 'x': [1, 2.5]}


@pytest.mark.parametrize('row,reason', [({
    'v': 2
}, 'missing_site'), ({
    'site_id': None
}, 'missing_site'), ({
    'site_id': False
}, 'bad_site'), ({
    'site_id': '../x'
}, 'bad_site')])
def test_rows_without_a_usable_site_are_refused(row, reason):
  with pytest.raises(RecordFailure) as refused:
    site_of(row, 'site_id')
  letter = failure_letter(refused.value, 's')
  assert (letter['stage'], letter['reason'], letter['record']) == ('key_by_site', reason, row)


def test_custom_site_field():
  assert site_of({'building': 'b-9', 'site_id': 'x'}, 'building') == 'b-9'


def nested(depth):
  return '{"site_id": "s", "x": ' + '[' * (depth - 1) + ']' * (depth - 1) + '}'


def test_rows_nested_too_deep_are_refused_before_anything_recurses_on_them():
  assert parse_line(nested(MAX_NESTING))['site_id'] == 's'
  for depth in (MAX_NESTING + 1, 100_000):
    with pytest.raises(RecordFailure) as refused:
      parse_line(nested(depth))
    assert refused.value.reason == 'bad_json' and 'nested' in refused.value.message


def test_brackets_inside_strings_do_not_count_as_nesting():
  row = parse_line(json.dumps({'site_id': 's', 'note': '[' * 500}))
  assert row['note'] == '[' * 500


def _reference_outcome(line):
  """What a line gives parsed with json.loads and nothing else: the dict, or the reason."""
  if not line.strip():
    return 'empty_line'
  try:
    row = json.loads(line)
  except (ValueError, RecursionError):
    return 'bad_json'
  if not isinstance(row, dict):
    return 'not_an_object'
  return row


def _outcome(line):
  try:
    return parse_line(line)
  except RecordFailure as e:
    return e.reason


_JSONISH = st.one_of(
    st.text(alphabet='{}[]":,. \t\r\x0b\x0c\u00a0\u2028abeEnul0123456789-+NaIfity\\', max_size=30),
    st.builds(
        lambda row, tail, head: head + json.dumps(row) + tail,
        st.dictionaries(st.text(max_size=3),
                        st.one_of(st.floats(), st.integers(), st.text(max_size=3)),
                        max_size=3),
        st.sampled_from(['', ' ', '\t', '\r', ' x', '{}', '\x0b', '\u00a0', '\u2028', ',']),
        st.sampled_from(['', ' ', '\ufeff', '['])))


@settings(max_examples=1000, deadline=None)
@given(line=_JSONISH)
def test_a_line_parses_as_json_loads_parses_it(line):
  assert repr(_outcome(line)) == repr(_reference_outcome(line))


@pytest.mark.parametrize('depth', [MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1, MAX_NESTING + 2])
@pytest.mark.parametrize('inner', ['[', '{"":'])
def test_the_most_compact_rows_near_the_nesting_limit(depth, inner):
  # The shortest texts of each depth: an empty key, no spaces; only rows deeper than the
  # limit are refused, however short their text.
  closing = {'[': ']', '{"":': '}'}[inner]
  line = '{"":' + inner * (depth - 2) + '[]' + closing * (depth - 2) + '}'
  assert json.loads(line) is not None
  if depth > MAX_NESTING:
    with pytest.raises(RecordFailure) as refused:
      parse_line(line)
    assert refused.value.reason == 'bad_json' and 'nested' in refused.value.message
  else:
    assert parse_line(line) == json.loads(line)


def _general_outcome(data):
  """What the general path (decode, then parse_line) decides for a bytes line."""
  try:
    return parse_line(decode_line(data))
  except RecordFailure as e:
    return e.reason


_BYTE_EDITS = st.sampled_from([b'', b'\xef\xbb\xbf', b'\xff', b'\xed\xa0\x80', b'\xc3', b'\x00'])


@settings(max_examples=1000, deadline=None)
@given(line=_JSONISH, head=_BYTE_EDITS, tail=_BYTE_EDITS, fit=st.booleans())
@example(line=nested(MAX_NESTING + 1), head=b'', tail=b'', fit=False)
@example(line='{"site_id": "s", "x": 18446744073709551616}', head=b'', tail=b'', fit=False)
def test_a_bytes_line_read_without_decoding_gives_what_decoding_it_gives(line, head, tail, fit):
  data = head + line.encode('utf-8', 'surrogatepass') + tail
  fit = fit and json_loads.integers_fit(data)
  fast = parse_utf8_line(data, integers_fit=fit)
  general = _general_outcome(data)
  if fast is None:
    return  # left to the general path
  assert isinstance(general, dict)
  assert repr(fast) == repr(general)


def test_the_fast_path_takes_the_usual_line_and_leaves_the_odd_ones():
  row = {'site_id': 's', 'x': 1.5, 'name': 'caf\u00e9'}
  assert parse_utf8_line(json.dumps(row, ensure_ascii=False).encode()) == row
  for odd in (b'\xef\xbb\xbf{"a": 1}',
              b'{"a": NaN}', b'{"a": "\xff"}', b'[1]', b'null', b'{"a": "\\ud800"}',
              nested(MAX_NESTING + 1).encode(), b'{"a": 18446744073709551616}'):
    assert parse_utf8_line(odd) is None, odd
