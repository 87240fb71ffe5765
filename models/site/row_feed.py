"""A chunk's rows -> what a site's signature is fed: instance config first, then CSV typing.

The model-side step of :mod:`models.site.instance_config` and
:mod:`models.site.text_features`, run once the site's model (so its input
specs) is known, right before :meth:`models.site.site_model.SiteModel.predict`::

  row --fed_of(config)--> dict or list --signature_row--> {input: value}
      --typed_row (text-typed rows: CSV)--> the row the signature conversion takes

Error policy: a row that cannot be fed (an array instance missing a field,
a CSV cell that is not of its input's dtype, an array instance for a
signature with several inputs) fails alone, with the
:class:`~models.site.errors.RecordFailure` reason; every row of the chunk
gets exactly one :class:`~models.site.site_model.RowResult`, in row order.
"""
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from common.failures import RecordFailure
from models.site.instance_config import InstanceConfig
from models.site.instance_config import fed_of
from models.site.instance_config import signature_row
from models.site.signature_inputs import InputSpec
from models.site.site_model import RowResult
from models.site.text_features import TextTyper


class FedRows(NamedTuple):
  """Rows ready for the signature, and the chunk rows that could not be fed."""
  indices: List[int]  # chunk index of each fed row
  rows: List[Dict[str, Any]]
  failures: List[Tuple[int, RecordFailure]]


def feed_rows(specs: Mapping[str, InputSpec],
              rows: Sequence[Mapping[str, Any]],
              *,
              config: Optional[InstanceConfig] = None,
              text_values: bool = False) -> FedRows:
  """Applies ``config`` (None: rows fed whole) and, for ``text_values`` rows, typing.

  Without a config and with typed rows this is free: the rows are returned as given.
  """
  if (config is None or config.feeds_whole_row) and not text_values:
    return FedRows(list(range(len(rows))), list(rows), [])
  typed = TextTyper(specs) if text_values else None
  indices, fed, failures = [], [], []
  for index, row in enumerate(rows):
    try:
      value = fed_of(row, config) if config is not None else row
      value = signature_row(specs, value)
      if typed is not None:
        value = typed(value)
    except RecordFailure as e:
      failures.append((index, e))
      continue
    indices.append(index)
    fed.append(value)
  return FedRows(indices, fed, failures)


def predict_rows(model,
                 rows: Sequence[Mapping[str, Any]],
                 *,
                 config: Optional[InstanceConfig] = None,
                 text_values: bool = False) -> Sequence[RowResult]:
  """``model.predict`` of the fed rows, results indexed by the chunk's rows.

  Args:
    model: a :class:`~models.site.site_model.SiteModel` (``inputs``, ``predict``).
    rows: the chunk's rows (as echoed).
    config: the job's instance config; None feeds rows whole.
    text_values: the rows hold text to type by the signature (CSV input).
  """
  fed = feed_rows(model.inputs, rows, config=config, text_values=text_values)
  if not fed.failures and len(fed.indices) == len(rows):
    return model.predict(fed.rows)
  results = [RowResult(i, None, e.reason, e.message) for i, e in fed.failures]
  if fed.rows:
    results.extend(r._replace(index=fed.indices[r.index]) for r in model.predict(fed.rows))
  results.sort(key=lambda r: r.index)
  return results
