"""Hostile and malformed trigger files: the function answers 2xx with exactly one
strict-JSON ``rejected`` (or ``skipped``) log line and never launches.

Runs the function under the functions framework against fake-gcs-server (it
honours ranged and generation-pinned reads as GCS does, and answers the
hundreds of generated cases about four times faster than gcp-storage-emulator,
which tests/test_trigger_function.py uses) and the recording Dataflow server.
"""
import codecs
import json
import time

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from trigger_support import SITE_TRIGGER
from trigger_support import CountingProxy
from trigger_support import deliver
from trigger_support import log_lines
from trigger_support import upload
from trigger_support import client  # noqa: F401  pylint: disable=unused-import
from trigger_support import dataflow  # noqa: F401  pylint: disable=unused-import
from trigger_support import fake_bucket  # noqa: F401  pylint: disable=unused-import
from trigger_support import fake_gcs  # noqa: F401  pylint: disable=unused-import
from trigger_support import fake_gcs_env  # noqa: F401  pylint: disable=unused-import

LIMIT = 64 * 1024
NAME = 'triggers/hostile.json'
VALID = json.dumps(SITE_TRIGGER)
HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def outcome_of(client, capsys, content, name=NAME):
  """Uploads ``content`` as a trigger file, delivers its event; returns (status, line)."""
  capsys.readouterr()
  gen = upload(name, content)
  status = deliver(client, name, gen).status_code
  lines = log_lines(capsys.readouterr().out)
  assert len(lines) == 1, lines
  return status, lines[0]


def assert_rejected(client, capsys, dataflow, content, code=None):
  status, line = outcome_of(client, capsys, content)
  assert status == 200 and line['outcome'] == 'rejected', line
  assert line['severity'] == 'WARNING' and line['event'] == f'gs://test-bucket/{NAME}'
  assert code is None or line['code'] == code, line
  assert dataflow.requests == []
  return line


def _deep(depth, inner='1'):
  return '[' * depth + inner + ']' * depth


