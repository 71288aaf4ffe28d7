"""Dataset checks: schema, finiteness, label ranges and leakage guards.

Pure functions returning a list of problems (empty = pass), so Dagster asset checks, the
pipeline and tests share them. Each problem names the field.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from hrlxf_core.constants import H
from hrlxf_core.datasets.l4_distill import L4_SCHEMA
from hrlxf_core.datasets.macro import MACRO_SCHEMA
from hrlxf_core.datasets.micro import MICRO_SCHEMA
from hrlxf_core.datasets.offline_obs import observation_from_day_states
from hrlxf_core.l3_contract import OP_NAMES
from hrlxf_core.labels import GOAL_DIM, PRICE_RATIO_RANGE, QUANTITY_LABEL_MAX
from hrlxf_core.state import x_static

#: |goal_hat| above this is no goal L2 could mean (labels live in [0, 20] and [0.5, 2]): a sign of
#: diverged weights or a broken backfill, caught before L3 / L4 train on it.
GOAL_HAT_SANE_MAX = 10 * QUANTITY_LABEL_MAX


def check_schema(df: pl.DataFrame, schema: dict[str, pl.DataType]) -> list[str]:
    problems = [f"{c}: missing column" for c in schema if c not in df.columns]
    problems += [
        f"{c}: dtype {df.schema[c]} != {t}"
        for c, t in schema.items()
        if c in df.columns and df.schema[c] != t
    ]
    return problems


def check_finite(df: pl.DataFrame) -> list[str]:
    problems = []
    for c, t in df.schema.items():
        if t.is_numeric() or isinstance(t, pl.Array):
            arr = df[c].to_numpy()
            if arr.dtype == object:
                continue
            if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
                problems.append(f"{c}: {int((~np.isfinite(arr)).sum())} NaN/inf value(s)")
        if df[c].null_count():
            problems.append(f"{c}: {df[c].null_count()} null value(s)")
    return problems


def check_macro(df: pl.DataFrame, day_states: pl.DataFrame | None = None) -> list[str]:
    problems = check_schema(df, MACRO_SCHEMA)
    if problems:
        return problems
    problems += check_finite(df)
    if df.height == 0:
        return problems
    goal = np.stack(df["goal"].to_numpy()).reshape(-1, GOAL_DIM)
    mask = np.stack(df["goal_mask"].to_numpy()).reshape(-1, GOAL_DIM)
    q, p = goal[:, 0::2], goal[:, 1::2]
    if (q < 0).any() or (q > QUANTITY_LABEL_MAX).any():
        problems.append(f"goal: quantity label outside [0, {QUANTITY_LABEL_MAX}]")
    if (p < PRICE_RATIO_RANGE[0] - 1e-6).any() or (p > PRICE_RATIO_RANGE[1] + 1e-6).any():
        problems.append(f"goal: price label outside {PRICE_RATIO_RANGE}")
    if not np.isin(mask, (0.0, 1.0)).all():
        problems.append("goal_mask: values other than 0/1")
    if df.select(["world_id", "agent_id", "day"]).is_duplicated().any():
        problems.append("world_id/agent_id/day: duplicated agent-day")
    if day_states is not None:
        problems += leakage_guard_macro(df, day_states)
    return problems


def leakage_guard_macro(df: pl.DataFrame, day_states: pl.DataFrame) -> list[str]:
    """Macro inputs must be the day-start snapshot: recompute x_static from day_states and compare."""
    joined = df.select("world_id", "agent_id", "day", "x_static").join(
        day_states.drop("agent_type"), on=["world_id", "agent_id", "day"], how="left", maintain_order="left"
    )
    if joined["balance"].null_count():
        return [f"x_static: {joined['balance'].null_count()} macro row(s) without a day-start snapshot"]
    expect = x_static(observation_from_day_states(joined)).astype(np.float32)
    got = np.stack(joined["x_static"].to_numpy())
    bad = ~np.isclose(got, expect, atol=1e-5).all(1)
    return (
        [f"x_static: {int(bad.sum())} row(s) differ from the day-start snapshot (leakage?)"]
        if bad.any()
        else []
    )


def check_micro(df: pl.DataFrame) -> list[str]:
    problems = check_schema(df, MICRO_SCHEMA)
    if problems:
        return problems
    problems += check_finite(df)
    if df.height == 0:
        return problems
    c = pl.col
    rules = {
        "op_label": ~c("op_label").is_in(list(range(len(OP_NAMES)))),
        "delta_label": (c("delta_label") < -1)
        | (c("delta_label") > H)
        | (c("has_counter") & (c("delta_label") < 0)),
        "hist_last_event": c("hist_last_event") >= c("own_event"),  # leakage guard
        "hist_len": (c("hist_len") < 0) | (c("hist_len") > 16),
        "relative_time": (c("relative_time") < 0) | (c("relative_time") > 1.0 + 1e-6),
        "b_free": c("b_free").is_nan(),
        "base_q": c("base_q") < 0,
        "has_counter": c("has_counter") != (c("op_label") == 1),
        "seq": c("seq") < 0,
    }
    for field, bad in rules.items():
        n = df.select(bad.sum()).item()
        if n:
            problems.append(f"{field}: {n} row(s) out of range")
    q_safe = np.stack(df["q_safe"].to_numpy())
    if (q_safe < 0).any():
        problems.append("q_safe: negative safe quantity")
    if df.select(["world_id", "agent_id", "day", "seq"]).is_duplicated().any():
        problems.append("world_id/agent_id/day/seq: duplicated decision")
    return problems


def check_goal_hat(df: pl.DataFrame, micro: pl.DataFrame) -> list[str]:
    """micro_samples_goal_hat: the micro schema, finite, one row per micro row in the same
    order, and a goal_hat whose every dim is finite and within ±GOAL_HAT_SANE_MAX."""
    problems = check_schema(df, MICRO_SCHEMA)
    if problems:
        return problems
    problems += check_finite(df)
    if df.height != micro.height:
        problems.append(f"rows: {df.height} goal_hat row(s) for {micro.height} micro row(s)")
    elif df.height and not df.select("world_id", "agent_id", "day", "seq").equals(
        micro.select("world_id", "agent_id", "day", "seq")
    ):
        problems.append("world_id/agent_id/day/seq: rows differ from the micro samples'")
    if df.height:
        goal = np.stack(df["goal"].to_numpy()).reshape(-1, GOAL_DIM)
        if not np.isfinite(goal).all():
            problems.append(f"goal: {int((~np.isfinite(goal)).sum())} NaN/inf value(s)")
        elif (np.abs(goal) > GOAL_HAT_SANE_MAX).any():
            problems.append(
                f"goal: {int((np.abs(goal) > GOAL_HAT_SANE_MAX).sum())} value(s) beyond ±{GOAL_HAT_SANE_MAX}"
            )
    return problems


def check_l4(df: pl.DataFrame) -> list[str]:
    """l4_distill_set: schema, finite, α in [0, 1] summing to 1 per set, n_threads rows per set."""
    problems = check_schema(df, L4_SCHEMA)
    if problems:
        return problems
    problems += check_finite(df)
    if df.height == 0:
        return problems
    per_set = df.group_by("set_id").agg(
        pl.col("teacher_alpha").sum().alias("alpha_sum"),
        pl.len().alias("rows"),
        pl.col("n_threads").min().alias("n_min"),
        pl.col("n_threads").max().alias("n_max"),
    )
    c = pl.col
    rules = {
        "teacher_alpha": (c("alpha_sum") - 1.0).abs() > 1e-4,
        "n_threads": (c("n_min") != c("n_max")) | (c("rows") != c("n_min")) | (c("n_min") < 2),
    }
    for field, bad in rules.items():
        n = per_set.select(bad.sum()).item()
        if n:
            what = "α does not sum to 1" if field == "teacher_alpha" else "row count differs from n_threads"
            problems.append(f"{field}: {n} set(s) where {what}")
    n = df.select(((c("teacher_alpha") < 0) | (c("teacher_alpha") > 1.0 + 1e-6)).sum()).item()
    if n:
        problems.append(f"teacher_alpha: {n} row(s) outside [0, 1]")
    return problems
