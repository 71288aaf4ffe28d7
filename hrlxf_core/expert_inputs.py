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
    """(B, N_EXPERT) float64 features of B decisions (row i of ``obs`` is decision i's
    observation, ``is_buyer`` its thread's role), clipped to ±FEATURE_CLIP. ``production`` and
    ``parts``: ``production_plan(obs)`` and ``limit_parts(obs)`` when the caller has them."""
    nl = np.maximum(obs.n_lines, 1e-9)[:, None]
    buyer = np.asarray(is_buyer, bool)
    pb, ps = penguin_needs(obs)
    ns, nsa = needed_supplies(obs), needed_sales(obs)
    needs = np.stack([pb, ps, ns, nsa, np.where(buyer, pb, ps)], axis=1) / nl
    plan, _ = production_plan(obs) if production is None else production
    chans = [inbound(obs), outbound(obs), plan, sellable(limit_parts(obs) if parts is None else parts)]
    by_delta = [c[:, :NEAR_OFFSETS] / nl for c in chans]
    far = [c[:, NEAR_OFFSETS : HORIZON + 1].sum(1, keepdims=True) / nl for c in chans]
    bq, sq = obs.offers_buy_q.sum(1), obs.offers_sell_q.sum(1)
    bp = np.where(bq > 0, obs.offers_buy_value.sum(1) / np.maximum(bq, 1e-9), 0.0)
    sp = np.where(sq > 0, obs.offers_sell_value.sum(1) / np.maximum(sq, 1e-9), 0.0)
    table = np.stack(
        [
            bq,
            sq,
            bp / np.maximum(obs.trading_price_input, 1e-9),
            sp / np.maximum(obs.trading_price_output, 1e-9),
            np.where(buyer, bq, sq),
        ],
        axis=1,
    )
    table[:, [0, 1, 4]] /= nl
    out = np.concatenate([needs, *by_delta, *far, table], axis=1)
    out = np.nan_to_num(out, nan=0.0, posinf=FEATURE_CLIP, neginf=-FEATURE_CLIP)
    return out.clip(-FEATURE_CLIP, FEATURE_CLIP)
