"""L2 goal labels: the seed's "v2" reconstruction, on 4 delivery buckets.

g ∈ R^16 = 4 buckets × [Q_buy, P_buy, Q_sell, P_sell], bucket-major (g[4·b + j]).

Bucket edges (one constant, docs/design.md §6.3). Measured on 1,347 agreements of tracked experts in
12 smoke worlds (scml 0.8.4, horizon 10) on 2026-11-25, lead time δ = delivery day − day:
δ=0: 53.7 %, δ∈[1,2]: 13.2 %, δ∈[3,5]: 16.2 %, δ∈[6,10]: 16.9 % (δ > 10 never occurs: std
deliveries are at most ``horizon`` = 10 days ahead). Re-measured on the 50,283 agreements of all
tracked agents in 100 full-profile worlds (partition full-001, 52-195 days): 52.2 % / 11.0 % /
13.8 % / 22.9 %, and on the 19,534 of the default experts (PenguinAgent + 2025 finalists):
55.0 % / 14.1 % / 11.9 % / 19.0 %; the largest δ seen is 10. The same-day mass is a bucket of its
own; the rest splits into near / mid / far buckets of comparable mass.

v2 = deals + shortfall compensation + active intent + soft bucketing + stable price:
- deals: the quantities the expert agreed that day, by δ;
- shortfall compensation: ``LABEL_SHORTFALL_WEIGHT`` × what it still needed for today
  (scml's needed_supplies / needed_sales at day start, less today's deals), at δ = 0;
- active intent: ``LABEL_INTENT_WEIGHT`` × the last quantity it offered in each thread that
  ended without agreement, at that offer's δ;
- soft bucketing: a quantity at δ is shared between the two nearest bucket centres
  (linear interpolation), so a deal at δ = 2 does not flip the label between buckets;
- stable price: the deals' VWAP in the bucket; else the intent offers' VWAP; else the market
  (trading) price. Prices are labels relative to the trading price of the product (≈ 1), and
  quantities are divided by n_lines (one day of production).
A side the agent cannot trade (first level cannot buy, last level cannot sell) is masked.
"""

from __future__ import annotations

import numpy as np

#: Inclusive δ ranges of the 4 buckets (see the measurement above).
BUCKET_EDGES: tuple[tuple[int, int], ...] = ((0, 0), (1, 2), (3, 5), (6, 10))
BUCKET_CENTRES = np.array([(lo + hi) / 2.0 for lo, hi in BUCKET_EDGES])
N_BUCKETS = len(BUCKET_EDGES)
GOAL_DIM = 4 * N_BUCKETS
LABEL_SHORTFALL_WEIGHT = 0.5
LABEL_INTENT_WEIGHT = 0.25
#: Price labels are clipped to this band around the trading price (ratio).
PRICE_RATIO_RANGE = (0.5, 2.0)
#: Quantity labels are clipped to this many days of production.
QUANTITY_LABEL_MAX = 20.0

GOAL_NAMES = tuple(f"b{b}_{k}" for b in range(N_BUCKETS) for k in ("q_buy", "p_buy", "q_sell", "p_sell"))


def soft_bucket_weights(delta: np.ndarray) -> np.ndarray:
    """(N, 4) weights sharing each δ between the two nearest bucket centres (rows sum to 1)."""
    d = np.clip(np.asarray(delta, dtype=np.float64), BUCKET_CENTRES[0], BUCKET_CENTRES[-1])
    hi = np.clip(np.searchsorted(BUCKET_CENTRES, d, side="right"), 1, N_BUCKETS - 1)
    lo = hi - 1
    frac = (d - BUCKET_CENTRES[lo]) / (BUCKET_CENTRES[hi] - BUCKET_CENTRES[lo])
    w = np.zeros((len(d), N_BUCKETS))
    rows = np.arange(len(d))
    w[rows, lo] += 1.0 - frac
    w[rows, hi] += frac
    return w


_BUCKET_HIS = np.array([hi for _, hi in BUCKET_EDGES])


