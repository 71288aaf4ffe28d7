"""L1: safety limits, the binding baseline, clip() and dynamic reservation (docs/design.md §6.2).

The baseline is the one the user confirmed (seed §1.3, binding): buy
``q = min(Q_safe[δ]/2, B_free/price)``, ``p = 0.95·market``; sell ``q = inventory/2``,
``p = 1.05·market``; market = trading price of the product traded. The same functions compute
it online (agent, ``<Expert>+L1`` filter) and offline (residual labels, expert clip rate), on
batches.

**How SCML std produces** (``hrlxf_core.state.production_plan``, verified against the scml
0.8.4 source and 52,168 recorded agent-days): output is made on its delivery day from the input
stock plus that day's inputs, within the lines, and only as much as is sold that day. A factory
holds no output inventory, and the engine never takes consumed inputs out of the input stock
(the stock never falls). So the stock S0 held now is there on every later day: S(δ) ≥ S0.

**"Inventory" of the sell baseline = sellable stock.** Std keeps no output inventory (read
literally, the baseline would always sell 0), so inventory means what the factory can deliver at
the baseline δ: ``sellable(δ) = min(S0 + in(δ), n_lines) − out(δ)`` (input stock plus the inputs
committed to arrive that day, turned into output within the lines, minus what is already sold for
that day), floored at 0. Because S(δ) ≥ S0, a sale within ``sellable(δ)`` is always made, whatever
is sold on other days: the days are independent, which keeps reservation O(K).

**Sell side: bounded exposure, not zero exposure.** The experts sell ahead of their inputs
(counter-offers to several buyers, sales whose inputs they buy later): with zero exposure L1
would forbid 10-25 % of their sales. Let ``e(δ) = max(0, out(δ) − min(S0 + in(δ), n_lines))``
be the units that would be short on day δ if no more input arrived (an upper bound of the
engine's shortfall, since S(δ) ≥ S0), ``E = Σ_δ e(δ)`` over the days of the game, and
``pen = shortfall_penalty · trading price of the output`` today's worst-case penalty per unit
short (penalties_scale "trading"). The rule:

- (R1) no day is exposed by more than ``SELL_ALLOWANCE_LINES[level] · n_lines`` units;
- (R2) ``B_free = balance − payables − production cost of committed inputs − pen · E``, and no
  action may take ``B_free`` below 0.

Invariant (property-tested on random states with reservations): after any sequence of clipped,
reserved actions from a state that satisfied it, (R1) holds on every day a sale was added and
``B_free ≥ 0``: the factory can pay every committed purchase and its production **and** the
worst-case shortfall penalty of every unbacked unit at once, i.e. no bankruptcy even if the
whole allowed exposure ends in shortfall. The allowance was derived from the experts' logs
(``hrlxf_core.l1_exposure``, figures in docs/l1.md).

Buy side (unchanged guarantees): ``Q_safe[δ]`` = n_lines·(days left from today+δ to the end) −
input stock − every committed input; a purchase is clipped to Q_safe and to ``B_free`` (price
plus production cost), so it never buys input the lines cannot use before the game ends and
never takes ``B_free`` below 0. The baseline delivery offset is the earliest δ in the time mask.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from hrlxf_core.numeric import finite
from hrlxf_core.state import K, Observation, inbound, offsets_in_game, outbound, production_capacity

BUY_PRICE_FACTOR = 0.95
SELL_PRICE_FACTOR = 1.05

#: (R1) Units a day may be sold beyond its sellable stock, in lines, by the level of the seller.
#: Derived from the experts' logs (``python -m hrlxf_core.l1_exposure``, docs/l1.md): the smallest
#: allowance, in steps of 0.25 line, under which at most 6 % of the experts' sell actions at that
#: level would be refused (100 full-length worlds: first level 5.3 % at 0.5, middle 5.9 % at 0.25).
SELL_ALLOWANCE_LINES: dict[str, float] = {"first": 0.5, "middle": 0.25}


@dataclass
class L1Limits:
    q_safe_buy: np.ndarray  # (B, K)
    q_safe_sell: np.ndarray  # (B, K)
    b_free: np.ndarray  # (B,)
    sellable: np.ndarray  # (B, K) sellable stock: the sell baseline's "inventory"

    def take(self, idx: np.ndarray) -> L1Limits:
        return L1Limits(**{k: v[idx] for k, v in self.__dict__.items()})


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


def sell_allowance(obs: Observation) -> np.ndarray:
    """(B,) units a day may be exposed (R1): the level's allowance times n_lines (0 at the last
    level, which cannot sell)."""
    first = obs.can_buy <= 0
    lines = np.where(first, SELL_ALLOWANCE_LINES["first"], SELL_ALLOWANCE_LINES["middle"])
    return np.where(obs.can_sell > 0, lines * obs.n_lines, 0.0)


def penalty_per_unit(obs: Observation) -> np.ndarray:
    """(B,) today's shortfall penalty of one unit short (scml ``penalties_scale='trading'``)."""
    return np.maximum(obs.shortfall_penalty, 0.0) * np.maximum(obs.trading_price_output, 0.0)


