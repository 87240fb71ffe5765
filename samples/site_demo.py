"""Demo of the per-site job: 20 buildings, each with its own Keras energy model."""
import json
import os

from beam_jobs import site_predictions
from samples import energy_sites

N_SITES = 20
HOURS = 24

# A few records a real feed also has: they end in errors/, never vanish.
BAD_LINES = [
    '{"site_id": "site-0003", "reading_id": "truncated", "temperature_c": 1',
    json.dumps({'reading_id': 'no-site', 'temperature_c': 20.0, 'occupancy': 0.5,
                'floor_area_m2': 900}),
    json.dumps({'site_id': 'site-9999', 'reading_id': 'unknown-site', 'temperature_c': 20.0,
                'occupancy': 0.5, 'floor_area_m2': 900}),
    json.dumps({'site_id': 'site-0001', 'reading_id': 'text-temperature',
                'temperature_c': 'warm', 'occupancy': 0.5, 'floor_area_m2': 900}),
]


def prepare(data_dir: str) -> None:
  """Writes the model root and the instances once (models are reused on later runs)."""
  models = os.path.join(data_dir, 'models')
  if not os.path.isdir(models):
    print(f'Exporting {N_SITES} site models under {models} ...', flush=True)
    energy_sites.write_model_root(models, N_SITES)
  sites = [energy_sites.site_name(i) for i in range(N_SITES)]
  energy_sites.write_jsonl(
      os.path.join(data_dir, 'instances', 'readings.jsonl'),
      energy_sites.generate_rows(sites, HOURS), BAD_LINES)


def run_demo(output_dir: str) -> None:
  data_dir = os.path.join(output_dir, 'sample-data', 'sites')
  prepare(data_dir)
  site_predictions.run([
      f'--input={data_dir}/instances/*.jsonl',
      f'--model_root={data_dir}/models',
      f'--output={os.path.join(output_dir, "site-predictions")}',
      '--key_field=reading_id',
      '--overwrite',  # `make demo` again replaces the previous demo run
  ])
