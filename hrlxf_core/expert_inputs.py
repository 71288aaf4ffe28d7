"""The quantities the experts' own rules decide on, as one feature vector per decision.

Why: PenguinAgent (the 2024 winner) decides from today's needs and its commitments, e.g.

- buy need = 0.7·n_lines − input stock − today's supplies;
- sell need = min(n_lines, 0.7·n_lines + stock) − today's sales,

and the 2025/2026 finalists read the same AWI quantities (needed supplies / sales, commitments by
day, the offers on the table). L3's context had none of them, so an imitator had to infer them
from L2's goal. This module computes them from an :class:`Observation` — the one the offline
pipeline rebuilds and the live agent reads (parity-tested) — so online and offline agree by
construction. Torch-free, vectorised over the batch.

Features (``EXPERT_FEATURE_NAMES``), quantities in days of production (÷ n_lines):

- needs: PenguinAgent's buy and sell need, scml's ``needed_supplies`` / ``needed_sales`` (the
  AWI's), and the need of the thread's own role;
- commitments and production plan by delivery offset δ = 0..5 and summed over δ = 6..10 (std
  deliveries are at most 10 days ahead): inbound units, outbound units, planned production
  (``state.production_plan``), and L1's sellable stock;
- the offers on the table: units offered to us in live buy threads and asked of us in live sell
  threads (all δ), their price relative to the trading price (0 when none), and the units on the
  table in the thread's own role.
"""

from __future__ import annotations

import numpy as np

from hrlxf_core.l1_safety import LimitParts, limit_parts, sellable
from hrlxf_core.normalization import FEATURE_CLIP
from hrlxf_core.numeric import stack_last
from hrlxf_core.state import Observation, inbound, needed_sales, needed_supplies, outbound, production_plan

#: PenguinAgent's target share of the lines it keeps busy (team_penguin/penguinagent.py).
PENGUIN_LINE_SHARE = 0.7
#: Offsets given one by one; the rest of the delivery horizon is summed.
NEAR_OFFSETS = 6
HORIZON = 10
_BY_DELTA = ("inbound", "outbound", "plan", "sellable")
EXPERT_FEATURE_NAMES: tuple[str, ...] = (
    "penguin_buy_need",
    "penguin_sell_need",
    "needed_supplies",
    "needed_sales",
    "role_need",
    *(f"{k}_d{d}" for k in _BY_DELTA for d in range(NEAR_OFFSETS)),
    *(f"{k}_d{NEAR_OFFSETS}_{HORIZON}" for k in _BY_DELTA),
    "table_buy_q",
    "table_sell_q",
    "table_buy_price",
    "table_sell_price",
    "table_role_q",
)
N_EXPERT = len(EXPERT_FEATURE_NAMES)


def penguin_needs(obs: Observation) -> tuple[np.ndarray, np.ndarray]:
    """(buy need, sell need) in units, as PenguinAgent computes them at the start of its day;
    zero on the side the factory cannot trade."""
    n = obs.n_lines
    stock = obs.inventory_input
    buy = PENGUIN_LINE_SHARE * n - stock - inbound(obs)[:, 0]
    sell = np.minimum(n, PENGUIN_LINE_SHARE * n + stock) - outbound(obs)[:, 0]
    return buy * (obs.can_buy > 0), sell * (obs.can_sell > 0)


def expert_features(
    obs: Observation,
    is_buyer: np.ndarray,
    production: tuple[np.ndarray, np.ndarray] | None = None,
    parts: LimitParts | None = None,
) -> np.ndarray:
    """(N, N_EXPERT) float64 features of N decisions (``is_buyer``: each decision's thread role;
    ``obs``: one row per decision, or a single row that every decision shares, as in a live
    round), clipped to ±FEATURE_CLIP. ``production`` and ``parts``: ``production_plan(obs)`` and
    ``limit_parts(obs)`` when the caller has them."""
    buyer = np.asarray(is_buyer, bool)
    # the columns that do not depend on the role are computed on the rows of obs; a shared row
    # is then given to every decision
    if obs.size not in (1, len(buyer)):
        raise ValueError(f"expert_features: {obs.size} observation rows for {len(buyer)} decisions")
    rows = np.zeros(len(buyer), np.int64) if obs.size != len(buyer) else slice(None)
    nl = np.maximum(obs.n_lines, 1e-9)[:, None]
    pb, ps = penguin_needs(obs)
    ns, nsa = needed_supplies(obs), needed_sales(obs)
    needs = stack_last([pb, ps, ns, nsa]) / nl
    role_need = np.where(buyer, pb, ps) / nl[:, 0]
    plan, _ = production_plan(obs) if production is None else production
    chans = [inbound(obs), outbound(obs), plan, sellable(limit_parts(obs) if parts is None else parts)]
    ch = np.stack(chans, axis=1)  # (B, 4, K)
    by_delta = (ch[:, :, :NEAR_OFFSETS] / nl[:, :, None]).reshape(len(ch), -1)  # channel-major
    far = ch[:, :, NEAR_OFFSETS : HORIZON + 1].sum(2) / nl
    bq, sq = obs.offers_buy_q.sum(1), obs.offers_sell_q.sum(1)
    bp = np.where(bq > 0, obs.offers_buy_value.sum(1) / np.maximum(bq, 1e-9), 0.0)
    sp = np.where(sq > 0, obs.offers_sell_value.sum(1) / np.maximum(sq, 1e-9), 0.0)
    table = stack_last(
        [
            bq / nl[:, 0],
            sq / nl[:, 0],
            bp / np.maximum(obs.trading_price_input, 1e-9),
            sp / np.maximum(obs.trading_price_output, 1e-9),
        ]
    )
    role_q = np.where(buyer, bq, sq) / nl[:, 0]
    out = np.concatenate(
        [
            needs[rows],
            role_need[:, None],
            np.concatenate([by_delta, far, table], axis=1)[rows],
            role_q[:, None],
        ],
        axis=1,
    )
    # NaN -> 0, ±inf -> ±FEATURE_CLIP (the clip takes them there)
    return np.where(np.isnan(out), 0.0, out).clip(-FEATURE_CLIP, FEATURE_CLIP)
