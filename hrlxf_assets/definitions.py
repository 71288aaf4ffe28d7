"""The one code location of hrlxf (loaded by ``dagster dev`` through workspace.yaml)."""

import dagster as dg

from hrlxf_assets.collect import tournament_logs
from hrlxf_assets.resources import DataStore
from hrlxf_assets.schedules import collect_job, recollect_schedule

defs = dg.Definitions(
    assets=[tournament_logs],
    jobs=[collect_job],
    schedules=[recollect_schedule],
    resources={"data_store": DataStore()},
)
