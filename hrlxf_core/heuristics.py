"""Rule-based L2 / L3 / L4 (numpy, torch-free): the agent's ``heuristic`` mode and L4's teacher.

Why rules: they give the agent a sensible non-neural mode to compare against, L3 a goal to be
conditioned on before L2 is trained, and L4 a teacher (seed §5.3: expert logs hold no α, so a
heuristic L4 is distilled first). Every rule reads only features that the online agent and the
offline pipeline both build (state, L1 limits, l4_features), so they are identical in both.

L2 goal (:func:`heuristic_l2_goal`), per bucket of ``labels.BUCKET_EDGES``, in the label's units
(quantity in days of production n_lines, price as a ratio to the trading price):
- buy, δ = 0 bucket: scml's ``needed_supplies`` (what today's sales still lack);
  later buckets: ``BUY_FILL[b]`` × the free line capacity in the bucket (lines the committed
  inputs leave idle), capped by Q_safe at the bucket's first δ and, cumulatively, by B_free at
  the market price;
- sell, δ = 0 bucket: max(``needed_sales``, ``SELL_FRACTION`` × the sell-side safe quantity at
  δ = 0); later buckets: ``SELL_FRACTION`` × what the sell-side safe quantity grows by inside the
  bucket (output that committed inputs will produce), so nothing is promised twice;
- prices: at market (ratio 1) in the same-day bucket, where a deal must happen now; else L1's
  baseline factors (buy 0.95, sell 1.05) for a margin on trades that can wait;
- a side the agent cannot trade gets quantity 0 and price 1 (as the labels).

L3 residual (:func:`heuristic_l3_residual`): time-dependent concession. With an offer on the
table, move from the baseline toward the partner's price by ``relative_time**CONCEDE_EXPONENT``
(Boulware: hold early, concede late), and toward its quantity by ``QUANTITY_MATCH`` ×
relative_time. Without an offer, residual 0 (= the baseline).

L4 teacher (:func:`heuristic_l4_alpha`): α = softmax(score / ``L4_TEMPERATURE``) over threads,
score = Σ weight × term, terms from ``l4_features.THREAD_FEATURE_NAMES``:
- urgency: relative time of the negotiation (a thread about to time out is served first);
- goal fit: −tanh|goal_q_gap| (the partner's offer matches what the goal still wants);
- price: how much better than market the partner's offer is for our role (buyer: below
  market; seller: above), scaled up for buyers when cash is short (balance ratio < 1);
- safe room: tanh(safe quantity at the thread's δ in days of production): room to trade;
- has_offer: a thread with an offer on the table can close now.
It is a per-thread score followed by a softmax, so it is permutation equivariant, sums to 1 and
is deterministic.
"""

from __future__ import annotations

import numpy as np

from hrlxf_core.l1_safety import BUY_PRICE_FACTOR, SELL_PRICE_FACTOR, l1_limits
from hrlxf_core.l4_features import N_GLOBAL, N_THREAD, THREAD_FEATURE_NAMES
from hrlxf_core.labels import BUCKET_EDGES, GOAL_DIM, N_BUCKETS, PRICE_RATIO_RANGE, QUANTITY_LABEL_MAX
from hrlxf_core.normalization import INVENTORY_DAYS_NORM
from hrlxf_core.state import (
    STATIC_NAMES,
    Observation,
    needed_sales,
    needed_supplies,
    offsets_in_game,
    production_plan,
)

# --- L2 rule constants ---------------------------------------------------------------------------
#: Fraction of the free line capacity of each bucket to buy inputs for (bucket 0 uses needed_supplies);
#: small and falling with δ: inputs bought ahead without matching sales are a risk (tracked experts
#: buy almost only same-day in the smoke worlds: v2 label means ≈ 0 beyond bucket 0).
BUY_FILL: tuple[float, ...] = (0.0, 0.25, 0.1, 0.05)
#: Fraction of the producible output to offer for sale.
SELL_FRACTION = 0.5
#: Price ratios: same-day bucket at market, later buckets at the L1 baseline factors.
SAME_DAY_PRICE = 1.0

# --- L3 rule constants ---------------------------------------------------------------------------
CONCEDE_EXPONENT = 2.0
QUANTITY_MATCH = 0.5

# --- L4 teacher constants ------------------------------------------------------------------------
#: Softmax temperature: score differences of a few units (typical real features) give a graded,
#: not one-hot, teacher, so distillation also learns the order of the lesser threads.
L4_TEMPERATURE = 1.0
L4_WEIGHTS: dict[str, float] = {
    "urgency": 1.0,
    "goal_fit": 1.0,
    "price": 5.0,
    "safe_room": 1.0,
    "has_offer": 0.5,
}
_F = {n: i for i, n in enumerate(THREAD_FEATURE_NAMES)}
_BALANCE = STATIC_NAMES.index("balance_ratio")

assert len(BUY_FILL) == N_BUCKETS


