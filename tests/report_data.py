"""Report test data: predictions, dead letters and per-site counts as the reporting
transforms take them, and output values as numbers."""
from transforms.reporting import site_outcomes as so
from transforms.site.predictions import Prediction


def make_prediction(site, outputs, version='1', instance=None):
  return Prediction(site, 'in.jsonl', instance or {'site_id': site}, outputs, version)


def make_letter(site, reason, record=None, message='went wrong'):
  return {
      'stage': 'predict',
      'reason': reason,
      'message': message,
      'site_id': site,
      'source': 'in.jsonl',
      'record': record
  }


def counts_list():
  """Five sites' counts: (predicted, failed) = (5, 0), (3, 3), (0, 1), (8, 2), (0, 0)."""
  out = []
  for predicted, failed in ((5, 0), (3, 3), (0, 1), (8, 2), (0, 0)):
    c = so._Counts()  # pylint: disable=protected-access
    c.predicted = predicted
    c.failed = {'bad_feature': failed} if failed else {}
    out.append(c)
  return out


def flat_numbers(value):
  """Every number in an output value (nested lists flattened; bools count), as floats."""
  if isinstance(value, (bool, int, float)):
    return [float(value)]
  if isinstance(value, list):
    return [x for item in value for x in flat_numbers(item)]
  return []
