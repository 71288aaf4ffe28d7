"""L4 distillation set: for each round of an expert's day, the live threads' features, the global
features, and the heuristic teacher's α (docs/design.md §6.3, seed §5.3).

A "round" is the set of an agent's decisions of one day at one negotiation round index: the
threads it answered together (for the sync experts, one ``counter_all`` batch). Rounds with a
single thread carry no coordination signal and are left out.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from hrlxf_core.datasets.offline_obs import decision_threads
from hrlxf_core.datasets.partition import PartitionTables
from hrlxf_core.heuristics import L4_TEMPERATURE, l4_teacher_scores
from hrlxf_core.l1_safety import baseline, l1_limits
from hrlxf_core.l4_features import N_GLOBAL, N_THREAD, global_features, thread_features

L4_SCHEMA: dict[str, pl.DataType] = {
    "set_id": pl.String,
    "world_id": pl.String,
    "agent_id": pl.String,
    "agent_type": pl.String,
    "day": pl.Int32,
    "round": pl.Int32,
    "seq": pl.Int64,
    "n_threads": pl.Int32,
    "thread_feats": pl.Array(pl.Float32, N_THREAD),
    "global_feats": pl.Array(pl.Float32, N_GLOBAL),
    "teacher_alpha": pl.Float32,
}


def build_l4_distill(tables: PartitionTables, goal_hat: pl.DataFrame) -> pl.DataFrame:
    """Distillation rows (one per thread of a multi-thread round); ``goal_hat`` = micro samples
    with the L2 goal (columns world_id, agent_id, day, seq, goal)."""
    if tables.decisions.height == 0:
        return pl.DataFrame(schema=L4_SCHEMA)
    dec, obs, threads = decision_threads(tables)
    key = ["world_id", "agent_id", "day", "seq"]
    dec = dec.join(goal_hat.select(*key, "goal"), on=key, how="left", maintain_order="left")
    if dec["goal"].null_count():
        raise ValueError(f"L4 distill: {dec['goal'].null_count()} decision(s) without a goal_hat row")
    n = dec.height
    limits = l1_limits(obs)
    base = baseline(obs, limits, threads)
    goal = dec["goal"].to_numpy().reshape(n, -1).astype(np.float64)
    nan = np.nan
    feats = thread_features(
        obs, limits, threads, base,
        dec["round"].to_numpy(), dec["relative_time"].to_numpy(),
        dec["recv_q"].cast(pl.Float64).fill_null(nan).to_numpy(),
        (dec["recv_t"] - dec["day"]).cast(pl.Float64).fill_null(nan).to_numpy(),
        dec["recv_p"].cast(pl.Float64).fill_null(nan).to_numpy(),
        goal,
    )  # fmt: skip
    sets = dec.select("world_id", "agent_id", "day", "round").with_columns(
        pl.concat_str(["world_id", "agent_id", "day", "round"], separator="|").alias("set_id"),
        pl.Series("is_buyer", threads.is_buyer),
    )
    sets = sets.with_columns(
        pl.len().over("set_id").alias("n_threads"),
        pl.col("is_buyer").sum().over("set_id").alias("n_buy"),
        pl.int_range(pl.len()).over("set_id").alias("pos"),
    )
    first = sets.with_row_index("i").filter(pl.col("pos") == 0).select("set_id", "i")
    first_idx = sets.join(first, on="set_id", how="left", maintain_order="left")["i"].to_numpy()
    n_threads = sets["n_threads"].to_numpy()
    n_buy = sets["n_buy"].to_numpy()
    # global features from the observation at the set's first decision (the batch's moment)
    glob = global_features(obs.take(first_idx), n_buy, n_threads - n_buy, goal[first_idx])
    scores = l4_teacher_scores(feats[:, None, :], glob)[:, 0] / L4_TEMPERATURE
    s = sets.with_columns(pl.Series("z", scores))
    s = s.with_columns((pl.col("z") - pl.col("z").max().over("set_id")).exp().alias("e"))
    alpha = (s["e"] / s.select(pl.col("e").sum().over("set_id")).to_series()).to_numpy()
    out = pl.DataFrame(
        {
            "set_id": sets["set_id"],
            "world_id": dec["world_id"],
            "agent_id": dec["agent_id"],
            "agent_type": dec["agent_type"],
            "day": dec["day"],
            "round": dec["round"],
            "seq": dec["seq"],
            "n_threads": n_threads,
            "thread_feats": feats.astype(np.float32),
            "global_feats": glob.astype(np.float32),
            "teacher_alpha": alpha,
        }
    ).filter(pl.col("n_threads") >= 2)
    return out.select([pl.col(c).cast(t) for c, t in L4_SCHEMA.items()])
