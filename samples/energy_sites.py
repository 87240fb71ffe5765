"""Built-in sample data: buildings ("sites") whose hourly energy use each has its own model.

Every site's model is a small Keras network exported as a SavedModel with
``serving_default(temperature_c, occupancy, floor_area_m2) -> {"energy_kwh"}``.
Its weights encode that site's physics, so predictions mean something:
a base load, heating below 18 C, cooling above 22 C, occupancy and size.
"""
import json
import os
from typing import Dict, List, NamedTuple

import numpy as np

FEATURES = ('temperature_c', 'occupancy', 'floor_area_m2')
OUTPUT = 'energy_kwh'


class SiteProfile(NamedTuple):
  """kWh per hour = base + heat*max(18-T, 0) + cool*max(T-22, 0) + occ*occupancy + area*m2/1000."""
  base: float
  heat: float
  cool: float
  occ: float
  area: float


def site_name(index: int) -> str:
  return f'site-{index:04d}'


def random_profile(rng: np.random.Generator) -> SiteProfile:
  return SiteProfile(
      base=float(rng.uniform(5, 40)), heat=float(rng.uniform(0.5, 4)),
      cool=float(rng.uniform(0.5, 5)), occ=float(rng.uniform(5, 60)),
      area=float(rng.uniform(2, 12)))


def build_keras_model(profile: SiteProfile):
  """A two-layer Keras model whose weights are the site's profile."""
  import keras  # pylint: disable=import-outside-toplevel
  # A fresh Keras session per site, as a separate training would have: layer
  # and model names then match across sites instead of counting up.
  keras.utils.clear_session()
  inputs = {name: keras.Input(shape=(1,), name=name) for name in FEATURES}
  x = keras.layers.Concatenate(name='features')([inputs[n] for n in FEATURES])
  hidden = keras.layers.Dense(4, activation='relu', name='drivers')
  out = keras.layers.Dense(1, name=OUTPUT)
  model = keras.Model(inputs, {OUTPUT: out(hidden(x))})
  # drivers: [heating degrees, cooling degrees, occupancy, area in 1000 m2]
  hidden.set_weights([
      np.array([[-1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1e-3]], np.float32),
      np.array([18, -22, 0, 0], np.float32)])
  out.set_weights([
      np.array([[profile.heat], [profile.cool], [profile.occ], [profile.area]], np.float32),
      np.array([profile.base], np.float32)])
  return model


def export_site_model(path: str, profile: SiteProfile) -> None:
  build_keras_model(profile).export(path, verbose=False)


def write_model_root(root: str, n_sites: int, *, seed: int = 7,
                     version: str = '1') -> Dict[str, SiteProfile]:
  """Exports ``n_sites`` models as ``{root}/{site}/{version}/``; returns their profiles."""
  rng = np.random.default_rng(seed)
  profiles = {}
  for i in range(n_sites):
    profile = random_profile(rng)
    export_site_model(os.path.join(root, site_name(i), version), profile)
    profiles[site_name(i)] = profile
  return profiles


def generate_rows(sites: List[str], rows_per_site: int, *, seed: int = 11) -> List[dict]:
  """Hourly readings for each site, interleaved across sites as a real feed would be."""
  rng = np.random.default_rng(seed)
  rows = []
  for hour in range(rows_per_site):
    for site in sites:
      rows.append({
          'site_id': site,
          'reading_id': f'{site}-h{hour:04d}',
          'hour': hour,
          'temperature_c': round(float(rng.normal(15, 9)), 1),
          'occupancy': round(float(rng.uniform(0, 1)), 2),
          'floor_area_m2': int(rng.integers(300, 5000)),
      })
  return rows


def write_jsonl(path: str, rows: List[dict], extra_lines: List[str] = ()) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'w', encoding='utf-8') as f:
    for row in rows:
      f.write(json.dumps(row) + '\n')
    for line in extra_lines:
      f.write(line + '\n')
