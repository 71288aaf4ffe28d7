"""L2 macro samples: one row per tracked expert agent-day (docs/design.md §6.3).

Inputs come only from the day-start record (taken in ``before_step``), so nothing of the day's
own trading leaks into them; the label is the v2 goal reconstructed from the day's deals,
shortfall and intents (``hrlxf_core.labels``).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from hrlxf_core.datasets.expert_clip import level_class
from hrlxf_core.datasets.fault_rows import drop_tainted_days
from hrlxf_core.datasets.offline_obs import DAY_KEY, _group_ids, observation_from_day_states
from hrlxf_core.datasets.outcomes import daily_profit
from hrlxf_core.datasets.partition import PartitionTables
from hrlxf_core.labels import GOAL_DIM, v2_goals
from hrlxf_core.state import N_STATIC, N_TEMPORAL, K, build_state, needed_sales, needed_supplies

MACRO_SCHEMA: dict[str, pl.DataType] = {
    "world_id": pl.String,
    "agent_id": pl.String,
    "agent_type": pl.String,
    "day": pl.Int32,
    "n_steps": pl.Int32,
    "x_static": pl.Array(pl.Float32, N_STATIC),
    "x_temporal": pl.Array(pl.Float32, K * N_TEMPORAL),
    "x_role": pl.Array(pl.Float32, 2),
    "goal": pl.Array(pl.Float32, GOAL_DIM),
    "goal_mask": pl.Array(pl.Float32, GOAL_DIM),
    "level": pl.String,  # first / middle / last
    "agent_score": pl.Float32,  # the agent's score in its world (outcome weighting; never an input)
    "profit": pl.Float32,  # the day's realised profit / initial balance (never an input)
}


def _intents(tables: PartitionTables) -> pl.DataFrame:
    """The last offer the expert sent in each thread of a day that ended without agreement."""
    failed = tables.negotiations.filter(pl.col("status") != "agreement").select(
        "world_id", "agent_id", "negotiation_id"
    )
    last = (
        tables.decisions.filter(pl.col("sent_q").is_not_null())
        .sort([*DAY_KEY, "seq"])
        .group_by(["world_id", "agent_id", "negotiation_id"])
        .agg(
            pl.col("day").last(),
            pl.col("is_buyer").last(),
            pl.col("sent_q").last(),
            pl.col("sent_t").last(),
            pl.col("sent_p").last(),
        )
    )
    return last.join(failed, on=["world_id", "agent_id", "negotiation_id"], how="inner")


def build_macro(tables: PartitionTables) -> pl.DataFrame:
    """Macro samples of a partition (rows sorted by world, agent, day)."""
    ds = tables.day_states.sort(DAY_KEY)
    if ds.height == 0:
        return pl.DataFrame(schema=MACRO_SCHEMA)
    obs = observation_from_day_states(ds)
    state = build_state(obs)
    deals = tables.contracts
    intents = _intents(tables)
    g_ds, g_deal, g_int = _group_ids(ds, deals, intents, key=DAY_KEY)
    n = ds.height
    # group ids of ds rows are 0..n-1 in order (unique agent-days); events map onto them
    pos = np.full(int(max(g_ds.max(), g_deal.max(initial=0), g_int.max(initial=0))) + 1, -1)
    pos[g_ds] = np.arange(n)
    deal_row, int_row = pos[g_deal], pos[g_int]
    dk, ik = deal_row >= 0, int_row >= 0  # events of agent-days without a day state are dropped
    goal, mask = v2_goals(
        n,
        obs.n_lines,
        obs.trading_price_input,
        obs.trading_price_output,
        obs.can_buy,
        obs.can_sell,
        needed_supplies(obs),
        needed_sales(obs),
        deal_row[dk],
        deals["is_buyer"].to_numpy()[dk],
        (deals["delivery_day"] - deals["day"]).to_numpy()[dk],
        deals["quantity"].to_numpy()[dk],
        deals["unit_price"].to_numpy()[dk],
        int_row[ik],
        intents["is_buyer"].to_numpy()[ik],
        (intents["sent_t"] - intents["day"]).to_numpy()[ik],
        intents["sent_q"].to_numpy()[ik],
        intents["sent_p"].to_numpy()[ik],
    )
    outcome = ds.select(DAY_KEY).join(
        daily_profit(ds, tables.worlds), on=DAY_KEY, how="left", maintain_order="left"
    )
    out = pl.DataFrame(
        {
            "world_id": ds["world_id"],
            "agent_id": ds["agent_id"],
            "agent_type": ds["agent_type"],
            "day": ds["day"],
            "n_steps": ds["n_steps"],
            "x_static": state.x_static.astype(np.float32),
            "x_temporal": state.x_temporal.reshape(n, -1).astype(np.float32),
            "x_role": state.x_role.astype(np.float32),
            "goal": goal.astype(np.float32),
            "goal_mask": mask.astype(np.float32),
            "level": level_class(ds["is_first_level"].to_numpy(), ds["is_last_level"].to_numpy()),
            "agent_score": outcome["agent_score"],
            "profit": outcome["profit"],
        }
    )
    out = drop_tainted_days(out, tables.day_states, tables.decisions)  # after an agent's exception
    return out.select([pl.col(c).cast(t) for c, t in MACRO_SCHEMA.items()])