# (content, code): each one was written the way a person or a buggy tool makes it.
HOSTILE = [
    (_deep(30_000), 'too_deep'),  # 60 KB: RecursionError
    ('{"job": "site_predictions", "parameters": ' + _deep(5000, '{}') + '}', 'too_deep'),
    ('{"a":' * 5000 + '1' + '}' * 5000, 'too_deep'),
    ('[' * 30_000, 'too_deep'),  # unbalanced
    (codecs.BOM_UTF16_LE + VALID.encode('utf-16-le'), 'bad_encoding'),  # Notepad "Unicode"
    (codecs.BOM_UTF16_BE + VALID.encode('utf-16-be'), 'bad_encoding'),
    (VALID.encode('utf-16-le'), 'bad_encoding'),  # no BOM: NUL bytes
    (codecs.BOM_UTF32_LE + VALID.encode('utf-32-le'), 'bad_encoding'),
    (VALID.replace('reading_id', 'lectura_ñ').encode('latin-1'), 'bad_encoding'),
    (b'{"job": "site_predictions", "parameters": {"key_field": "\xed\xa0\x80"}}',
     'bad_encoding'),  # CESU-style surrogate bytes
    ('{"job": "site_predictions", "parameters": {"key_field": "\\ud800"}}', 'bad_encoding'),
    ('{"job": "site_predictions", "job": "detect_images", "parameters": {}}', 'duplicate_key'),
    (VALID[:-2] + ', "output": "gs://test-bucket/elsewhere"}}', 'duplicate_key'),
    (VALID[:-2] + ', "rows_per_chunk": NaN}}', 'non_finite_number'),
    (VALID[:-2] + ', "rows_per_chunk": Infinity}}', 'non_finite_number'),
    (VALID[:-2] + ', "rows_per_chunk": -Infinity}}', 'non_finite_number'),
    (VALID[:-2] + ', "rows_per_chunk": 1e999}}', 'non_finite_number'),
    (VALID[:-2] + ', "rows_per_chunk": ' + '9' * 5000 + '}}', 'huge_number'),
    (VALID[:-2] + ', "rows_per_chunk": 0.' + '1' * 100 + '}}', 'huge_number'),
    ('["site_predictions"]', 'not_object'),
    ('"site_predictions"', 'not_object'),
    ('42', 'not_object'),
    ('null', 'not_object'),
    ('', 'empty'),
    (' \r\n\t', 'empty'),
    (codecs.BOM_UTF8, 'empty'),
    (VALID[:len(VALID) // 2], 'not_json'),  # truncated upload
    (VALID + ' x', 'not_json'),
    ('// nightly\n' + VALID, 'not_json'),
    ("{'job': 'site_predictions'}", 'not_json'),  # Python repr, not JSON
    (json.dumps({
        'job': 'site_predictions',
        'paramters': {}
    }), 'unknown_key'),
    (json.dumps({'job': 'site_predictions'}), 'missing_parameter'),
    (json.dumps({'parameters': {}}), 'missing_parameter'),
    (json.dumps({
        'job': 7,
        'parameters': {}
    }), 'wrong_type'),
    (json.dumps({
        'job': 'site_prediction',
        'parameters': {}
    }), 'unknown_job'),
    (json.dumps({
        'job': 'site_predictions',
        'parameters': []
    }), 'wrong_type'),
    (VALID[:-2] + ', "rows_per_chunk": true}}', 'wrong_type'),
    (VALID[:-2] + ', "rows_per_chunk": null}}', 'wrong_type'),
    (VALID[:-2] + ', "rows_per_chunk": {"n": 1}}}', 'wrong_type'),
    (VALID[:-2] + ', "rows_per_chnk": "10"}}', 'unknown_parameter'),
    (VALID[:-2] + ', "pad": "' + 'x' * (LIMIT - len(VALID)) + '"}}', 'too_large'),  # limit+~20
]


@pytest.mark.parametrize('content,code',
                         HOSTILE,
                         ids=[f'{i}-{c}' for i, (_, c) in enumerate(HOSTILE)])
def test_hostile_trigger_files(client, fake_gcs_env, dataflow, capsys, content, code):
  assert_rejected(client, capsys, dataflow, content, code)


@pytest.mark.parametrize(
    'content',
    [
        '"' + '\\"' * 32_000,  # an escaped quote, again and again, never closed
        '"' * 65_000,
        '{"' + 'a' * 65_000,
        '{' + '"k":1,' * 10_000 + '"k":2}',
        VALID[:-2] + ', "' + 'x' * 60_000 + '": 1}}',  # a huge unknown key (closest-key search)
    ])
def test_pathological_text_is_answered_quickly(client, fake_gcs_env, dataflow, capsys, content):
  start = time.monotonic()
  assert_rejected(client, capsys, dataflow, content)
  assert time.monotonic() - start < 10, 'a scan of 64 KiB must stay linear'


@pytest.mark.parametrize('content,hint', [
    (json.dumps({
        'job': 'site_predictions',
        'paramters': {}
    }), "did you mean 'parameters'?"),
    (VALID[:-2] + ', "rows_per_chnk": "10"}}', "did you mean 'rows_per_chunk'?"),
    (json.dumps({
        'job': 'site_prediction',
        'parameters': {}
    }), "did you mean 'site_predictions'?"),
])
def test_unknown_keys_name_the_closest_known_key(client, fake_gcs_env, dataflow, capsys, content,
                                                 hint):
  assert hint in assert_rejected(client, capsys, dataflow, content)['reason']


def test_a_utf8_bom_is_accepted(client, fake_gcs_env, dataflow, capsys):
  status, line = outcome_of(client, capsys, codecs.BOM_UTF8 + VALID.encode())
  assert status == 200 and line['outcome'] == 'launched', line
  assert dataflow.launches[0]['parameters'] == SITE_TRIGGER['parameters']


def test_an_oversized_trigger_file_is_never_downloaded_whole(client, fake_gcs_env, dataflow, capsys,
                                                             monkeypatch):
  import os  # pylint: disable=import-outside-toplevel
  big = VALID[:-2] + ', "pad": "' + 'x' * (5 << 20) + '"}}'
  gen = upload(NAME, big)
  with CountingProxy(os.environ['STORAGE_EMULATOR_HOST']) as proxy:
    monkeypatch.setenv('STORAGE_EMULATOR_HOST', proxy.url)
    capsys.readouterr()
    assert deliver(client, NAME, gen, size=len(big)).status_code == 200
  downloads = proxy.downloads(NAME)
  assert [d['range'] for d in downloads] == [f'bytes=0-{LIMIT}'], proxy.calls
  assert sum(d['bytes'] for d in downloads) == LIMIT + 1
  line, = log_lines(capsys.readouterr().out)
  assert (line['outcome'], line['code']) == ('rejected', 'too_large'), line
  assert f'{len(big)} bytes' in line['reason']
  assert dataflow.requests == []


def test_a_file_at_the_limit_is_read_whole_and_launches(client, fake_gcs_env, dataflow, capsys):
  content = VALID[:-2] + ', "run_id": "r"}}'
  content = content[:-2] + ' ' * (LIMIT - len(content)) + '}}'
  assert len(content) == LIMIT
  status, line = outcome_of(client, capsys, content)
  assert status == 200 and line['outcome'] == 'launched', line


def test_a_trigger_file_deleted_before_it_is_read_is_skipped(client, fake_gcs_env, dataflow, capsys,
                                                             fake_bucket):
  gen = upload(NAME, VALID)
  fake_bucket.blob(NAME).delete()
  capsys.readouterr()
  assert deliver(client, NAME, gen).status_code == 200
  line, = log_lines(capsys.readouterr().out)
  assert line['outcome'] == 'skipped' and 'no longer exists' in line['reason'], line
  assert dataflow.requests == []


# -- generated hostile files -------------------------------------------------

KNOWN_KEYS = [
    'job', 'parameters', 'input', 'output', 'model_root', 'key_field', 'rows_per_chunk',
    'site_predictions', 'detect_images'
]
json_scalars = (st.none() | st.booleans() | st.integers() | st.text(max_size=20)
                | st.floats(allow_nan=True, allow_infinity=True))
json_values = st.recursive(
    json_scalars,
    lambda children:
    (st.lists(children, max_size=4)
     | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), children, max_size=4)),
    max_leaves=20)


