"""L1: safety limits, the binding baseline, clip() and dynamic reservation (DESIGN §6.2).

The baseline is the one the user confirmed (seed §1.3, binding): buy
``q = min(Q_safe[δ]/2, B_free/price)``, ``p = 0.95·market``; sell ``q = output inventory/2``,
``p = 1.05·market``; market = trading price of the product traded. The same functions compute
it online (agent) and offline (residual labels), on batches.

Definitions chosen here (the seed leaves them open), each conservative:
- ``Q_safe[δ]`` (buy) = n_lines·(days left from today+δ to the end) − input inventory − every
  committed input (any δ): input we could not turn into output before the game ends is waste.
- sell-side safe quantity at δ = the smallest, over δ'' ≥ δ, of output inventory + output
  produced before δ'' from committed inputs only − committed outbound up to δ''.
- ``B_free`` = balance − payables (negotiated and today's exogenous) − reserve, with
  reserve = production cost of every committed input (money already spoken for).
- The baseline delivery offset is the earliest δ in the time mask.
- clip() also counts the production cost of a purchase against the budget, so that a clipped
  purchase keeps ``B_free ≥ 0`` after its own reservation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrlxf_core.numeric import finite
from hrlxf_core.state import K, Observation, inbound, offsets_in_game, outbound, production_plan

BUY_PRICE_FACTOR = 0.95
SELL_PRICE_FACTOR = 1.05


@dataclass
class L1Limits:
    q_safe_buy: np.ndarray  # (B, K)
    q_safe_sell: np.ndarray  # (B, K)
    b_free: np.ndarray  # (B,)


@dataclass
class Threads:
    """A batch of negotiation threads, row-aligned with an Observation batch (one obs per thread)."""

    is_buyer: np.ndarray  # (N,) bool
    q_min: np.ndarray
    q_max: np.ndarray
    t_min: np.ndarray  # absolute days
    t_max: np.ndarray
    p_min: np.ndarray
    p_max: np.ndarray

    def take(self, idx: np.ndarray) -> Threads:
        return Threads(**{k: v[idx] for k, v in self.__dict__.items()})


def limit_parts(obs: Observation) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The unclamped quantities behind the limits: (raw buy room (B, K), output slack (B, K),
    in-game mask (B, K), B_free (B,)). Reservations move them linearly (see ReservedLimits)."""
    in_game = offsets_in_game(obs)
    days_left = np.maximum(obs.n_steps[:, None] - obs.day[:, None] - np.arange(K)[None, :], 0)
    committed_in = obs.inventory_input + inbound(obs).sum(1)
    raw_buy = obs.n_lines[:, None] * days_left - committed_in[:, None]
    plan, _ = production_plan(obs)
    produced_before = np.concatenate([np.zeros((obs.size, 1)), np.cumsum(plan, axis=1)[:, :-1]], axis=1)
    slack = obs.inventory_output[:, None] + produced_before - np.cumsum(outbound(obs), axis=1)
    reserve = obs.production_cost * committed_in
    b_free = obs.balance - obs.payables.sum(1) - obs.exo_input_value - reserve
    return raw_buy, slack, in_game, b_free


def _limits_from_parts(
    raw_buy: np.ndarray, slack: np.ndarray, in_game: np.ndarray, b_free: np.ndarray
) -> L1Limits:
    q_buy = np.maximum(raw_buy, 0.0) * in_game
    future_min = np.minimum.accumulate(slack[:, ::-1], axis=1)[:, ::-1]
    q_sell = np.maximum(future_min, 0.0) * in_game
    return L1Limits(q_safe_buy=q_buy, q_safe_sell=q_sell, b_free=np.asarray(b_free, dtype=np.float64).copy())


def l1_limits(obs: Observation) -> L1Limits:
    return _limits_from_parts(*limit_parts(obs))


class ReservedLimits:
    """The limits of one observation under a growing set of reservations, updated in O(K) per
    reservation (the agent plans a round's threads one after the other). Equal to
    ``l1_limits`` of the observation after the same ``reserve`` calls (property-tested): a
    purchase of q at price p lowers the buy room by q everywhere and B_free by q·(p + production
    cost) and leaves the sell side unchanged; a sale of q at δ lowers the output slack from δ on."""

    def __init__(self, obs: Observation, row: int = 0) -> None:
        raw_buy, slack, in_game, b_free = limit_parts(obs.take([row]))
        self.raw_buy, self.slack, self.in_game, self.b_free = raw_buy, slack, in_game, b_free
        self.cost = float(obs.production_cost[row])

    def limits(self) -> L1Limits:
        return _limits_from_parts(self.raw_buy, self.slack, self.in_game, self.b_free)

    def reserve(self, is_buyer: bool, q: float, delta: int, p: float) -> None:
        if q <= 0:
            return
        if is_buyer:
            self.raw_buy = self.raw_buy - q
            self.b_free = self.b_free - q * (p + self.cost)
        else:
            self.slack = self.slack.copy()
            self.slack[:, delta:] -= q


def role_safe(limits: L1Limits, is_buyer: np.ndarray) -> np.ndarray:
    """(N, K) safe quantity of each thread's role."""
    return np.where(np.asarray(is_buyer, bool)[:, None], limits.q_safe_buy, limits.q_safe_sell)