@dataclass
class LimitParts:
    """The unclamped quantities behind the limits, in the form reservations move linearly:
    a purchase lowers ``raw_buy`` and ``b_money``; a sale raises ``out`` at its δ."""

    raw_buy: np.ndarray  # (B, K) n_lines·days left − every committed input
    cap: np.ndarray  # (B, K) min(S0 + in(δ), n_lines) on in-game days, else 0
    out: np.ndarray  # (B, K) outbound committed at δ
    in_game: np.ndarray  # (B, K) 1.0 on the days of the game, else 0.0 (a multiplier)
    b_money: np.ndarray  # (B,) balance − payables − production cost of committed inputs
    pen: np.ndarray  # (B,) penalty per unit short
    allowance: np.ndarray  # (B,) units a day may be exposed

    def take(self, idx) -> LimitParts:
        return LimitParts(**{k: v[idx] for k, v in self.__dict__.items()})


def limit_parts(obs: Observation) -> LimitParts:
    in_game = offsets_in_game(obs)
    days_left = np.maximum(obs.n_steps[:, None] - obs.day[:, None] - np.arange(K)[None, :], 0)
    inb = inbound(obs)
    committed_in = obs.inventory_input + inb.sum(1)
    raw_buy = obs.n_lines[:, None] * days_left - committed_in[:, None]
    cap = np.minimum(obs.inventory_input[:, None] + inb, production_capacity(obs))
    reserve = obs.production_cost * committed_in
    b_money = obs.balance - obs.payables.sum(1) - obs.exo_input_value - reserve
    return LimitParts(
        raw_buy=raw_buy,
        cap=cap,
        out=outbound(obs),
        in_game=in_game.astype(np.float64),  # a multiplier: no bool cast in every product
        b_money=np.asarray(b_money, np.float64),
        pen=penalty_per_unit(obs),
        allowance=sell_allowance(obs),
    )


def exposure(parts: LimitParts) -> np.ndarray:
    """(B, K) e(δ): units short on day δ if no more input arrived (0 outside the game)."""
    return np.maximum(parts.out - parts.cap, 0.0) * parts.in_game


def sellable(parts: LimitParts) -> np.ndarray:
    """(B, K) sellable stock: what can still be sold for δ and is certain to be made."""
    return np.maximum(parts.cap - parts.out, 0.0) * parts.in_game


def q_safe_buy(parts: LimitParts) -> np.ndarray:
    """(B, K) Q_safe of the buy side (a sale does not move it)."""
    return np.maximum(parts.raw_buy, 0.0) * parts.in_game


