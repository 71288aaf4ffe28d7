"""L3 inputs and targets from micro-sample columns (numpy, torch-free).

Why a separate torch-free module: the online agent and the dataset code build exactly these
arrays, and must not need torch to do so; one function for both removes train/serve skew
(docs/design.md §7). ``cols`` is any mapping from MICRO_SCHEMA column names to arrays (a dict of numpy
arrays online; a polars DataFrame offline works too: its columns are read with ``to_numpy()``).

Context vector (``L3_CONTEXT_NAMES``), every entry O(1) and clipped to ±FEATURE_CLIP:
- the goal (16) as L2 gives it (quantities in days of production, prices as ratios ≈ 1);
- the L1 baseline: q / n_lines, δ / 10, p / market;
- the thread role one-hot (2), relative time, round / ROUNDS_NORM;
- x_static (12), already normalised by the state builder;
- the role's safe quantity at the baseline δ / (n_lines·INVENTORY_DAYS_NORM) (the same scale as
  L4's ``safe_q_at_delta``: Q_safe can be many days of production) and B_free / (market·n_lines·10)
  (ten days of production at the market price);
- the received offer: has_offer, q / n_lines, δ / 10, p / market (0 when there is none);
- n_lines / N_LINES_NORM and market / PRICE_NORM (the scale the ratios are relative to);
- the quantities the experts decide on (``hrlxf_core.expert_inputs``: today's needs, commitments
  and production plan by δ, the offers on the table), in days of production.

Residual targets are ``[res_q / n_lines, res_p / market]`` clipped to ``RESIDUAL_BOUNDS``; the
inverse, :func:`residual_to_offer`, turns a predicted residual back into an (unclipped) offer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hrlxf_core.constants import N_OFFSETS
from hrlxf_core.expert_inputs import EXPERT_FEATURE_NAMES, N_EXPERT
from hrlxf_core.l3_contract import HIST_FEATURES, HIST_LEN, OP_ACCEPT, OP_END, OP_NAMES, OP_OFFER
from hrlxf_core.labels import GOAL_DIM, GOAL_NAMES
from hrlxf_core.normalization import (
    FEATURE_CLIP,
    INVENTORY_DAYS_NORM,
    N_LINES_NORM,
    PRICE_NORM,
    ROUNDS_NORM,
)
from hrlxf_core.numeric import finite, stack_last
from hrlxf_core.state import N_STATIC, STATIC_NAMES

L3_CONTEXT_NAMES: tuple[str, ...] = (
    *(f"goal_{n}" for n in GOAL_NAMES),
    "base_q",
    "base_delta",
    "base_p",
    "is_buyer",
    "is_seller",
    "relative_time",
    "round",
    *(f"static_{n}" for n in STATIC_NAMES),
    "q_safe_at_base_delta",
    "b_free",
    "has_offer",
    "recv_q",
    "recv_delta",
    "recv_p",
    "n_lines",
    "market_price",
    *(f"expert_{n}" for n in EXPERT_FEATURE_NAMES),
)
N_CONTEXT = len(L3_CONTEXT_NAMES)
#: Micro columns read by :func:`l3_context`.
CONTEXT_COLUMNS: tuple[str, ...] = (
    "goal",
    "base_q",
    "base_delta",
    "base_p",
    "x_role",
    "relative_time",
    "round",
    "x_static",
    "q_safe",
    "b_free",
    "has_offer",
    "recv_q",
    "recv_delta",
    "recv_p",
    "n_lines",
    "market_price",
    "x_expert",
)
#: Bounds of the normalised residual [Δq / n_lines, Δp / market]: the model's mean is
#: soft-bounded to them and targets are clipped to them. Δq can be large (the buy baseline is
#: Q_safe/2, many days of production), Δp is a fraction of the market price.
RESIDUAL_BOUNDS: tuple[float, float] = (40.0, 1.0)
N_OPS = len(OP_NAMES)

__all__ = [
    "CONTEXT_COLUMNS",
    "HIST_FEATURES",
    "HIST_LEN",
    "L3_CONTEXT_NAMES",
    "N_CONTEXT",
    "N_OPS",
    "OP_ACCEPT",
    "OP_END",
    "OP_OFFER",
    "RESIDUAL_BOUNDS",
    "l3_context",
    "l3_model_inputs",
    "l3_targets",
    "op_mask_from",
    "residual_target",
    "residual_to_offer",
]


def _col(cols: Mapping[str, Any] | Any, name: str) -> np.ndarray:
    x = cols[name]
    if isinstance(x, np.ndarray):  # the agent's columns
        return x
    if hasattr(x, "to_numpy"):  # polars / pandas series (Array columns come back 2-D)
        x = x.to_numpy()
    return np.asarray(x)


def _f(cols: Mapping[str, Any] | Any, name: str, n: int | None = None) -> np.ndarray:
    x = _col(cols, name).astype(np.float64, copy=False)
    return x if n is None else x.reshape(len(x), n)


def l3_context(cols: Mapping[str, Any] | Any) -> np.ndarray:
    """(N, N_CONTEXT) float32 context vectors (names in ``L3_CONTEXT_NAMES``), see module doc."""
    nl = np.maximum(_f(cols, "n_lines"), 1e-9)
    market = np.maximum(_f(cols, "market_price"), 1e-9)
    n = len(nl)
    base_delta = _col(cols, "base_delta").astype(np.int64)
    q_safe = _f(cols, "q_safe", N_OFFSETS)
    safe = q_safe[np.arange(n), base_delta.clip(0, N_OFFSETS - 1)]
    has = _col(cols, "has_offer").astype(bool)
    parts = [  # in L3_CONTEXT_NAMES order; runs of one-value columns stacked at once
        _f(cols, "goal", GOAL_DIM),
        stack_last([_f(cols, "base_q") / nl, base_delta / INVENTORY_DAYS_NORM, _f(cols, "base_p") / market]),
        _f(cols, "x_role", 2),
        stack_last([_f(cols, "relative_time"), _f(cols, "round") / ROUNDS_NORM]),
        _f(cols, "x_static", N_STATIC),
        stack_last(
            [
                safe / (nl * INVENTORY_DAYS_NORM),
                _f(cols, "b_free") / (market * nl * INVENTORY_DAYS_NORM),
                has.astype(np.float64),
                np.where(has, _f(cols, "recv_q") / nl, 0.0),
                np.where(has, _f(cols, "recv_delta") / INVENTORY_DAYS_NORM, 0.0),
                np.where(has, _f(cols, "recv_p") / market, 0.0),
                nl / N_LINES_NORM,
                market / PRICE_NORM,
            ]
        ),
        _f(cols, "x_expert", N_EXPERT),
    ]
    ctx = np.concatenate(parts, axis=1)
    ctx = np.where(np.isnan(ctx), 0.0, ctx).clip(-FEATURE_CLIP, FEATURE_CLIP)  # ±inf clip to the bound
    return ctx.astype(np.float32)


def op_mask_from(has_offer: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """(N, 3) bool feasible ops [ACCEPT, OFFER, END].

    ACCEPT needs an offer on the table; OFFER needs at least one δ in the L1 time mask
    (``feasible`` is ``base_feasible`` (N,) or the time mask itself (N, 41)); END is always
    possible."""
    feasible = np.asarray(feasible, bool)
    if feasible.ndim == 2:
        feasible = feasible.any(1)
    has = np.asarray(has_offer, bool)
    out = np.ones((len(has), N_OPS), dtype=bool)
    out[:, OP_ACCEPT] = has
    out[:, OP_OFFER] = feasible
    return out


def l3_model_inputs(cols: Mapping[str, Any] | Any) -> dict[str, np.ndarray]:
    """Everything :meth:`L3Net.forward` takes, as numpy: hist (N, 16, 4) float32, hist_len (N,)
    int64, context (N, C) float32, time_mask (N, 41) bool, op_mask (N, 3) bool."""
    hist = _col(cols, "hist").astype(np.float32)
    hist = hist.reshape(len(hist), HIST_LEN, HIST_FEATURES)
    tm = _col(cols, "time_mask").astype(bool)
    tm = tm.reshape(len(tm), N_OFFSETS)
    return {
        "hist": finite(hist).clip(-FEATURE_CLIP, FEATURE_CLIP),
        "hist_len": _col(cols, "hist_len").astype(np.int64).clip(0, HIST_LEN),
        "context": l3_context(cols),
        "time_mask": tm,
        "op_mask": op_mask_from(_col(cols, "has_offer"), tm),
    }


def residual_target(
    res_q: np.ndarray, res_p: np.ndarray, n_lines: np.ndarray, market: np.ndarray
) -> np.ndarray:
    """(N, 2) float32 normalised residual [res_q / n_lines, res_p / market], clipped to RESIDUAL_BOUNDS."""
    rq = np.asarray(res_q, np.float64) / np.maximum(np.asarray(n_lines, np.float64), 1e-9)
    rp = np.asarray(res_p, np.float64) / np.maximum(np.asarray(market, np.float64), 1e-9)
    bq, bp = RESIDUAL_BOUNDS
    out = np.stack([np.clip(finite(rq), -bq, bq), np.clip(finite(rp), -bp, bp)], axis=1)
    return out.astype(np.float32)


def residual_to_offer(
    residual: np.ndarray, base_q: np.ndarray, base_p: np.ndarray, n_lines: np.ndarray, market: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(q, p) = baseline + de-normalised residual (unclipped: pass them to L1's clip_action)."""
    r = np.asarray(residual, np.float64).reshape(-1, 2)
    q = np.asarray(base_q, np.float64) + r[:, 0] * np.asarray(n_lines, np.float64)
    p = np.asarray(base_p, np.float64) + r[:, 1] * np.asarray(market, np.float64)
    return q, p


def l3_targets(cols: Mapping[str, Any] | Any) -> dict[str, np.ndarray]:
    """Labels for :func:`hrlxf_core.models.l3.l3_bc_loss`: op_label (N,) int64, has_counter (N,)
    bool, residual_target (N, 2) float32, delta_label (N,) int64 (−1 when there is none)."""
    return {
        "op_label": _col(cols, "op_label").astype(np.int64),
        "has_counter": _col(cols, "has_counter").astype(bool),
        "residual_target": residual_target(
            _col(cols, "res_q"), _col(cols, "res_p"), _col(cols, "n_lines"), _col(cols, "market_price")
        ),
        "delta_label": _col(cols, "delta_label").astype(np.int64),
    }
