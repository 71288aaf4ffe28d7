"""Partitions: one dynamic partition per collection run of expert tournaments."""

import dagster as dg

COLLECTION_RUNS = "collection_runs"

collection_runs = dg.DynamicPartitionsDefinition(name=COLLECTION_RUNS)