def sale_terms(parts: LimitParts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(E = Σ_δ e(δ), room = cap − out, sellable): the terms of the limits that only the
    outbound moves (a purchase does not)."""
    return exposure(parts).sum(1), parts.cap - parts.out, sellable(parts)


def limits_from_terms(
    parts: LimitParts, terms: tuple[np.ndarray, np.ndarray, np.ndarray], q_buy: np.ndarray
) -> L1Limits:
    """The limits from ``sale_terms(parts)`` and ``q_safe_buy(parts)``."""
    e_sum, room, sell = terms
    b_free = parts.b_money - parts.pen * e_sum
    money_units = np.where(
        parts.pen > 0, np.maximum(b_free, 0.0) / np.maximum(parts.pen, 1e-12), np.inf
    )  # exposure B_free can still pay the worst-case penalty of
    q_sell = np.minimum(room + parts.allowance[:, None], np.maximum(room, 0.0) + money_units[:, None])
    q_sell = np.maximum(q_sell, 0.0) * parts.in_game
    return L1Limits(
        q_safe_buy=q_buy,
        q_safe_sell=q_sell,
        b_free=np.asarray(b_free, np.float64),  # a new array (b_money minus the penalty)
        sellable=sell,
    )


def limits_from_parts(parts: LimitParts) -> L1Limits:
    return limits_from_terms(parts, sale_terms(parts), q_safe_buy(parts))


def l1_limits(obs: Observation) -> L1Limits:
    return limits_from_parts(limit_parts(obs))


class ReservedLimits:
    """The limits of one observation under a growing set of reservations, updated in O(K) per
    reservation (the agent plans a round's threads one after the other). Equal to
    ``l1_limits`` of the observation after the same ``reserve`` calls (property-tested): a
    purchase of q at price p lowers the buy room by q everywhere and the money by q·(p +
    production cost) and leaves the sell side's stock unchanged (a tentative purchase must not
    back a sale); a sale of q at δ adds q to that day's outbound. The limits are computed when
    asked for, from the terms the reservations since the last time did not move (a purchase
    leaves ``sale_terms``, a sale ``q_safe_buy``): the very functions of ``limits_from_parts``."""

    def __init__(self, obs: Observation, row: int = 0, parts: LimitParts | None = None) -> None:
        """``parts``: ``limit_parts(obs.take([row]))`` when the caller has it already."""
        self.parts = dataclasses.replace(limit_parts(obs.take([row])) if parts is None else parts)
        self.cost = float(obs.production_cost[row])
        self._limits: L1Limits | None = None  # the limits until the next reservation
        self._terms: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # sale_terms
        self._q_buy: np.ndarray | None = None  # q_safe_buy

    def limits(self) -> L1Limits:
        if self._limits is None:
            if self._terms is None:
                self._terms = sale_terms(self.parts)
            if self._q_buy is None:
                self._q_buy = q_safe_buy(self.parts)
            self._limits = limits_from_terms(self.parts, self._terms, self._q_buy)
        return self._limits

    def reserve(self, is_buyer: bool, q: float, delta: int, p: float) -> None:
        if q <= 0:
            return
        pt = self.parts
        if is_buyer:
            pt.raw_buy = pt.raw_buy - q
            pt.b_money = pt.b_money - q * (p + self.cost)
            self._q_buy = None
        else:
            pt.out = pt.out.copy()
            pt.out[:, delta] += q
            self._terms = None
        self._limits = None


def role_safe(limits: L1Limits, is_buyer: np.ndarray) -> np.ndarray:
    """(N, K) safe quantity of each thread's role."""
    return np.where(np.asarray(is_buyer, bool)[:, None], limits.q_safe_buy, limits.q_safe_sell)


def time_range(obs: Observation, threads: Threads) -> np.ndarray:
    """(N, K) bool: δ where today + δ is in the thread's time range (the part of the time mask
    that no reservation changes)."""
    t = obs.day[:, None] + np.arange(K)[None, :]
    return (t >= threads.t_min[:, None]) & (t <= threads.t_max[:, None])


def time_mask(
    obs: Observation, limits: L1Limits, threads: Threads, in_range: np.ndarray | None = None
) -> np.ndarray:
    """(N, K) bool: δ where the role's safe quantity ≥ 1 and today + δ is in the thread's time
    range (``in_range``: ``time_range(obs, threads)`` when the caller has it already)."""
    in_range = time_range(obs, threads) if in_range is None else in_range
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
    q_sell = limits.sellable[rows, delta] / 2.0  # "inventory" in std: the sellable stock at δ
    q = np.where(is_buyer, q_buy, q_sell)
    p = np.where(is_buyer, p_buy, SELL_PRICE_FACTOR * market)
    return Baseline(q=np.where(feasible, q, 0.0), delta=delta.astype(np.int64), p=p, feasible=feasible)


@dataclass
class Action:
    q: np.ndarray  # (N,) int, 0 when infeasible
    delta: np.ndarray  # (N,) int
    p: np.ndarray  # (N,) int
    feasible: np.ndarray  # (N,) bool


#: |j − d| + j·1e-6 for every proposed offset d (rows) and offset j (columns): the distance
#: :func:`_nearest_masked` minimises (ties -> the earlier δ), computed once.
_DIST = (
    np.abs(np.arange(K)[None, :] - np.arange(K)[:, None]).astype(np.float64) + np.arange(K)[None, :] * 1e-6
)


def _nearest_masked(delta: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N,) the offset in each row's mask nearest to ``delta`` (in 0..K-1), the earlier on a tie."""
    return np.where(mask, _DIST[delta], np.inf).argmin(1)


@dataclass
class ClipInputs:
    """The part of :func:`clip_action` that no limit enters (it does not change as actions are
    reserved): the proposed δ as an offset index, the price rounded into the thread's range and
    the money one unit takes (price + production cost), the quantity floored at 0, and the
    thread's role and quantity range."""

    is_buyer: np.ndarray  # (N,) bool
    delta: np.ndarray  # (N,) int in 0..K-1
    price: np.ndarray  # (N,) int64, ≥ 1
    unit_cost: np.ndarray  # (N,) float: price + max(production cost, 0)
    q: np.ndarray  # (N,) float ≥ 0
    q_min: np.ndarray  # (N,) max(thread's q_min, 1)
    q_max: np.ndarray  # (N,)

    def take(self, idx: Any) -> ClipInputs:
        return ClipInputs(**{k: v[idx] for k, v in self.__dict__.items()})


def clip_inputs(
    obs: Observation, threads: Threads, q: np.ndarray, delta: np.ndarray, p: np.ndarray
) -> ClipInputs:
    """The limit-free part of clipping proposed actions (see :func:`clip_action`)."""
    d = np.rint(finite(np.asarray(delta, np.float64))).clip(0, K - 1).astype(np.int64)
    price = np.rint(finite(np.asarray(p, np.float64), nan=0.0)).clip(threads.p_min, threads.p_max)
    price = np.maximum(price, 1.0)
    return ClipInputs(
        is_buyer=np.asarray(threads.is_buyer, bool),
        delta=d,
        price=price.astype(np.int64),
        unit_cost=price + np.maximum(obs.production_cost, 0.0),
        q=np.maximum(finite(np.asarray(q, np.float64)), 0.0),
        q_min=np.maximum(threads.q_min, 1),
        q_max=np.asarray(threads.q_max),
    )


def clip_prepared(limits: L1Limits, x: ClipInputs, mask: np.ndarray) -> Action:
    """The limit-dependent part of :func:`clip_action`: δ into the mask, the quantity to the
    role's safe quantity, the budget and the thread's quantity range."""
    has = mask.any(1)
    d = np.where(has, _nearest_masked(x.delta, mask), x.delta)
    rows = np.arange(len(d))
    safe = role_safe(limits, x.is_buyer)[rows, d]
    budget_q = np.maximum(limits.b_free, 0.0) / x.unit_cost
    cap = np.where(x.is_buyer, np.minimum(safe, budget_q), safe)
    cap = np.minimum(cap, x.q_max)
    qq = np.floor(np.minimum(x.q, cap) + 1e-9)
    ok = has & (qq >= x.q_min)
    return Action(q=np.where(ok, qq, 0).astype(np.int64), delta=d, p=x.price, feasible=ok)


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
    the role's safe quantity, the budget and the thread's quantity range (all integers).
    = :func:`clip_prepared` of :func:`clip_inputs` (the agent prepares a round's actions once
    and finishes each against the limits left by the threads before it)."""
    mask = time_mask(obs, limits, threads) if mask is None else mask
    return clip_prepared(limits, clip_inputs(obs, threads, q, delta, p), mask)


def reserve(obs: Observation, row: int, is_buyer: bool, q: float, delta: int, p: float) -> None:
    """Dynamic reservation on an observation: book a planned action as a tentative commitment
    of ``obs[row]``, so the limits recomputed from ``obs`` see less budget and room (the
    reference that ``ReservedLimits`` is tested against).

    A tentative purchase must not back a sale: its partner may still refuse it. So a reserved
    purchase of q at δ also books the extra output it would let the lines make on day δ as a
    phantom outbound at δ: Q_safe and B_free shrink, the sell side is exactly unchanged. (The
    phantom units are visible in ``obs.sales``: build features from the unreserved observation.)"""
    if q <= 0:
        return
    if is_buyer:
        before = limit_parts(obs.take([row])).cap[0, delta]
        obs.supplies[row, delta] += q
        obs.payables[row, delta] += q * p
        after = limit_parts(obs.take([row])).cap[0, delta]
        obs.sales[row, delta] += after - before
    else:
        obs.sales[row, delta] += q
        obs.receivables[row, delta] += q * p


def invariant_broken(obs: Observation, buyer: bool, delta: int) -> bool:
    """L1's invariant broken for ``obs`` (one row) at delivery offset δ: the budget (which holds
    the worst-case shortfall penalty of every unbacked unit) below zero; input beyond what the
    lines can use by the end of the game (buyer); day δ exposed beyond the allowance (seller)."""
    parts = limit_parts(obs)
    d = min(max(int(delta), 0), K - 1)
    if limits_from_parts(parts).b_free[0] < -1e-6:
        return True
    if buyer:
        return bool(parts.raw_buy[0, d] < -1e-6)
    return bool(exposure(parts)[0, d] > parts.allowance[0] + 1e-6)


def agreement_breaks_l1(after: Observation, contract: Any, my_id: str) -> bool:
    """Did this agreement break L1's invariant at its delivery offset, which held without it?
    ``after`` is the live observation that already holds the agreement (the AWI includes it when
    ``on_negotiation_success`` fires)."""
    ag = contract.agreement
    q, t, p = int(ag["quantity"]), int(ag["time"]), float(ag["unit_price"])
    buyer = contract.annotation.get("buyer") == my_id
    d = t - int(after.day[0])
    if not 0 <= d < K:
        return False
    before = after.copy()
    if buyer:
        before.supplies[0, d] -= q
        before.payables[0, d] -= q * p
    else:
        before.sales[0, d] -= q
        before.receivables[0, d] -= q * p
    return invariant_broken(after, buyer, d) and not invariant_broken(before, buyer, d)
