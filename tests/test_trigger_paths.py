"""The trigger's glob-aware overlap check against Beam's own glob semantics.

``path_overlap.may_match_prefix(pattern, prefix)`` must say yes whenever some
name starting with ``prefix`` matches ``pattern`` under Beam's
``FileSystem.translate_pattern`` (never miss an overlap), and, for patterns
of literals, ``*`` and ``**``, only then (no refusal without cause).
"""
import importlib.util
import itertools
import re

from apache_beam.io.filesystem import FileSystem
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from transforms.detection import image_files
from trigger_support import FUNCTION_SOURCE


def _load(name):
  spec = importlib.util.spec_from_file_location(f'trigger_{name}',
                                                FUNCTION_SOURCE.parent / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


path_overlap = _load('path_overlap')
ALPHABET = 'ab/'
EXACT_TOKENS = ['a', 'b', '/', '*', '**']
ALL_TOKENS = EXACT_TOKENS + ['?', '[ab]', '[!a]', '[/]', '[']
patterns = st.lists(st.sampled_from(ALL_TOKENS), max_size=6).map(''.join)
exact_patterns = st.lists(st.sampled_from(EXACT_TOKENS), max_size=6).map(''.join)
prefixes = st.text(ALPHABET, max_size=6)


def beam_matches_some_name(pattern, prefix, max_suffix):
  regex = re.compile(FileSystem.translate_pattern(pattern), re.DOTALL)
  for length in range(max_suffix + 1):
    for suffix in itertools.product(ALPHABET, repeat=length):
      if regex.match(prefix + ''.join(suffix)):
        return True
  return False


@settings(max_examples=400, deadline=None)
@given(pattern=patterns, prefix=prefixes)
def test_never_misses_an_overlap(pattern, prefix):
  if beam_matches_some_name(pattern, prefix, max_suffix=3):
    assert path_overlap.may_match_prefix(pattern, prefix)


@settings(max_examples=400, deadline=None)
@given(pattern=exact_patterns, prefix=prefixes)
def test_is_exact_for_stars_and_literals(pattern, prefix):
  # A live position needs at most one character per remaining token.
  assert path_overlap.may_match_prefix(pattern,
                                       prefix) == beam_matches_some_name(pattern,
                                                                         prefix,
                                                                         max_suffix=len(pattern))


def test_examples():
  assert not path_overlap.may_match_prefix('gs://b/in/*.jsonl', 'gs://b/in/out/')
  assert path_overlap.may_match_prefix('gs://b/in/**.jsonl', 'gs://b/in/out/')
  assert path_overlap.may_match_prefix('gs://b/in/*.jsonl', 'gs://b/')
  assert not path_overlap.may_match_prefix('gs://b/in/a.jsonl', 'gs://b/in/a.jsonl/')
  assert not path_overlap.may_match_prefix('gs://b*/x', 'gs://c/')


@given(head=st.text('ab/', max_size=8),
       glob=st.sampled_from(['*', '**', '?', '[ab]']),
       tail=st.text('ab/*', max_size=4))
def test_literal_folder_is_the_detection_jobs_input_root(head, glob, tail):
  spec = 'gs://bucket/' + head + glob + tail
  assert path_overlap.literal_folder(spec) == image_files.resolve_input(spec)[1]
