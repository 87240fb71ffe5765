"""The built-in sample: Keras-exported site models whose predictions mean something."""
import json

import numpy as np
import pytest

from beam_jobs import site_predictions
from samples import energy_sites
import savedmodel_builders
from tests_support import read_jsonl


def physics(profile, row):
  t = row['temperature_c']
  return (profile.base + profile.heat * max(18 - t, 0) + profile.cool * max(t - 22, 0) +
          profile.occ * row['occupancy'] + profile.area * row['floor_area_m2'] / 1000)


@pytest.mark.e2e
def test_keras_site_models_predict_their_own_energy_use(tmp_path):
  profiles = energy_sites.write_model_root(str(tmp_path / 'models'), 3)
  rows = energy_sites.generate_rows(sorted(profiles), 8)
  energy_sites.write_jsonl(str(tmp_path / 'in' / 'rows.jsonl'), rows)
  site_predictions.run([
      f'--input={tmp_path}/in/rows.jsonl', f'--model_root={tmp_path}/models',
      f'--output={tmp_path}/out', '--key_field=reading_id'
  ])

  lines = {l['key']: l for l in read_jsonl(tmp_path / 'out' / 'predictions')}
  assert len(lines) == len(rows)
  for row in rows:
    got = lines[row['reading_id']]['prediction']['energy_kwh']
    model_dir = str(tmp_path / 'models' / row['site_id'] / '1')
    direct = savedmodel_builders.call_directly(model_dir, row)['energy_kwh']
    np.testing.assert_allclose(got, direct, rtol=1e-6)
    np.testing.assert_allclose(got[0], physics(profiles[row['site_id']], row), rtol=1e-4)
  summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
  assert summary['reconciled'] and summary['models_loaded'] == 3