def hard_bucket(delta: np.ndarray) -> np.ndarray:
    """Bucket index of each δ by the edges (δ beyond the last edge goes to the last bucket)."""
    return np.minimum(np.searchsorted(_BUCKET_HIS, np.asarray(delta), side="left"), N_BUCKETS - 1)


def v2_goals(
    n_rows: int,
    n_lines: np.ndarray,
    trading_in: np.ndarray,
    trading_out: np.ndarray,
    can_buy: np.ndarray,
    can_sell: np.ndarray,
    needed_supplies: np.ndarray,
    needed_sales: np.ndarray,
    deal_row: np.ndarray,
    deal_is_buy: np.ndarray,
    deal_delta: np.ndarray,
    deal_q: np.ndarray,
    deal_p: np.ndarray,
    intent_row: np.ndarray,
    intent_is_buy: np.ndarray,
    intent_delta: np.ndarray,
    intent_q: np.ndarray,
    intent_p: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """v2 labels for ``n_rows`` agent-days from their deals and intents (event arrays whose
    ``*_row`` gives the agent-day). Returns (goal (N, 16), mask (N, 16))."""
    # per side s (0 buy, 1 sell): quantity and value by bucket
    q = np.zeros((n_rows, 2, N_BUCKETS))
    v = np.zeros((n_rows, 2, N_BUCKETS))
    iq = np.zeros((n_rows, 2, N_BUCKETS))
    iv = np.zeros((n_rows, 2, N_BUCKETS))
    today = np.zeros((n_rows, 2))
    side = np.where(np.asarray(deal_is_buy, bool), 0, 1)
    w = soft_bucket_weights(deal_delta) * np.asarray(deal_q, np.float64)[:, None]
    np.add.at(q, (deal_row, side), w)
    np.add.at(v, (deal_row, side), w * np.asarray(deal_p, np.float64)[:, None])
    np.add.at(today, (deal_row, side), np.where(np.asarray(deal_delta) == 0, deal_q, 0.0))
    iside = np.where(np.asarray(intent_is_buy, bool), 0, 1)
    iw = soft_bucket_weights(intent_delta) * np.asarray(intent_q, np.float64)[:, None]
    np.add.at(iq, (intent_row, iside), iw)
    np.add.at(iv, (intent_row, iside), iw * np.asarray(intent_p, np.float64)[:, None])
    short = np.stack(
        [np.maximum(needed_supplies - today[:, 0], 0.0), np.maximum(needed_sales - today[:, 1], 0.0)], axis=1
    )
    qty = q + LABEL_INTENT_WEIGHT * iq
    qty[:, :, 0] += LABEL_SHORTFALL_WEIGHT * short
    market = np.stack([trading_in, trading_out], axis=1)[:, :, None]
    price = np.where(
        q > 1e-9, v / np.maximum(q, 1e-9), np.where(iq > 1e-9, iv / np.maximum(iq, 1e-9), market)
    )
    ratio = np.clip(price / np.maximum(market, 1e-9), *PRICE_RATIO_RANGE)
    qn = np.clip(qty / np.maximum(n_lines, 1e-9)[:, None, None], 0.0, QUANTITY_LABEL_MAX)
    side_ok = np.stack([np.asarray(can_buy, np.float64), np.asarray(can_sell, np.float64)], axis=1)
    goal = np.zeros((n_rows, N_BUCKETS, 4))
    mask = np.zeros((n_rows, N_BUCKETS, 4))
    for s in (0, 1):
        goal[:, :, 2 * s] = qn[:, s] * side_ok[:, s, None]
        goal[:, :, 2 * s + 1] = np.where(side_ok[:, s, None] > 0, ratio[:, s], 1.0)
        mask[:, :, 2 * s] = side_ok[:, s, None]
        mask[:, :, 2 * s + 1] = side_ok[:, s, None]
    return goal.reshape(n_rows, GOAL_DIM), mask.reshape(n_rows, GOAL_DIM)
