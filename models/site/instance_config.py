"""Instance config: which fields of a row are fed to the model and echoed in the output.

The per-site job's counterpart of Vertex AI's ``instanceConfig``:

* ``included_fields``: only these fields are fed (in this order for array
  instances); the echoed ``instance`` holds them plus the site and key fields.
* ``excluded_fields``: every field but these is fed; the echo drops them too,
  except the site and key fields, which always travel with the row.
* neither: the whole row is fed and echoed, as without a config.
* ``instance_type=array``: the fed fields, in ``included_fields`` order, are
  one list given to the signature's single input (for models exported with
  one tensor input); ``included_fields`` is required, since rows (JSON
  objects, TFRecord features) carry no column order of their own. The echo
  stays an object, so outputs still name every value.

Object instances are fed by name, so a field that is not a signature input
is ignored by the model either way; a feature the config leaves out becomes
``missing_feature`` when the signature needs it. The site field is fed only
when the config feeds it (listed, or not excluded), like any other field.

Error policy: :func:`apply_instance_config` raises :class:`RecordFailure`
(``missing_feature``) for an array instance with an absent or null field, and
:func:`signature_row` (``bad_feature``) when an array instance meets a
signature with more or fewer than one input; the caller fails that row
alone. :func:`flag_problem` reports flag mistakes as ``(flag, message)``.
"""
from common.failures import BAD_FEATURE
from common.failures import MISSING_FEATURE
from common.failures import PREDICT
from common.failures import RecordFailure
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple, Union

OBJECT = 'object'
ARRAY = 'array'
INSTANCE_TYPES = (OBJECT, ARRAY)

Fed = Union[Dict[str, Any], List[Any]]


class InstanceConfig(NamedTuple):
  """What :func:`apply_instance_config` keeps; build it with :func:`config_from_flags`."""
  site_field: str = 'site_id'
  key_field: Optional[str] = None
  included_fields: Optional[Tuple[str, ...]] = None
  excluded_fields: Optional[Tuple[str, ...]] = None
  instance_type: str = OBJECT

  @property
  def feeds_whole_row(self) -> bool:
    """True when rows are fed and echoed unchanged (no config given)."""
    return (self.included_fields is None and self.excluded_fields is None
            and self.instance_type == OBJECT)

  def travelling(self) -> Tuple[str, ...]:
    """Fields echoed whatever the config says: the site and key fields."""
    return (self.site_field, ) + ((self.key_field, ) if self.key_field else ())


def parse_fields(text: Optional[str]) -> Optional[Tuple[str, ...]]:
  """``"a, b,c"`` -> ``('a', 'b', 'c')``; None stays None. Field names cannot hold commas."""
  if text is None:
    return None
  return tuple(name.strip() for name in text.split(','))


def flag_problem(*, included_fields: Optional[str], excluded_fields: Optional[str],
                 instance_type: str) -> Optional[Tuple[str, str]]:
  """The first mistake in the instance flags as ``(flag, message)``, or None.

  The job raises ``UsageError(flag, message)`` with it (exit 2 before the
  pipeline starts). Args are the raw flag values.
  """
  if instance_type not in INSTANCE_TYPES:
    return 'instance_type', f'{instance_type!r} is not one of {", ".join(INSTANCE_TYPES)}'
  if included_fields is not None and excluded_fields is not None:
    return 'excluded_fields', 'cannot be combined with --included_fields'
  for flag, text in (('included_fields', included_fields), ('excluded_fields', excluded_fields)):
    fields = parse_fields(text)
    if fields is None:
      continue
    if any(not name for name in fields):
      return flag, f'{text!r} has an empty field name (give comma-separated names)'
    repeated = sorted({name for name in fields if fields.count(name) > 1})
    if repeated:
      return flag, f'lists {", ".join(map(repr, repeated))} more than once'
  if instance_type == ARRAY and included_fields is None:
    return 'instance_type', ('array instances need --included_fields to give the order of '
                             'the values fed')
  return None


def config_from_flags(*,
                      site_field: str,
                      key_field: Optional[str],
                      included_fields: Optional[str],
                      excluded_fields: Optional[str],
                      instance_type: str = OBJECT) -> InstanceConfig:
  """The config the flags give.

  Raises:
    ValueError: ``"--flag: message"`` for the first :func:`flag_problem`.
  """
  problem = flag_problem(included_fields=included_fields,
                         excluded_fields=excluded_fields,
                         instance_type=instance_type)
  if problem is not None:
    raise ValueError(f'--{problem[0]}: {problem[1]}')
  return InstanceConfig(site_field, key_field or None, parse_fields(included_fields),
                        parse_fields(excluded_fields), instance_type)


def apply_instance_config(row: Mapping[str, Any],
                          config: InstanceConfig) -> Tuple[Fed, Dict[str, Any]]:
  """``row -> (fed, echo)``: what the model is given, and what the output echoes.

  ``fed`` is a dict (object instances) or a list (array instances, to be put
  into the signature by :func:`signature_row`). Idempotent on the echo:
  ``apply_instance_config(echo, config) == (fed, echo)``, so rows can be cut
  down to their echo before the shuffle and fed from it afterwards. Without
  a config the row itself is returned as both.

  Raises:
    RecordFailure: ``missing_feature``: an array instance lacks a field, or
      holds null in it.
  """
  return fed_of(row, config), echo_of(row, config)


def echo_of(row: Mapping[str, Any], config: InstanceConfig) -> Dict[str, Any]:
  """The fields of ``row`` the output echoes, in the row's order; never raises."""
  if config.feeds_whole_row:
    return row
  travelling = config.travelling()
  if config.included_fields is not None:
    included = set(config.included_fields)
    return {k: v for k, v in row.items() if k in included or k in travelling}
  excluded = set(config.excluded_fields or ())
  return {k: v for k, v in row.items() if k not in excluded or k in travelling}


def fed_of(row: Mapping[str, Any], config: InstanceConfig) -> Fed:
  """What the model is given for ``row`` (see :func:`apply_instance_config`)."""
  if config.feeds_whole_row:
    return row
  if config.instance_type == ARRAY:
    return _array(row, config.included_fields)
  if config.included_fields is not None:
    included = set(config.included_fields)
    return {k: v for k, v in row.items() if k in included}
  excluded = set(config.excluded_fields or ())
  return {k: v for k, v in row.items() if k not in excluded}


def _array(row: Mapping[str, Any], order: Iterable[str]) -> List[Any]:
  values = []
  for name in order:
    value = row.get(name)
    if value is None:
      what = 'null' if name in row else 'missing'
      raise RecordFailure(PREDICT, MISSING_FEATURE,
                          f'field {name!r} of the array instance is {what}')
    values.append(value)
  return values


def signature_row(input_names: Iterable[str], fed: Fed) -> Dict[str, Any]:
  """``fed`` as a row the signature conversion takes (features by input name).

  An object instance is already one; an array instance becomes the value of
  the signature's only input.

  Raises:
    RecordFailure: ``bad_feature``: an array instance for a signature
      without exactly one input.
  """
  if isinstance(fed, dict):
    return fed
  names = sorted(input_names)
  if len(names) != 1:
    raise RecordFailure(
        PREDICT, BAD_FEATURE,
        f'an array instance feeds one tensor, but the signature takes {len(names)} inputs '
        f'({", ".join(names) or "none"}); use object instances')
  return {names[0]: fed}
