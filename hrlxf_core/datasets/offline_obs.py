"""Offline observations: the day-start record rebuilt from the logs, moved by the day's
earlier agreements and carrying the offers on the table, exactly as the agent sees it live.

Everything is vectorised with prefix sums over "events" (an agreement, an offer arriving, a
thread ending) keyed by their place in the day's decision order, so a partition of hundreds of
thousands of decisions is processed without a Python loop per decision.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from hrlxf_core.l1_safety import Threads
from hrlxf_core.offer_table import offer_events
from hrlxf_core.state import RECORD_TO_OBS, RECORD_VECTORS, K, Observation, observation_from_arrays

DAY_KEY = ["world_id", "agent_id", "day"]


def observation_from_day_states(ds: pl.DataFrame, offers: dict[str, np.ndarray] | None = None) -> Observation:
    """Observation (one per row) from ``day_states`` rows (or rows joined to them)."""
    scalars = {rec: ds.get_column(rec).cast(pl.Float64).to_numpy() for rec in RECORD_TO_OBS}
    vectors = {
        rec: ds.get_column(rec).list.to_array(K).to_numpy().astype(np.float64) for rec in RECORD_VECTORS
    }
    return observation_from_arrays(
        scalars, vectors, ds["is_first_level"].to_numpy(), ds["is_last_level"].to_numpy(), offers
    )


def prefix_sums_before(
    ev_group: np.ndarray, ev_key: np.ndarray, ev_values: np.ndarray, q_group: np.ndarray, q_key: np.ndarray
) -> np.ndarray:
    """For each query, the sum of the values of events of the same group with key < query key.

    ev_values is (E, C); returns (Q, C). Groups and keys are numbers; O((E + Q) log E).
    """
    n_cols = ev_values.shape[1]
    if len(ev_group) == 0:
        return np.zeros((len(q_group), n_cols))
    order = np.lexsort((ev_key, ev_group))
    g, k, v = ev_group[order], ev_key[order].astype(np.float64), ev_values[order]
    csum = np.vstack([np.zeros((1, n_cols)), np.cumsum(v, axis=0)])
    # position of the group start and of the last event with key < query key, in sorted order
    span = float(max(k.max(initial=0.0), np.max(q_key, initial=0.0)) + 2.0)
    comp_ev = g.astype(np.float64) * span + k
    comp_q = q_group.astype(np.float64) * span + q_key.astype(np.float64)
    end = np.searchsorted(comp_ev, comp_q, side="left")
    start = np.searchsorted(comp_ev, q_group.astype(np.float64) * span - 1.0, side="right")
    return csum[end] - csum[start]


def _group_ids(*frames: pl.DataFrame, key: list[str]) -> list[np.ndarray]:
    """Dense integer ids of ``key`` shared across frames."""
    allkeys = pl.concat([f.select(key) for f in frames]).unique(maintain_order=True).with_row_index("_g")
    return [
        f.select(key).join(allkeys, on=key, how="left", maintain_order="left")["_g"].to_numpy()
        for f in frames
    ]


def _scatter_offset(delta: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(E, K) matrix with ``values`` at column δ (δ clipped into 0..K-1)."""
    out = np.zeros((len(delta), K))
    out[np.arange(len(delta)), np.clip(delta, 0, K - 1).astype(np.int64)] = values
    return out


def agreement_deltas(decisions: pl.DataFrame, contracts: pl.DataFrame) -> dict[str, np.ndarray]:
    """Per decision, the commitments added by the day's agreements reached before it."""
    gd, gc = _group_ids(decisions, contracts, key=DAY_KEY)
    delta = (contracts["delivery_day"] - contracts["day"]).to_numpy()
    q = contracts["quantity"].to_numpy().astype(np.float64)
    val = q * contracts["unit_price"].to_numpy()
    buy = contracts["is_buyer"].to_numpy().astype(bool)
    ev = np.hstack(
        [
            _scatter_offset(delta, np.where(buy, q, 0.0)),
            _scatter_offset(delta, np.where(~buy, q, 0.0)),
            _scatter_offset(delta, np.where(buy, val, 0.0)),
            _scatter_offset(delta, np.where(~buy, val, 0.0)),
        ]
    )
    # agreement number a is known to decision i iff a < n_agreements_before(i)
    sums = prefix_sums_before(
        gc, contracts["agreement_seq"].to_numpy(), ev, gd, decisions["n_agreements_before"].to_numpy()
    )
    return {
        "supplies_by_offset": sums[:, 0:K],
        "sales_by_offset": sums[:, K : 2 * K],
        "payables_by_offset": sums[:, 2 * K : 3 * K],
        "receivables_by_offset": sums[:, 3 * K :],
    }


