"""L3 micro samples: one row per decision point of a tracked expert (docs/design.md §6.3).

Inputs hold only what the expert knew before deciding: the offer history of the thread
strictly before its own answer (the offer it is answering is the last entry; the counter-offer
it sent is never in its own input), the state after the day's earlier agreements, the L1
baseline and limits at that moment. Labels: op (ACCEPT / OFFER / END), residual = expert
counter-offer − baseline, delivery offset δ of the counter-offer.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from hrlxf_core.constants import N_OFFSETS
from hrlxf_core.datasets.expert_clip import action_kind, expert_clip, level_class
from hrlxf_core.datasets.fault_rows import drop_flagged_decisions
from hrlxf_core.datasets.offline_obs import _group_ids, decision_threads
from hrlxf_core.datasets.outcomes import daily_profit
from hrlxf_core.datasets.partition import PartitionTables
from hrlxf_core.expert_inputs import N_EXPERT, expert_features
from hrlxf_core.l1_safety import baseline, l1_limits, market_price, role_safe, time_mask
from hrlxf_core.l3_contract import (
    HIST_FEATURES,
    HIST_LEN,
    OP_ACCEPT,
    OP_END,
    OP_OFFER,
    encode_history,
)
from hrlxf_core.labels import GOAL_DIM
from hrlxf_core.state import N_STATIC, x_role_thread, x_static

__all__ = ["MICRO_SCHEMA", "build_micro"]  # the L3 contract (OP_*, HIST_*) lives in hrlxf_core.l3_contract

MICRO_SCHEMA: dict[str, pl.DataType] = {
    "world_id": pl.String,
    "agent_id": pl.String,
    "agent_type": pl.String,
    "day": pl.Int32,
    "seq": pl.Int64,
    "negotiation_id": pl.String,
    "is_buyer": pl.Boolean,
    "round": pl.Int32,
    "relative_time": pl.Float32,
    "n_lines": pl.Float32,
    "market_price": pl.Float32,
    "x_static": pl.Array(pl.Float32, N_STATIC),
    "x_role": pl.Array(pl.Float32, 2),
    "hist": pl.Array(pl.Float32, HIST_LEN * HIST_FEATURES),
    "hist_len": pl.Int32,
    "hist_last_event": pl.Int64,  # order of the newest history entry (leakage guard)
    "own_event": pl.Int64,  # order of this decision's own outgoing offer
    "has_offer": pl.Boolean,
    "recv_q": pl.Float32,
    "recv_delta": pl.Int32,
    "recv_p": pl.Float32,
    "q_min": pl.Float32,
    "q_max": pl.Float32,
    "p_min": pl.Float32,
    "p_max": pl.Float32,
    "base_q": pl.Float32,
    "base_delta": pl.Int32,
    "base_p": pl.Float32,
    "base_feasible": pl.Boolean,
    "q_safe": pl.Array(pl.Float32, N_OFFSETS),
    "b_free": pl.Float32,
    "time_mask": pl.Array(pl.Boolean, N_OFFSETS),
    "op_label": pl.Int8,
    "has_counter": pl.Boolean,
    "res_q": pl.Float32,
    "res_p": pl.Float32,
    "delta_label": pl.Int32,
    "reward": pl.Float32,  # AWR return: the agent-day's discounted profit-to-go (never an input)
    "agent_score": pl.Float32,  # the agent's score in its world (outcome weighting; never an input)
    "level": pl.String,  # first / middle / last (the L1 clip rate is reported by level)
    "action_kind": pl.String,  # accept / counter / open / end
    "l1_changed": pl.Boolean,  # clip() would change the expert's action (never an input)
    "l1_forbidden": pl.Boolean,  # clip() would refuse it (never an input)
    "goal": pl.Array(pl.Float32, GOAL_DIM),
    "x_expert": pl.Array(pl.Float32, N_EXPERT),
}


def _history(
    dec: pl.DataFrame, n_lines: np.ndarray, market: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, HIST_LEN*4) history, its length and the order of its newest entry, per decision.

    Each decision j of a thread contributes up to two events: the offer it received (order 2j)
    and the offer it sent (order 2j+1). Decision i sees the thread's events of order < 2i+1.
    """
    n = dec.height
    seq = dec["seq"].to_numpy()
    day = dec["day"].to_numpy()
    (gid,) = _group_ids(dec, key=["world_id", "agent_id", "negotiation_id"])
    gid = gid.astype(np.int64)
    recv = [dec[c].to_numpy() for c in ("recv_q", "recv_t", "recv_p")]
    sent = [dec[c].to_numpy() for c in ("sent_q", "sent_t", "sent_p")]
    has_recv = ~np.isnan(dec["recv_q"].cast(pl.Float64).fill_null(np.nan).to_numpy())
    has_sent = ~np.isnan(dec["sent_q"].cast(pl.Float64).fill_null(np.nan).to_numpy())
    ev_g = np.concatenate([gid[has_recv], gid[has_sent]])
    ev_order = np.concatenate([2 * seq[has_recv], 2 * seq[has_sent] + 1])
    ev_row = np.concatenate([np.nonzero(has_recv)[0], np.nonzero(has_sent)[0]])
    ev_q = np.concatenate([recv[0][has_recv], sent[0][has_sent]]).astype(np.float64)
    ev_t = np.concatenate([recv[1][has_recv], sent[1][has_sent]]).astype(np.float64)
    ev_p = np.concatenate([recv[2][has_recv], sent[2][has_sent]]).astype(np.float64)
    ev_self = np.concatenate([np.zeros(has_recv.sum()), np.ones(has_sent.sum())])
    order = np.lexsort((ev_order, ev_g))
    ev_g, ev_order, ev_row, ev_q, ev_t, ev_p, ev_self = (
        a[order] for a in (ev_g, ev_order, ev_row, ev_q, ev_t, ev_p, ev_self)
    )
    span = float(2 * seq.max(initial=0) + 4)
    comp = ev_g * span + ev_order
    end = np.searchsorted(comp, gid * span + 2 * seq + 1, side="left")  # events with order < 2i+1
    start = np.searchsorted(comp, gid * span - 1, side="right")
    length = np.minimum(end - start, HIST_LEN)
    idx = end[:, None] - HIST_LEN + np.arange(HIST_LEN)[None, :]
    valid = idx >= np.maximum(start, end - HIST_LEN)[:, None]
    idx = np.clip(idx, 0, max(len(comp) - 1, 0))
    hist = np.zeros((n, HIST_LEN * HIST_FEATURES))
    if len(comp):  # the agent's ThreadHistory encodes its live entries with the same function
        hist = encode_history(ev_q[idx], ev_t[idx], ev_p[idx], ev_self[idx], valid, n_lines, market, day)
    last = np.where(
        end > start, ev_order[np.clip(end - 1, 0, max(len(comp) - 1, 0))] if len(comp) else -1, -1
    )
    return hist, length, last


