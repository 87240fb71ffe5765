"""What each job refuses at start, checked before launching.

The function is deployed alone, so these rules are a small copy of the jobs'
own start-up checks that need no model or data (each raises ``Rejected``
naming the parameter):

- both jobs: ``output`` must not equal the input, lie inside it, or contain
  it; "inside"/"containing" means the input pattern could match some name
  below ``output/`` (glob-aware, see path_overlap);
- site_predictions: exactly one of ``input``, ``input_table``,
  ``input_query``; ``selected_fields``/``row_restriction`` only with
  ``input_table``; ``selected_fields`` lists the site field;
- detect_images: ``output`` and ``move_inputs_to`` outside the input's root
  folder (the folder before the first wildcard; for a plain path, the path if
  it is a folder, else its parent), ``move_inputs_to`` outside ``output``;
  ``model`` or ``model_config`` + ``model_weights`` + ``class_names``;
  not ``delete_inputs=true`` with ``move_inputs_to``; ``image_size`` a
  multiple of 32.
"""
from typing import Callable, Dict, Mapping

import path_overlap
from trigger_files import Rejected

# Job flags a trigger file may pass although an older template's metadata
# lacks them (the metadata's regexes apply too where it has them).
EXTRA_PARAMETERS = {
    'overwrite': r'^(true|false)$',
    'max_failed_fraction': r'^(0(\.[0-9]+)?|1(\.0+)?)$',
}
_SOURCES = ('input', 'input_table', 'input_query')
_DARKNET = ('model_config', 'model_weights', 'class_names')


def _overlap(flag: str, value: str, pattern: str) -> None:
  if value.rstrip('/') == pattern.rstrip('/'):
    raise Rejected(f'parameter {flag!r} is the input {pattern!r}',
                   code='output_overlaps_input',
                   parameter=flag)
  if path_overlap.may_match_prefix(pattern, value.rstrip('/') + '/'):
    raise Rejected(
        f'parameter {flag!r} ({value!r}) overlaps the input {pattern!r}: the input '
        'could match what is written there',
        code='output_overlaps_input',
        parameter=flag)


def _site_predictions(parameters: Mapping[str, str]) -> None:
  sources = [name for name in _SOURCES if name in parameters]
  if len(sources) != 1:
    raise Rejected('give exactly one of input, input_table, input_query' +
                   (f' (got {", ".join(sources)})' if sources else ''),
                   code='missing_parameter' if not sources else 'conflicting_parameters',
                   parameter=sources[-1] if sources else 'input')
  for name in ('selected_fields', 'row_restriction'):
    if name in parameters and 'input_table' not in parameters:
      raise Rejected(f'parameter {name!r} only applies with input_table',
                     code='conflicting_parameters',
                     parameter=name)
  site_field = parameters.get('site_field', 'site_id')
  if 'selected_fields' in parameters:
    fields = [f.strip() for f in parameters['selected_fields'].split(',')]
    if site_field not in fields:
      raise Rejected(f'parameter \'selected_fields\' must include the site field {site_field!r}',
                     code='bad_value',
                     parameter='selected_fields')
  if 'input' in parameters:
    _overlap('output', parameters['output'], parameters['input'])


def _input_root(spec: str, is_folder: Callable[[str], bool]) -> str:
  """The folder the detection job treats as the input's root (its own rule)."""
  if path_overlap.GLOB_CHARS.search(spec):
    return path_overlap.literal_folder(spec)
  if spec.endswith('/') or is_folder(spec):
    return spec.rstrip('/')
  return path_overlap.literal_folder(spec)  # a file or a name prefix: its folder


def _detect_images(parameters: Mapping[str, str], is_folder: Callable[[str], bool]) -> None:
  darknet = [name for name in ('model_config', 'model_weights') if name in parameters]
  if 'model' in parameters and darknet:
    raise Rejected(f'give either model or {"/".join(darknet)}, not both',
                   code='conflicting_parameters',
                   parameter='model')
  if 'model' not in parameters:
    for name in _DARKNET:
      if name not in parameters:
        raise Rejected(
            f'missing required parameters: {name} (a Darknet model needs '
            'model_config, model_weights and class_names; or give model)',
            code='missing_parameter',
            parameter=name)
  if parameters.get('delete_inputs') == 'true' and 'move_inputs_to' in parameters:
    raise Rejected('use either delete_inputs or move_inputs_to, not both',
                   code='conflicting_parameters',
                   parameter='move_inputs_to')
  size = parameters.get('image_size', '32')
  if not size.isdigit() or int(size) < 32 or int(size) % 32:
    raise Rejected(
        f'parameter \'image_size\' must be a multiple of 32, got '
        f'{parameters["image_size"]}',
        code='bad_value',
        parameter='image_size')
  spec = parameters['input']
  pattern = spec if path_overlap.GLOB_CHARS.search(spec) else spec + '**'
  root = _input_root(spec, is_folder)
  for flag in ('output', 'move_inputs_to'):
    if flag not in parameters:
      continue
    value = parameters[flag]
    if path_overlap.same_or_below(value, root):
      raise Rejected(
          f'parameter {flag!r} ({value!r}) is inside the input folder {root!r}: a '
          'later run would read it back as input',
          code='output_overlaps_input',
          parameter=flag)
    _overlap(flag, value, pattern)
  if 'move_inputs_to' in parameters:
    move_to, output = parameters['move_inputs_to'], parameters['output']
    if path_overlap.same_or_below(move_to, output) or path_overlap.same_or_below(output, move_to):
      raise Rejected(
          f'parameter \'move_inputs_to\' ({move_to!r}) overlaps the output '
          f'{output!r}',
          code='output_overlaps_input',
          parameter='move_inputs_to')


def check(job: str, parameters: Dict[str, str], *, is_folder: Callable[[str], bool]) -> None:
  """Raises Rejected if ``job`` would refuse ``parameters`` at start.

  Args:
    job: "site_predictions" or "detect_images".
    parameters: validated string parameters (required ones present).
    is_folder: ``uri -> bool``, whether objects exist below ``uri/``.
  """
  for name in ('output', 'input') if job == 'detect_images' else ('output', ):
    if name not in parameters:
      raise Rejected(f'missing required parameters: {name}',
                     code='missing_parameter',
                     parameter=name)
  if job == 'site_predictions':
    _site_predictions(parameters)
  elif job == 'detect_images':
    _detect_images(parameters, is_folder)
