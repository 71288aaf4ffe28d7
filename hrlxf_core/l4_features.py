"""L4 features: one vector per live thread of a round, and one global vector (docs/design.md §6.3).

They are built only from quantities that both the live agent and the offline pipeline have
(the observation, the L1 limits and baseline of each thread, the thread's latest offer and
progress, and the quantities the experts decide on: ``hrlxf_core.expert_inputs``), so the distillation set and the online coordinator see the same inputs.
"""

from __future__ import annotations

import numpy as np

from hrlxf_core.expert_inputs import EXPERT_FEATURE_NAMES, expert_features
from hrlxf_core.l1_safety import Baseline, L1Limits, Threads, market_price, role_safe
from hrlxf_core.labels import GOAL_DIM, hard_bucket
from hrlxf_core.normalization import FEATURE_CLIP, INVENTORY_DAYS_NORM, ROUNDS_NORM, THREADS_NORM
from hrlxf_core.numeric import finite, stack_last
from hrlxf_core.state import N_STATIC, N_TEMPORAL, Observation, x_role_thread, x_static, x_temporal

THREAD_FEATURE_NAMES = (
    "is_buyer",
    "is_seller",
    "round",
    "relative_time",
    "has_offer",
    "offer_q",
    "offer_delta",
    "offer_price",
    "base_q",
    "base_delta",
    "base_price",
    "safe_q_at_delta",
    "goal_q_gap",
    *(f"temporal_{i}" for i in range(N_TEMPORAL)),
    *(f"expert_{n}" for n in EXPERT_FEATURE_NAMES),
)
N_THREAD = len(THREAD_FEATURE_NAMES)
N_GLOBAL = N_STATIC + 2 + GOAL_DIM


def thread_features(
    obs: Observation,
    limits: L1Limits,
    threads: Threads,
    base: Baseline,
    round_: np.ndarray,
    relative_time: np.ndarray,
    offer_q: np.ndarray,
    offer_delta: np.ndarray,
    offer_p: np.ndarray,
    goal: np.ndarray | None = None,
    expert: np.ndarray | None = None,
    temporal: np.ndarray | None = None,
) -> np.ndarray:
    """(N, N_THREAD) features of N threads (row i of limits/threads/base is thread i's; ``obs``
    has one row per thread, or a single row that every thread shares, as in a live round).

    ``offer_*`` is the partner's latest offer (NaN when the thread has none yet); ``goal`` the
    L2 goal of the thread's agent-day (N, 16) or None (zeros). Callers that have them already
    (the agent computes them once per round) pass ``expert``, the threads' ``expert_features``
    (N, N_EXPERT), and ``temporal``, ``x_temporal(obs)`` (one row per row of ``obs``)."""
    n = len(threads.is_buyer)
    if obs.size not in (1, n):
        raise ValueError(f"thread_features: {obs.size} observation rows for {n} threads")
    shared = obs.size != n  # one observation row for every thread
    nl = np.maximum(obs.n_lines, 1e-9)
    market = np.maximum(market_price(obs, threads.is_buyer), 1e-9)
    has = ~np.isnan(np.asarray(offer_q, np.float64))
    rows = np.arange(n)
    recv_delta = finite(np.asarray(offer_delta, np.float64))
    delta = np.where(has, recv_delta, base.delta).astype(np.int64)
    delta = delta.clip(0, obs.supplies.shape[1] - 1)
    safe = role_safe(limits, threads.is_buyer)[rows, delta]
    goal = np.zeros((n, GOAL_DIM)) if goal is None else np.asarray(goal, np.float64)
    b = hard_bucket(delta)
    q_col = np.where(np.asarray(threads.is_buyer, bool), 0, 2)
    goal_q = goal[rows, 4 * b + q_col]  # in days of production
    temporal = x_temporal(obs) if temporal is None else temporal
    temporal = temporal[np.zeros_like(rows) if shared else rows, delta]
    if expert is None:
        expert = expert_features(obs.take(np.zeros(n, np.int64)) if shared else obs, threads.is_buyer)
    offer_q_days = np.where(has, finite(offer_q) / nl, 0.0)
    cols = [
        *x_role_thread(threads.is_buyer).T,
        np.asarray(round_, np.float64) / ROUNDS_NORM,
        np.asarray(relative_time, np.float64),
        has.astype(np.float64),
        offer_q_days,
        np.where(has, recv_delta / INVENTORY_DAYS_NORM, 0.0),
        np.where(has, finite(offer_p) / market, 0.0),
        base.q / nl,
        base.delta / INVENTORY_DAYS_NORM,
        base.p / market,
        safe / (nl * INVENTORY_DAYS_NORM),
        goal_q - offer_q_days,
    ]
    feats = np.concatenate([stack_last(cols), temporal, expert], axis=1)
    return feats.clip(-FEATURE_CLIP, FEATURE_CLIP)


def global_features(
    obs: Observation,
    n_buy_threads: np.ndarray,
    n_sell_threads: np.ndarray,
    goal: np.ndarray | None = None,
    static: np.ndarray | None = None,
) -> np.ndarray:
    """(B, N_GLOBAL): x_static, live buy / sell thread counts, and the day's L2 goal
    (``static``: ``x_static(obs)`` when the caller has it already)."""
    goal = np.zeros((obs.size, GOAL_DIM)) if goal is None else np.asarray(goal, np.float64)
    counts = (
        np.stack([np.asarray(n_buy_threads, np.float64), np.asarray(n_sell_threads, np.float64)], axis=1)
        / THREADS_NORM
    )
    static = x_static(obs) if static is None else static
    return np.concatenate([static, counts, goal], axis=1).clip(-FEATURE_CLIP, FEATURE_CLIP)
