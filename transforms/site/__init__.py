"""Steps of the per-site prediction job: parse and pack rows, group by site,
predict with each site's model, write predictions (files and BigQuery)."""
