"""The Dagster face of hrlxf: assets, checks, resources, partitions, schedules, Definitions.

Thin by design: every asset calls one ``hrlxf_core`` function and records metadata.
"""