def active_offers(decisions: pl.DataFrame, negotiations: pl.DataFrame) -> dict[str, np.ndarray]:
    """Per decision, the offers on the table: in each thread of the day still open, the latest
    offer received at an earlier decision (the decision's own offer is its input, not here)."""
    d = decisions.select(*DAY_KEY, "seq", "negotiation_id", "is_buyer", "recv_q", "recv_t", "recv_p")
    rec = d.filter(pl.col("recv_q").is_not_null()).sort([*DAY_KEY, "negotiation_id", "seq"])
    rec = rec.with_columns(
        (pl.col("recv_t") - pl.col("day")).alias("delta"),
        (pl.col("recv_q") * pl.col("recv_p")).alias("value"),
    ).with_columns(
        pl.col("delta").shift(1).over([*DAY_KEY, "negotiation_id"]).alias("prev_delta"),
        pl.col("recv_q").shift(1).over([*DAY_KEY, "negotiation_id"]).alias("prev_q"),
        pl.col("value").shift(1).over([*DAY_KEY, "negotiation_id"]).alias("prev_value"),
    )
    last = rec.group_by([*DAY_KEY, "negotiation_id"]).agg(
        pl.col("is_buyer").last(), pl.col("delta").last(), pl.col("recv_q").last(), pl.col("value").last()
    )
    ends = last.join(
        negotiations.select("world_id", "agent_id", "negotiation_id", "ended_seq"),
        on=["world_id", "agent_id", "negotiation_id"],
        how="inner",
    ).filter(pl.col("ended_seq").is_not_null())

    def side_events(frame: pl.DataFrame, q: np.ndarray, value: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return offer_events(frame["is_buyer"].to_numpy(), q, value, delta)  # the agent's own encoding

    add = side_events(
        rec, rec["recv_q"].to_numpy().astype(float), rec["value"].to_numpy(), rec["delta"].to_numpy()
    )
    has_prev = rec["prev_q"].is_not_null().to_numpy()
    prev = rec.filter(pl.Series(has_prev))
    sub = -side_events(
        prev,
        prev["prev_q"].to_numpy().astype(float),
        prev["prev_value"].to_numpy(),
        prev["prev_delta"].to_numpy(),
    )
    end = -side_events(
        ends, ends["recv_q"].to_numpy().astype(float), ends["value"].to_numpy(), ends["delta"].to_numpy()
    )
    # an offer received at decision j is on the table from decision j+1 (key j + 0.5 < i);
    # a thread that ended after e decisions is off the table from decision e (key e - 0.25 < i)
    frames = [rec, prev, ends]
    gd, g_add, g_prev, g_end = _group_ids(d, *frames, key=DAY_KEY)
    keys = [rec["seq"].to_numpy() + 0.5, prev["seq"].to_numpy() + 0.5, ends["ended_seq"].to_numpy() - 0.25]
    sums = prefix_sums_before(
        np.concatenate([g_add, g_prev, g_end]),
        np.concatenate(keys),
        np.vstack([add, sub, end]),
        gd,
        d["seq"].to_numpy().astype(np.float64),
    )
    sums[np.abs(sums) < 1e-9] = 0.0
    return {
        "offers_buy_q": sums[:, 0:K],
        "offers_buy_value": sums[:, K : 2 * K],
        "offers_sell_q": sums[:, 2 * K : 3 * K],
        "offers_sell_value": sums[:, 3 * K :],
    }


def decision_observations(
    decisions: pl.DataFrame, day_states: pl.DataFrame, contracts: pl.DataFrame, negotiations: pl.DataFrame
) -> tuple[pl.DataFrame, Observation]:
    """Observation at every decision (row-aligned with the returned, sorted decisions frame)."""
    dec = decisions.sort([*DAY_KEY, "seq"])
    joined = dec.join(day_states.drop("agent_type"), on=DAY_KEY, how="left", maintain_order="left")
    missing = joined["balance"].is_null()
    if missing.any():
        row = joined.filter(missing).head(1).to_dicts()[0]
        raise ValueError(
            f"decision without a day-start state: world {row['world_id']} agent {row['agent_id']} day {row['day']}"
        )
    obs = observation_from_day_states(joined, active_offers(dec, negotiations))
    for rec_name, add in agreement_deltas(dec, contracts).items():
        target = RECORD_VECTORS[rec_name]
        setattr(obs, target, getattr(obs, target) + add)
    return joined, obs


RANGE_COLUMNS = ("q_min", "q_max", "t_min", "t_max", "p_min", "p_max")


def decision_threads(tables: Any) -> tuple[pl.DataFrame, Observation, Threads]:
    """At every decision of ``tables`` (a PartitionTables): the observation, and the thread
    (issue ranges, role) with its negotiation's outcome columns joined to the decisions frame."""
    dec, obs = decision_observations(
        tables.decisions, tables.day_states, tables.contracts, tables.negotiations
    )
    neg = tables.negotiations.select(
        "world_id", "agent_id", "negotiation_id", *RANGE_COLUMNS, "status", "agreement_q", "agreement_p"
    )
    dec = dec.join(neg, on=["world_id", "agent_id", "negotiation_id"], how="left", maintain_order="left")
    threads = Threads(
        is_buyer=dec["is_buyer"].to_numpy().astype(bool),
        **{c: dec[c].cast(pl.Float64).to_numpy() for c in RANGE_COLUMNS},
    )
    return dec, obs, threads
