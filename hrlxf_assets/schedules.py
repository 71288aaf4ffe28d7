"""Scheduled re-collection: each tick adds a new ``collection_runs`` partition and collects it.

A schedule cannot add a dynamic partition declaratively, so the tick adds it through the
instance and then requests the run. It starts STOPPED (turn it on in the UI: Automation tab);
its cron and profile come from the environment so a deployment changes them without code.
"""

from __future__ import annotations

import os

import dagster as dg

from hrlxf_assets.collect import tournament_logs
from hrlxf_assets.partitions import COLLECTION_RUNS

collect_job = dg.define_asset_job(
    "collect_job",
    selection=[tournament_logs],
    description="Collect one partition of expert tournaments (tournament_logs).",
)

RECOLLECT_CRON = os.environ.get("HRLXF_RECOLLECT_CRON", "0 3 * * *")
RECOLLECT_PROFILE = os.environ.get("HRLXF_RECOLLECT_PROFILE", "full")


def partition_key_for(tick_time) -> str:  # noqa: ANN001 - a datetime
    return "sched-" + tick_time.strftime("%Y%m%d-%H%M")


@dg.schedule(
    cron_schedule=RECOLLECT_CRON,
    job=collect_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=f"Adds a collection_runs partition and collects it with the '{RECOLLECT_PROFILE}' profile "
    "(cron from $HRLXF_RECOLLECT_CRON, profile from $HRLXF_RECOLLECT_PROFILE).",
)
def recollect_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    key = partition_key_for(context.scheduled_execution_time)
    if not context.instance.has_dynamic_partition(COLLECTION_RUNS, key):
        context.instance.add_dynamic_partitions(COLLECTION_RUNS, [key])
    return dg.RunRequest(
        run_key=key,
        partition_key=key,
        run_config={"ops": {"tournament_logs": {"config": {"profile": RECOLLECT_PROFILE}}}},
        tags={"hrlxf/trigger": "recollect_schedule"},
    )
