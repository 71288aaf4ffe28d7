"""How much of what the experts do L1 would change or forbid (docs/design.md §6.2: the L1 ceiling).

Why in the dataset builder: an imitator behind L1 can do no more than what survives clip(), so
the share of expert actions clip() would alter is the first number to look at for any L1. It is
computed from the same observation, limits and time mask as the residual labels, per decision:

- ``accept``: the expert accepted the offer it received. L1 *forbids* it when clip() of that offer
  is infeasible, and *changes* it when clip() returns another offer (an unsafe accept would become
  the clipped counter-offer).
- ``counter`` / ``open``: the expert sent an offer (answering one, or opening the thread). L1
  forbids it when clip() finds no feasible action, and changes it when any of q, δ, p moves.
- ``end``: ending a thread is always allowed; it is not counted.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from hrlxf_core.l1_safety import L1Limits, Threads, clip_action
from hrlxf_core.state import Observation

KINDS = ("accept", "counter", "open", "end")
LEVELS = ("first", "middle", "last")


def level_class(is_first_level: np.ndarray, is_last_level: np.ndarray) -> np.ndarray:
    """'first' / 'middle' / 'last' of each row (a factory of a 2-level chain is first or last)."""
    first = np.asarray(is_first_level, bool)
    last = np.asarray(is_last_level, bool)
    return np.where(first, "first", np.where(last, "last", "middle"))


def action_kind(action: np.ndarray, has_recv: np.ndarray, has_sent: np.ndarray) -> np.ndarray:
    """accept / counter / open / end of each recorded decision."""
    action = np.asarray(action)
    return np.where(
        (action == "ACCEPT") & has_recv,
        "accept",
        np.where(has_sent & has_recv, "counter", np.where(has_sent, "open", "end")),
    )


def expert_clip(
    obs: Observation,
    limits: L1Limits,
    threads: Threads,
    mask: np.ndarray,
    kind: np.ndarray,
    recv: tuple[np.ndarray, np.ndarray, np.ndarray],
    sent: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """(changed, forbidden) per decision: would clip() alter / refuse the expert's action?

    ``recv`` and ``sent`` are (q, δ, p) arrays (anything where absent); the action's offer is
    the received one for an accept and the sent one otherwise."""
    acc = kind == "accept"
    q = np.where(acc, recv[0], sent[0]).astype(np.float64)
    d = np.where(acc, recv[1], sent[1]).astype(np.float64)
    p = np.where(acc, recv[2], sent[2]).astype(np.float64)
    q, d, p = (np.nan_to_num(x, nan=0.0) for x in (q, d, p))
    a = clip_action(obs, limits, threads, q, d, p, mask)
    counted = kind != "end"
    forbidden = counted & ~a.feasible
    changed = counted & a.feasible & ((a.q != q) | (a.delta != d) | (a.p != p))
    return changed, forbidden


def clip_rate_table(frame: pl.DataFrame) -> pl.DataFrame:
    """By level × role × kind: actions, changed, forbidden and the clip rate (changed or
    forbidden), from a frame with columns level, is_buyer, action_kind, l1_changed, l1_forbidden."""
    f = frame.filter(pl.col("action_kind") != "end").with_columns(
        pl.when(pl.col("is_buyer")).then(pl.lit("buyer")).otherwise(pl.lit("seller")).alias("role")
    )
    if f.height == 0:
        return pl.DataFrame(
            schema={"level": pl.String, "role": pl.String, "kind": pl.String, "actions": pl.UInt32,
                    "changed": pl.UInt32, "forbidden": pl.UInt32, "clip_rate": pl.Float64}
        )  # fmt: skip
    by = ["level", "role"]
    detail = f.group_by([*by, "action_kind"]).agg(
        pl.len().alias("actions"),
        pl.col("l1_changed").sum().alias("changed"),
        pl.col("l1_forbidden").sum().alias("forbidden"),
    )
    total = f.group_by(by).agg(
        pl.len().alias("actions"),
        pl.col("l1_changed").sum().alias("changed"),
        pl.col("l1_forbidden").sum().alias("forbidden"),
    )
    out = pl.concat(
        [detail.rename({"action_kind": "kind"}), total.with_columns(pl.lit("all").alias("kind"))],
        how="diagonal",
    ).select(
        "level",
        "role",
        "kind",
        pl.col("actions").cast(pl.UInt32),
        pl.col("changed").cast(pl.UInt32),
        pl.col("forbidden").cast(pl.UInt32),
        ((pl.col("changed") + pl.col("forbidden")) / pl.col("actions")).alias("clip_rate"),
    )
    order = {k: i for i, k in enumerate((*LEVELS, "buyer", "seller", "all", *KINDS))}
    return out.sort(
        pl.col("level").replace_strict(order, default=99),
        pl.col("role"),
        pl.col("kind").replace_strict(order, default=99),
    )


def clip_rate_markdown(table: pl.DataFrame) -> str:
    lines = [
        "| level | role | kind | actions | changed | forbidden | clip rate |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in table.iter_rows(named=True):
        lines.append(
            f"| {r['level']} | {r['role']} | {r['kind']} | {r['actions']} | {r['changed']} | "
            f"{r['forbidden']} | {100 * r['clip_rate']:.1f} % |"
        )
    return "\n".join(lines)
