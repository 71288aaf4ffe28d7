"""The one code location of hrlxf (loaded by ``dagster dev`` through workspace.yaml)."""

import dagster as dg

from hrlxf_assets.automation import parse_sensor, retrain_sensor
from hrlxf_assets.collect import tournament_logs
from hrlxf_assets.datasets import macro_samples, micro_samples
from hrlxf_assets.evaluation import agent_evaluation
from hrlxf_assets.models import l2_model, l3_model, l4_distill_set, l4_model, micro_samples_goal_hat
from hrlxf_assets.online import hrl_online_policy
from hrlxf_assets.resources import DataStore
from hrlxf_assets.schedules import collect_job, recollect_schedule
from hrlxf_assets.selection import policy_selection
from hrlxf_assets.teachers import teacher_table_asset

defs = dg.Definitions(
    assets=[
        tournament_logs,
        macro_samples,
        micro_samples,
        teacher_table_asset,
        l2_model,
        micro_samples_goal_hat,
        l3_model,
        l4_distill_set,
        l4_model,
        policy_selection,
        hrl_online_policy,
        agent_evaluation,
    ],
    jobs=[collect_job],
    schedules=[recollect_schedule],
    sensors=[
        parse_sensor([macro_samples, micro_samples]),
        retrain_sensor(
            [
                teacher_table_asset,
                l2_model,
                micro_samples_goal_hat,
                l3_model,
                l4_distill_set,
                l4_model,
                agent_evaluation,
            ]
        ),
    ],
    resources={"data_store": DataStore()},
)
