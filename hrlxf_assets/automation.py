"""When assets materialize by themselves (docs/design.md §9): parse on every partition, retrain on a cron.

Two automation-condition sensors, so that each can be switched on and off in the UI:

- ``hrlxf_automation`` (on by default): a new ``tournament_logs`` partition is parsed into
  ``macro_samples`` and ``micro_samples`` (eager conditions on those assets).
- ``hrlxf_retrain`` (off by default): on the cron ``$HRLXF_RETRAIN_CRON`` (default Sunday 04:00
  UTC), L2 retrains when macro samples arrived since it was last trained; the per-partition
  derived sets follow eagerly (goal_hat backfill with the new L2, L4 distillation sets); L3, L4
  and the evaluation run once all their inputs were refreshed after that tick. Models never
  retrain on every partition: a week of new collection runs costs one retraining.

Both read their condition from the assets, so ``evaluate_automation_conditions`` tests them
without a daemon.
"""

from __future__ import annotations

import os

import dagster as dg

AC = dg.AutomationCondition

#: Cron of the model retraining (UTC); change it through the environment of the code location.
RETRAIN_CRON = os.environ.get("HRLXF_RETRAIN_CRON", "0 4 * * 0")
#: Seconds between two evaluations of the parse sensor (Dagster's default, 30); the UI test sets
#: it lower through the environment so that it does not wait for ticks.
PARSE_INTERVAL_S = int(os.environ.get("HRLXF_PARSE_INTERVAL_S", "30"))


def follow_each_partition() -> dg.AutomationCondition:
    """Rebuild a partition as soon as an input of it is (re)materialized: the parse of a new
    collection run, and the per-partition sets derived from a model (goal_hat, L4 sets), which
    follow both new partitions and a new model."""
    return AC.eager()


def retrain_on_cron_when_new_data(cron: str = RETRAIN_CRON) -> dg.AutomationCondition:
    """At each tick of ``cron``, train again if any input changed since the last request or
    materialization (an unchanged week costs nothing). For models fed by data alone (L2)."""
    new_data = AC.any_deps_updated().since(AC.newly_requested() | AC.newly_updated())
    return (AC.cron_tick_passed(cron, "UTC") & new_data & ~AC.in_progress()).with_label(
        f"retrain on cron '{cron}' when its inputs changed"
    )


def follow_on_cron(cron: str = RETRAIN_CRON) -> dg.AutomationCondition:
    """After a tick of ``cron``, run once every input has been refreshed since that tick: L3 waits
    for goal_hat re-derived with the new L2, L4 for the new distillation sets, the evaluation for
    all three models."""
    return AC.on_cron(cron, "UTC")


def parse_sensor(parse_assets: list[dg.AssetsDefinition]) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        "hrlxf_automation",
        target=dg.AssetSelection.assets(*parse_assets),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=PARSE_INTERVAL_S,
        description="Parses every new collection_runs partition into macro and micro samples.",
    )


def retrain_sensor(retrain_assets: list[dg.AssetsDefinition]) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        "hrlxf_retrain",
        target=dg.AssetSelection.assets(*retrain_assets),
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"Retrains L2 → goal_hat → L3, L4 and re-evaluates on the cron '{RETRAIN_CRON}' "
        "($HRLXF_RETRAIN_CRON, UTC) when new samples arrived since the last training.",
    )
