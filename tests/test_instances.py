"""Parsing JSON lines and keying rows by site, DoFns called directly and under TestPipeline."""
import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to

from transforms.dead_letters import FAILED
from transforms.instances import KeyBySite
from transforms.instances import ParseJsonLine
from transforms.instances import site_id_of


def run_dofn(dofn, element):
  main, failed = [], []
  for out in dofn.process(element) or ():
    (failed if isinstance(out, beam.pvalue.TaggedOutput) else main).append(
        out.value if isinstance(out, beam.pvalue.TaggedOutput) else out)
  return main, failed


@pytest.mark.parametrize('value,expected', [
    ('store-1', 'store-1'), (17, '17'), (17.0, '17'), (2.5, '2.5'), (' a ', 'a')])
def test_site_ids_from_strings_and_numbers(value, expected):
  assert site_id_of(value) == expected


@pytest.mark.parametrize('value', [True, None, [1], {'a': 1}, '', '..', 'a/b', 'a*', float('nan')])
def test_unusable_site_ids_are_refused(value):
  with pytest.raises(ValueError):
    site_id_of(value)


@pytest.mark.parametrize('line,reason', [
    ('', 'empty_line'), ('   ', 'empty_line'), ('{"a": ', 'bad_json'),
    ('"text"', 'not_an_object'), ('null', 'not_an_object'), ('[{}]', 'not_an_object')])
def test_bad_lines_become_dead_letters(line, reason):
  main, failed = run_dofn(ParseJsonLine(), ('f.jsonl', line))
  assert main == []
  assert [(f['reason'], f['source'], f['stage']) for f in failed] == [(reason, 'f.jsonl', 'parse')]


def test_key_by_site_under_test_pipeline():
  records = [('s', {'site_id': 'a', 'v': 1}), ('s', {'site_id': 7}),
             ('s', {'v': 2}), ('s', {'site_id': False})]
  with TestPipeline() as p:
    out = (p | beam.Create(records)
           | beam.ParDo(KeyBySite('site_id')).with_outputs(FAILED, main='keyed'))
    assert_that(out.keyed, equal_to([('a', records[0]), ('7', records[1])]), label='keyed')
    assert_that(out[FAILED] | beam.Map(lambda f: f['reason']),
                equal_to(['missing_site', 'bad_site']), label='failed')


def test_custom_site_field():
  main, failed = run_dofn(KeyBySite('building'), ('s', {'building': 'b-9', 'site_id': 'x'}))
  assert main == [('b-9', ('s', {'building': 'b-9', 'site_id': 'x'}))] and not failed