def build_micro(tables: PartitionTables) -> pl.DataFrame:
    """Micro samples of a partition (rows sorted by world, agent, day, seq)."""
    if tables.decisions.height == 0:
        return pl.DataFrame(schema=MICRO_SCHEMA)
    dec, obs, threads = decision_threads(tables)
    limits = l1_limits(obs)
    mask = time_mask(obs, limits, threads)
    base = baseline(obs, limits, threads, mask)
    market = market_price(obs, threads.is_buyer)
    day = dec["day"].to_numpy()
    action = dec["action"].to_numpy()
    has_counter = dec["sent_q"].is_not_null().to_numpy()
    op = np.where(action == "ACCEPT", OP_ACCEPT, np.where(has_counter, OP_OFFER, OP_END)).astype(np.int8)
    sent_q = dec["sent_q"].cast(pl.Float64).fill_null(0.0).to_numpy()
    sent_p = dec["sent_p"].cast(pl.Float64).fill_null(0.0).to_numpy()
    sent_delta = dec["sent_t"].cast(pl.Float64).fill_null(np.nan).to_numpy() - day
    hist, hist_len, hist_last = _history(dec, obs.n_lines, market)
    key = ["world_id", "agent_id", "day"]
    outcome = dec.select(key).join(
        daily_profit(tables.day_states, tables.worlds), on=key, how="left", maintain_order="left"
    )
    recv_q = dec["recv_q"].cast(pl.Float64)
    has_recv = recv_q.is_not_null().to_numpy()
    kind = action_kind(action, has_recv, has_counter)

    def _f(col: str) -> np.ndarray:
        return dec[col].cast(pl.Float64).fill_null(np.nan).to_numpy()

    changed, forbidden = expert_clip(
        obs,
        limits,
        threads,
        mask,
        kind,
        (_f("recv_q"), _f("recv_t") - day, _f("recv_p")),
        (_f("sent_q"), sent_delta, _f("sent_p")),
    )
    out = pl.DataFrame(
        {
            "world_id": dec["world_id"],
            "agent_id": dec["agent_id"],
            "agent_type": dec["agent_type"],
            "day": dec["day"],
            "seq": dec["seq"],
            "negotiation_id": dec["negotiation_id"],
            "is_buyer": dec["is_buyer"],
            "round": dec["round"],
            "relative_time": dec["relative_time"],
            "n_lines": obs.n_lines,
            "market_price": market,
            "x_static": x_static(obs).astype(np.float32),
            "x_role": x_role_thread(threads.is_buyer).astype(np.float32),
            "hist": hist.astype(np.float32),
            "hist_len": hist_len,
            "hist_last_event": hist_last,
            "own_event": 2 * dec["seq"].to_numpy() + 1,
            "has_offer": recv_q.is_not_null(),
            "recv_q": recv_q.fill_null(0.0),
            "recv_delta": (dec["recv_t"] - dec["day"]).fill_null(0),
            "recv_p": dec["recv_p"].fill_null(0.0),
            "q_min": threads.q_min,
            "q_max": threads.q_max,
            "p_min": threads.p_min,
            "p_max": threads.p_max,
            "base_q": base.q,
            "base_delta": base.delta,
            "base_p": base.p,
            "base_feasible": base.feasible,
            "q_safe": role_safe(limits, threads.is_buyer).astype(np.float32),
            "b_free": limits.b_free,
            "time_mask": mask,
            "op_label": op,
            "has_counter": has_counter,
            "res_q": np.where(has_counter, sent_q - base.q, 0.0),
            "res_p": np.where(has_counter, sent_p - base.p, 0.0),
            "delta_label": np.where(has_counter, np.nan_to_num(sent_delta, nan=-1), -1).astype(np.int32),
            "reward": outcome["return_to_go"],
            "agent_score": outcome["agent_score"],
            "goal": np.zeros((dec.height, GOAL_DIM), dtype=np.float32),
            "level": level_class(dec["is_first_level"].to_numpy(), dec["is_last_level"].to_numpy()),
            "action_kind": kind,
            "l1_changed": changed,
            "l1_forbidden": forbidden,
            "x_expert": expert_features(obs, threads.is_buyer).astype(np.float32),
        }
    )
    out = drop_flagged_decisions(out, tables.decisions)  # made after the agent's exception
    return out.select([pl.col(c).cast(t) for c, t in MICRO_SCHEMA.items()])