def time_mask(obs: Observation, limits: L1Limits, threads: Threads) -> np.ndarray:
    """(N, K) bool: δ where the role's safe quantity ≥ 1 and today + δ is in the thread's time range."""
    t = obs.day[:, None] + np.arange(K)[None, :]
    in_range = (t >= threads.t_min[:, None]) & (t <= threads.t_max[:, None])
    return in_range & (role_safe(limits, threads.is_buyer) >= 1.0)


def market_price(obs: Observation, is_buyer: np.ndarray) -> np.ndarray:
    return np.where(np.asarray(is_buyer, bool), obs.trading_price_input, obs.trading_price_output)


@dataclass
class Baseline:
    q: np.ndarray  # (N,) float, may be 0 when nothing is feasible
    delta: np.ndarray  # (N,) int
    p: np.ndarray  # (N,) float
    feasible: np.ndarray  # (N,) bool: the mask has at least one δ


def baseline(
    obs: Observation, limits: L1Limits, threads: Threads, mask: np.ndarray | None = None
) -> Baseline:
    """The binding L1 baseline for each thread (unclipped: residual labels are taken against it)."""
    mask = time_mask(obs, limits, threads) if mask is None else mask
    feasible = mask.any(1)
    delta = np.where(feasible, mask.argmax(1), 0)
    is_buyer = np.asarray(threads.is_buyer, bool)
    market = market_price(obs, is_buyer)
    rows = np.arange(len(delta))
    q_safe = limits.q_safe_buy[rows, delta]
    p_buy = BUY_PRICE_FACTOR * market
    q_buy = np.minimum(q_safe / 2.0, np.maximum(limits.b_free, 0.0) / np.maximum(p_buy, 1e-9))
    q_sell = obs.inventory_output / 2.0
    q = np.where(is_buyer, q_buy, q_sell)
    p = np.where(is_buyer, p_buy, SELL_PRICE_FACTOR * market)
    return Baseline(q=np.where(feasible, q, 0.0), delta=delta.astype(np.int64), p=p, feasible=feasible)


@dataclass
class Action:
    q: np.ndarray  # (N,) int, 0 when infeasible
    delta: np.ndarray  # (N,) int
    p: np.ndarray  # (N,) int
    feasible: np.ndarray  # (N,) bool


def _nearest_masked(delta: np.ndarray, mask: np.ndarray) -> np.ndarray:
    dist = np.abs(np.arange(K)[None, :] - delta[:, None]).astype(np.float64)
    dist = np.where(mask, dist + np.arange(K)[None, :] * 1e-6, np.inf)  # ties -> earlier δ
    return dist.argmin(1)


def clip_action(
    obs: Observation,
    limits: L1Limits,
    threads: Threads,
    q: np.ndarray,
    delta: np.ndarray,
    p: np.ndarray,
    mask: np.ndarray | None = None,
) -> Action:
    """Make proposed actions safe: δ into the mask, price into the thread's range, quantity to
    the role's safe quantity, the budget and the thread's quantity range (all integers)."""
    mask = time_mask(obs, limits, threads) if mask is None else mask
    is_buyer = np.asarray(threads.is_buyer, bool)
    d = np.clip(np.rint(finite(np.asarray(delta, np.float64))), 0, K - 1).astype(np.int64)
    has = mask.any(1)
    d = np.where(has, _nearest_masked(d, mask), d)
    price = np.clip(np.rint(finite(np.asarray(p, np.float64), nan=0.0)), threads.p_min, threads.p_max)
    price = np.maximum(price, 1.0)
    rows = np.arange(len(d))
    safe = role_safe(limits, is_buyer)[rows, d]
    budget_q = np.maximum(limits.b_free, 0.0) / (price + np.maximum(obs.production_cost, 0.0))
    cap = np.where(is_buyer, np.minimum(safe, budget_q), safe)
    cap = np.minimum(cap, threads.q_max)
    qq = np.floor(np.minimum(np.maximum(finite(np.asarray(q, np.float64)), 0.0), cap) + 1e-9)
    ok = has & (qq >= np.maximum(threads.q_min, 1))
    return Action(q=np.where(ok, qq, 0).astype(np.int64), delta=d, p=price.astype(np.int64), feasible=ok)


def reserve(obs: Observation, row: int, is_buyer: bool, q: float, delta: int, p: float) -> None:
    """Dynamic reservation: book a planned action as a tentative commitment of ``obs[row]``,
    so the next thread's limits (recomputed from ``obs``) see less budget and safe quantity.

    A tentative purchase must not back a sale: its partner may still refuse it, and the sell-side
    safe quantity counts committed inputs only. So a reserved purchase also books the extra output
    it would let the lines make on day δ as a phantom outbound on day δ + 1 (when that output could
    first leave): Q_safe and B_free shrink, the sell-side safe quantity is exactly unchanged. (The
    phantom units are visible in ``obs.sales``: build features from the unreserved observation.)"""
    if q <= 0:
        return
    if is_buyer:
        plan_before, _ = production_plan(obs.take([row]))
        obs.supplies[row, delta] += q
        obs.payables[row, delta] += q * p
        plan_after, _ = production_plan(obs.take([row]))
        obs.sales[row, 1:] += (plan_after - plan_before)[0, :-1]
    else:
        obs.sales[row, delta] += q
        obs.receivables[row, delta] += q * p