@HYPOTHESIS
@given(content=st.binary(max_size=400) | st.binary(max_size=200).map(codecs.BOM_UTF8.__add__))
def test_random_bytes_are_rejected(client, fake_gcs_env, dataflow, capsys, content):
  assert_rejected(client, capsys, dataflow, content)


@HYPOTHESIS
@given(value=json_values
       | st.fixed_dictionaries({
           'job': st.sampled_from(['site_predictions', 'detect_images']),
           'parameters': st.dictionaries(st.sampled_from(KNOWN_KEYS), json_values, max_size=5)
       }))
def test_random_json_values_are_rejected(client, fake_gcs_env, dataflow, capsys, value):
  # json.dumps writes NaN/Infinity literals for such floats: hostile too.
  assert_rejected(client, capsys, dataflow, json.dumps(value))


@HYPOTHESIS
@given(depth=st.integers(17, 30_000),
       opener=st.sampled_from(['[', '{"k":']),
       where=st.sampled_from(['outside', 'value']))
def test_deep_nesting_is_rejected(client, fake_gcs_env, dataflow, capsys, depth, opener, where):
  closer = ']' if opener == '[' else '}'
  nested = opener * depth + '1' + closer * depth
  content = nested if where == 'outside' else VALID[:-2] + ', "run_id": ' + nested + '}}'
  assert_rejected(client, capsys, dataflow, content,
                  'too_deep' if len(content) <= LIMIT else 'too_large')


def _mutations():
  valid = VALID.encode()
  return st.one_of(
      st.integers(1,
                  len(valid) - 1).map(lambda cut: valid[:cut]),  # truncated
      st.sampled_from(
          ['utf-16', 'utf-16-le', 'utf-16-be', 'utf-32',
           'utf-32-be']).map(lambda encoding: VALID.replace('reading_id', 'id_é').encode(encoding)),
      st.sampled_from(list(SITE_TRIGGER['parameters'])).map(
          lambda key: (VALID[:-2] + f', "{key}": "gs://test-bucket/x"}}}}').encode()),
      st.text(min_size=1, max_size=10).filter(lambda k: k not in ('job', 'parameters')).map(
          lambda key: VALID[:-1] + f', {json.dumps(key)}: 1}}'),
      json_scalars.filter(lambda v: not isinstance(v, str)).map(
          lambda v: VALID[:-2] + f', "key_field": {json.dumps(v)}}}}}'),
  )


@HYPOTHESIS
@given(content=_mutations())
def test_mutated_valid_files_are_rejected(client, fake_gcs_env, dataflow, capsys, content):
  assert_rejected(client, capsys, dataflow, content)


def test_log_line_formats(client, fake_gcs_env, dataflow, capsys):
  """One line per event; fields by outcome (what the lead documents)."""
  _, launched = outcome_of(client, capsys, VALID, name='triggers/ok.json')
  assert set(launched) == {
      'severity', 'message', 'outcome', 'event', 'job', 'job_name', 'job_id', 'parameters',
      'launch_record'
  }, launched
  assert launched['launch_record'].startswith(
      f'gs://test-bucket/_trigger_state/launches/{launched["job_name"]}/')
  _, rejected = outcome_of(client, capsys, VALID[:-2] + ', "rows_per_chunk": "0"}}')
  assert set(rejected) == {
      'severity', 'message', 'outcome', 'event', 'code', 'parameter', 'reason'
  }, rejected
  assert (rejected['severity'], rejected['message']) == ('WARNING', 'trigger rejected')
  _, ignored = outcome_of(client, capsys, 'x', name='elsewhere/x.json')
  assert set(ignored) == {'severity', 'message', 'outcome', 'event', 'reason'}, ignored
