"""Composite PTransforms and DoFns, usable from any Beam pipeline.

Shared by both jobs: :mod:`transforms.json_lines`, :mod:`transforms.dead_letters`,
:mod:`transforms.run_summary`. Per job: :mod:`transforms.site` (per-site
predictions) and :mod:`transforms.detection` (image detection).
"""
