"""Steps of the per-site prediction job: parse and pack rows, group by site,
predict with each site's model, write predictions (files and BigQuery)."""
from common import beam_ml

beam_ml.without_model_manager()  # no torch, no SciPy: see common.beam_ml