def heuristic_l2_goal(obs: Observation) -> np.ndarray:
    """(B, 16) rule-based goal (see the module doc), bounded like the v2 labels."""
    n = obs.size
    nl = np.maximum(obs.n_lines, 1e-9)
    limits = l1_limits(obs)
    plan, _ = production_plan(obs)
    free = np.maximum(obs.n_lines[:, None] * offsets_in_game(obs) - plan, 0.0)  # idle lines by δ
    avail = limits.sellable  # sellable stock by δ (days are independent in std)
    budget = np.maximum(limits.b_free, 0.0) / np.maximum(obs.trading_price_input, 1e-9)
    q_buy = np.zeros((n, N_BUCKETS))
    q_sell = np.zeros((n, N_BUCKETS))
    spent = np.zeros(n)
    for b, (lo, hi) in enumerate(BUCKET_EDGES):
        want = np.maximum(needed_supplies(obs), 0.0) if b == 0 else BUY_FILL[b] * free[:, lo : hi + 1].sum(1)
        want = np.minimum(want, limits.q_safe_buy[:, lo])
        want = np.minimum(want, np.maximum(budget - spent, 0.0))
        spent += want
        q_buy[:, b] = want
        if b == 0:
            q_sell[:, b] = np.maximum(
                np.maximum(needed_sales(obs), 0.0), SELL_FRACTION * avail[:, lo : hi + 1].sum(1)
            )
        else:
            q_sell[:, b] = SELL_FRACTION * avail[:, lo : hi + 1].sum(1)
    goal = np.zeros((n, N_BUCKETS, 4))
    can = (obs.can_buy > 0, obs.can_sell > 0)
    for s, (q, factor) in enumerate(((q_buy, BUY_PRICE_FACTOR), (q_sell, SELL_PRICE_FACTOR))):
        qn = np.clip(q / nl[:, None], 0.0, QUANTITY_LABEL_MAX)
        price = np.full((n, N_BUCKETS), factor)
        price[:, 0] = SAME_DAY_PRICE
        goal[:, :, 2 * s] = np.where(can[s][:, None], qn, 0.0)
        goal[:, :, 2 * s + 1] = np.where(can[s][:, None], np.clip(price, *PRICE_RATIO_RANGE), 1.0)
    return goal.reshape(n, GOAL_DIM)


def heuristic_l3_residual(
    base_q: np.ndarray,
    base_p: np.ndarray,
    has_offer: np.ndarray,
    recv_q: np.ndarray,
    recv_p: np.ndarray,
    relative_time: np.ndarray,
    n_lines: np.ndarray,
    market: np.ndarray,
) -> np.ndarray:
    """(N, 2) normalised residual [Δq / n_lines, Δp / market] (the L3 head's units; turn it into
    an offer with ``l3_inputs.residual_to_offer`` and clip it with L1)."""
    has = np.asarray(has_offer, bool)
    t = np.clip(np.asarray(relative_time, np.float64), 0.0, 1.0)
    dq = QUANTITY_MATCH * t * (np.nan_to_num(np.asarray(recv_q, np.float64)) - base_q)
    dp = t**CONCEDE_EXPONENT * (np.nan_to_num(np.asarray(recv_p, np.float64)) - base_p)
    nl = np.maximum(np.asarray(n_lines, np.float64), 1e-9)
    mk = np.maximum(np.asarray(market, np.float64), 1e-9)
    return np.stack([np.where(has, dq / nl, 0.0), np.where(has, dp / mk, 0.0)], axis=1)


def l4_teacher_scores(thread_feats: np.ndarray, global_feats: np.ndarray) -> np.ndarray:
    """(..., T) teacher scores; ``thread_feats`` (..., T, N_THREAD), ``global_feats`` (..., N_GLOBAL)."""
    f = np.asarray(thread_feats, np.float64)
    g = np.asarray(global_feats, np.float64)
    if f.shape[-1] != N_THREAD or g.shape[-1] != N_GLOBAL:
        raise ValueError(f"expected (..., T, {N_THREAD}) and (..., {N_GLOBAL}), got {f.shape} and {g.shape}")
    has = f[..., _F["has_offer"]]
    is_buyer = f[..., _F["is_buyer"]]
    ratio = f[..., _F["offer_price"]]  # partner's price / market (0 without an offer)
    better = np.where(is_buyer > 0.5, 1.0 - ratio, ratio - 1.0) * has
    cash_short = np.clip(1.0 - g[..., _BALANCE], 0.0, 1.0)[..., None]
    terms = {
        "urgency": np.clip(f[..., _F["relative_time"]], 0.0, 1.0),
        "goal_fit": -np.tanh(np.abs(f[..., _F["goal_q_gap"]])),
        "price": np.clip(better, -1.0, 1.0) * (1.0 + cash_short * is_buyer),
        "safe_room": np.tanh(np.maximum(f[..., _F["safe_q_at_delta"]], 0.0) * INVENTORY_DAYS_NORM),
        "has_offer": has,
    }
    return sum(L4_WEIGHTS[k] * v for k, v in terms.items())


def heuristic_l4_alpha_batch(
    thread_feats: np.ndarray, thread_valid: np.ndarray, global_feats: np.ndarray
) -> np.ndarray:
    """(B, T) teacher α over the valid threads of each row (0 on padding; all-padding rows 0);
    ``thread_feats`` (B, T, N_THREAD), ``global_feats`` (B, N_GLOBAL)."""
    valid = np.asarray(thread_valid, bool)
    s = l4_teacher_scores(thread_feats, global_feats)
    z = np.where(valid, s / L4_TEMPERATURE, -np.inf)
    zmax = np.max(np.where(valid, z, -np.inf), axis=-1, keepdims=True)
    zmax = np.where(np.isfinite(zmax), zmax, 0.0)
    e = np.where(valid, np.exp(z - zmax), 0.0)
    return e / np.maximum(e.sum(-1, keepdims=True), 1e-300)


def heuristic_l4_alpha(thread_feats: np.ndarray, global_feats: np.ndarray) -> np.ndarray:
    """(T,) teacher α of one round's T live threads (``thread_feats`` (T, N_THREAD),
    ``global_feats`` (N_GLOBAL,)); sums to 1 (empty input gives an empty array)."""
    f = np.asarray(thread_feats, np.float64).reshape(-1, N_THREAD)
    if len(f) == 0:
        return np.zeros(0)
    return heuristic_l4_alpha_batch(f[None], np.ones((1, len(f)), bool), np.asarray(global_feats)[None])[0]
