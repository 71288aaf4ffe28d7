"""Hand-checked examples of L1 (limits, production plan, baseline, clip, reservation) and of the
v2 L2 goal labels, on small constructed days. Every expected number is worked out in a comment."""

from __future__ import annotations

import numpy as np
import pytest

from hrlxf_core.l1_safety import ReservedLimits, Threads, baseline, clip_action, l1_limits, reserve, time_mask
from hrlxf_core.labels import (
    BUCKET_CENTRES,
    BUCKET_EDGES,
    GOAL_DIM,
    GOAL_NAMES,
    hard_bucket,
    soft_bucket_weights,
    v2_goals,
)
from hrlxf_core.state import K, Observation, observation_from_arrays, production_plan


def _vec(entries: dict[int, float]) -> list[float]:
    v = [0.0] * K
    for d, x in entries.items():
        v[d] = x
    return v


def hand_day() -> Observation:
    """Three middle-level agents on a small constructed day (allowance 0.25 line per day).

    Row 0, day 10 of 20 (δ = 0..9 in the game), 3 lines, production cost 2, shortfall penalty
      0.5 × output trading price 25 = 12.5 per unit short: input stock 2, balance 1000, trading
      prices 10 (input) and 25 (output); supplies 4 at δ=1 (payables 40) and 5 at δ=3 (payables
      55); sales 1 at δ=0 (receivables 25) and 3 at δ=2 (receivables 75).
    Row 1: row 0 with balance 150 (the budget binds).
    Row 2, day 18 of 20 (δ = 0, 1 in the game), 2 lines, production cost 1, shortfall penalty
      1.0 × 20: input stock 1, balance 500, trading prices 10 and 20; supplies 3 at δ=0, 2 at δ=1
      and 4 at δ=2 (after the end of the game; payables 30, 20, 40); sales 1 at δ=1 (receivables 20).
    """
    scalars = {
        "day": [10, 10, 18],
        "n_steps": [20, 20, 20],
        "n_lines": [3, 3, 2],
        "balance": [1000.0, 150.0, 500.0],
        "initial_balance": [2000.0, 2000.0, 1000.0],
        "inventory_input": [2.0, 2.0, 1.0],
        "inventory_output": [0.0, 0.0, 0.0],
        "production_cost": [2.0, 2.0, 1.0],
        "shortfall_penalty": [0.5, 0.5, 1.0],
        "trading_price_input": [10.0, 10.0, 10.0],
        "trading_price_output": [25.0, 25.0, 20.0],
        "exo_input_quantity": [0.0, 0.0, 0.0],
        "exo_output_quantity": [0.0, 0.0, 0.0],
        "exo_input_price_total": [0.0, 0.0, 0.0],
        "exo_output_price_total": [0.0, 0.0, 0.0],
    }
    row01 = {
        "supplies_by_offset": _vec({1: 4, 3: 5}),
        "sales_by_offset": _vec({0: 1, 2: 3}),
        "payables_by_offset": _vec({1: 40, 3: 55}),
        "receivables_by_offset": _vec({0: 25, 2: 75}),
    }
    row2 = {
        "supplies_by_offset": _vec({0: 3, 1: 2, 2: 4}),
        "sales_by_offset": _vec({1: 1}),
        "payables_by_offset": _vec({0: 30, 1: 20, 2: 40}),
        "receivables_by_offset": _vec({1: 20}),
    }
    vectors = {k: np.array([row01[k], row01[k], row2[k]]) for k in row01}
    no = np.zeros(3, dtype=bool)
    return observation_from_arrays({k: np.array(v) for k, v in scalars.items()}, vectors, no, no)


# ------------------------------------------------------------------------------------------------
# Production (scml 0.8.4 std: made on the delivery day, the input stock is never consumed)
# ------------------------------------------------------------------------------------------------
def test_production_plan_by_hand() -> None:
    made, stock = production_plan(hand_day())
    # Row 0, 3 lines: made(δ) = min(stock + in, 3, out); stock += max(0, in − made).
    #   δ0: stock 2, out 1 -> make 1 (from stock), stock stays 2;  δ1: +4, nothing sold -> stock 6;
    #   δ2: out 3 -> make 3, stock 6;  δ3: +5 -> stock 11;  later: nothing sold, stock 11.
    np.testing.assert_allclose(made[0, :5], [1, 0, 3, 0, 0])
    np.testing.assert_allclose(stock[0, :6], [2, 2, 6, 6, 11, 11])
    assert made[0, 5:].sum() == 0 and (stock[0, 4:] == 11).all()
    np.testing.assert_array_equal(made[1], made[0])  # balance plays no part
    # Row 2, 2 lines, 2 days left: stock 1; δ0 +3, nothing sold -> stock 4; δ1 +2, sells 1 ->
    #   make 1, 1 of the 2 inputs left -> stock 5; δ2 (after the game) +4 -> 9 forever.
    np.testing.assert_allclose(made[2, :3], [0, 1, 0])
    np.testing.assert_allclose(stock[2, :4], [1, 4, 5, 9])
    assert (stock[2, 3:] == 9).all()


# ------------------------------------------------------------------------------------------------
# Q_safe, sellable stock, sell-side safe quantity, B_free
# ------------------------------------------------------------------------------------------------
def test_limits_by_hand() -> None:
    lim = l1_limits(hand_day())
    # Row 0. Committed input = stock 2 + 4 + 5 = 11. Q_safe[δ] = 3·(10 − δ) − 11, floored at 0:
    #   δ0 19, δ1 16, δ2 13, δ3 10, δ4 7, δ5 4, δ6 1, δ7..9 0 (3·3 − 11 < 0), δ ≥ 10 out of the game.
    q_buy = np.zeros(K)
    q_buy[:7] = [19, 16, 13, 10, 7, 4, 1]
    np.testing.assert_allclose(lim.q_safe_buy[0], q_buy)
    np.testing.assert_allclose(lim.q_safe_buy[1], q_buy)
    # Sell side. cap(δ) = min(stock 2 + in(δ), 3 lines): 2, 3, 2, 3, 2, ... (δ ≤ 9);
    #   room = cap − out = 1, 3, −1, 3, 2, ...;  sellable = room floored at 0: 1, 3, 0, 3, 2, ...
    #   exposure e = 1 at δ2 (3 sold, 2 certain) -> E = 1, penalty 12.5 -> B_free −12.5.
    sellable = np.zeros(K)
    sellable[:10] = [1, 3, 0, 3, 2, 2, 2, 2, 2, 2]
    np.testing.assert_allclose(lim.sellable[0], sellable)
    # B_free = balance − payables (40 + 55) − production cost 2 · committed 11 − 12.5 · E 1
    #   row 0: 1000 − 95 − 22 − 12.5 = 870.5;  row 1: 150 − 95 − 22 − 12.5 = 20.5.
    # Row 2. Committed input = 1 + 3 + 2 + 4 = 10 > 2 lines · 2 days: Q_safe = 0 everywhere.
    #   cap = min(1 + 3, 2), min(1 + 2, 2) = 2, 2; room 2, 1; no exposure: B_free = 500 − 90 − 10.
    np.testing.assert_allclose(lim.b_free, [870.5, 20.5, 400.0])
    # q_sell = min(room + allowance 0.75, sellable + B_free / 12.5), floored at 0, on in-game days:
    #   row 0: 1.75, 3.75, 0, 3.75, 2.75 × 6 (money never binds: 870.5 / 12.5 = 69.6 units);
    #   row 1: the same (20.5 / 12.5 = 1.64 units ≥ the allowance);
    #   row 2 (allowance 0.5): 2.5, 1.5.
    q_sell = np.zeros(K)
    q_sell[:10] = [1.75, 3.75, 0, 3.75, 2.75, 2.75, 2.75, 2.75, 2.75, 2.75]
    np.testing.assert_allclose(lim.q_safe_sell[0], q_sell)
    np.testing.assert_allclose(lim.q_safe_sell[1], q_sell)
    assert (lim.q_safe_buy[2] == 0).all()
    np.testing.assert_allclose(lim.q_safe_sell[2, :2], [2.5, 1.5])
    np.testing.assert_allclose(lim.sellable[2, :2], [2, 1])
    assert (lim.q_safe_sell[2, 2:] == 0).all()


def test_money_bounds_the_exposure_by_hand() -> None:
    """Row 1 with balance 125: B_free = 125 − 95 − 22 − 12.5 = −4.5 < 0 (the exposure it holds
    already needs all of it): no new unbacked unit, only sellable stock may be sold."""
    obs = hand_day().take(np.array([1]))
    obs.balance[:] = 125.0
    lim = l1_limits(obs)
    np.testing.assert_allclose(lim.b_free, [-4.5])
    np.testing.assert_allclose(lim.q_safe_sell[0, :10], [1, 3, 0, 3, 2, 2, 2, 2, 2, 2])


def _one_seller(stock: float, balance: float, exo_in: float = 0.0) -> tuple[Observation, Threads]:
    """A first-level factory on day 5 of 30, 10 lines, output price 20, penalty 1 × 20 per unit,
    nothing committed, one thread selling for today (δ 0) at 18-22, 1-10 units."""
    scalars = {
        "day": [5], "n_steps": [30], "n_lines": [10], "balance": [balance], "initial_balance": [1000.0],
        "inventory_input": [stock], "inventory_output": [0.0], "production_cost": [1.0],
        "shortfall_penalty": [1.0], "trading_price_input": [10.0], "trading_price_output": [20.0],
        "exo_input_quantity": [exo_in], "exo_output_quantity": [0.0],
        "exo_input_price_total": [10.0 * exo_in], "exo_output_price_total": [0.0],
    }  # fmt: skip
    vectors = {k: np.zeros((1, K)) for k in ("supplies_by_offset", "sales_by_offset", "payables_by_offset",
                                             "receivables_by_offset")}  # fmt: skip
    obs = observation_from_arrays(
        {k: np.array(v) for k, v in scalars.items()}, vectors, np.array([True]), np.array([False])
    )
    th = Threads(
        is_buyer=np.array([False]), q_min=np.array([1.0]), q_max=np.array([10.0]), t_min=np.array([5.0]),
        t_max=np.array([5.0]), p_min=np.array([18.0]), p_max=np.array([22.0]),
    )  # fmt: skip
    return obs, th


def test_same_day_sale_allowed_when_the_stock_allows_it_and_refused_when_not() -> None:
    # stock 6 (or 6 exogenous inputs arriving today): a sale of 6 for today is made today from it
    for stock, exo in ((6.0, 0.0), (0.0, 6.0)):
        obs, th = _one_seller(stock, 1000.0, exo)
        lim = l1_limits(obs)
        assert lim.sellable[0, 0] == 6
        a = clip_action(obs, lim, th, np.array([6.0]), np.array([0.0]), np.array([20.0]))
        assert a.feasible[0] and a.q[0] == 6 and a.delta[0] == 0
        base = baseline(obs, lim, th)
        assert base.delta[0] == 0 and base.q[0] == 3.0  # inventory / 2 = sellable stock 6 / 2
    # nothing to make it from: the allowance (0.5 line = 5 units) is all that may be sold ...
    obs, th = _one_seller(0.0, 1000.0)
    lim = l1_limits(obs)
    a = clip_action(obs, lim, th, np.array([8.0]), np.array([0.0]), np.array([20.0]))
    assert a.feasible[0] and a.q[0] == 5
    assert baseline(obs, lim, th).q[0] == 0.0  # the baseline never sells what is not there
    # ... and only if the worst-case penalty of it can be paid: B_free 30 - cost 0 pays 1.5 units
    obs, th = _one_seller(0.0, 30.0)
    lim = l1_limits(obs)
    a = clip_action(obs, lim, th, np.array([8.0]), np.array([0.0]), np.array([20.0]))
    assert a.feasible[0] and a.q[0] == 1
    obs, th = _one_seller(0.0, 10.0)  # 10 / 20 = half a unit: refused
    lim = l1_limits(obs)
    a = clip_action(obs, lim, th, np.array([8.0]), np.array([0.0]), np.array([20.0]))
    assert not a.feasible[0] and a.q[0] == 0


def hand_threads() -> tuple[Observation, Threads]:
    """Four threads: row 0 buys (δ 1..5) and sells (δ 0..10), row 1 buys (δ 1..5), row 2 sells
    (δ 0..1)."""
    obs = hand_day().take(np.array([0, 0, 1, 2]))
    threads = Threads(
        is_buyer=np.array([True, False, True, False]),
        q_min=np.array([1.0, 1.0, 1.0, 1.0]),
        q_max=np.array([10.0, 10.0, 10.0, 5.0]),
        t_min=np.array([11.0, 10.0, 11.0, 18.0]),
        t_max=np.array([15.0, 20.0, 15.0, 19.0]),
        p_min=np.array([8.0, 20.0, 8.0, 15.0]),
        p_max=np.array([12.0, 30.0, 12.0, 25.0]),
    )
    return obs, threads


def test_time_mask_and_baseline_by_hand() -> None:
    obs, threads = hand_threads()
    lim = l1_limits(obs)
    mask = time_mask(obs, lim, threads)
    # buyer of row 0/1: δ 1..5 in range, Q_safe 16, 13, 10, 7, 4 ≥ 1 -> all five
    # seller of row 0: δ 0..10 in range, sell-safe ≥ 1 at δ 0..9 but δ2 (0) -> nine
    # seller of row 2: δ 0..1 in range, sell-safe (2.5, 1.5) -> both
    expect = np.zeros((4, K), dtype=bool)
    expect[0, 1:6] = expect[2, 1:6] = True
    expect[1, [0, 1, 3, 4, 5, 6, 7, 8, 9]] = True
    expect[3, 0:2] = True
    np.testing.assert_array_equal(mask, expect)
    base = baseline(obs, lim, threads, mask)
    # δ = earliest masked: 1, 0, 1, 0
    np.testing.assert_array_equal(base.delta, [1, 0, 1, 0])
    assert base.feasible.all()
    # buyer row 0: p = 0.95 · 10 = 9.5; q = min(Q_safe[1]/2 = 8, 870.5 / 9.5 = 91.6) = 8
    # seller row 0: p = 1.05 · 25 = 26.25; q = sellable stock at δ0 1 / 2 = 0.5
    # buyer row 1: p = 9.5; q = min(8, 20.5 / 9.5 = 2.157...) = 2.157...
    # seller row 2: p = 1.05 · 20 = 21; q = sellable stock at δ0 2 / 2 = 1
    np.testing.assert_allclose(base.p, [9.5, 26.25, 9.5, 21.0])
    np.testing.assert_allclose(base.q, [8.0, 0.5, 20.5 / 9.5, 1.0])


def test_clip_action_by_hand() -> None:
    obs, threads = hand_threads()
    lim = l1_limits(obs)
    a = clip_action(
        obs,
        lim,
        threads,
        q=np.array([100.0, 9.0, 5.0, -3.0]),
        delta=np.array([0.0, 2.4, 7.0, np.inf]),
        p=np.array([20.0, np.nan, 9.4, 1e9]),
    )
    # t0 (buyer, row 0): δ0 is out of the range -> nearest masked δ1; p 20 -> p_max 12;
    #    q ≤ min(Q_safe[1] 16, 870.5 / (12 + cost 2) = 62.2, q_max 10) -> 10.
    # t1 (seller, row 0): δ 2.4 -> 2, masked out (sell-safe 0) -> δ1 and δ3 tie, earlier δ1;
    #    p NaN -> p_min 20; q ≤ sell-safe[1] = 3.75 -> 3.
    # t2 (buyer, row 1): δ7 is past t_max (δ ≤ 5) -> δ5; p 9.4 -> 9;
    #    q ≤ min(Q_safe[5] 4, 20.5 / (9 + 2) = 1.86) -> 1.
    # t3 (seller, row 2): δ inf -> 40 -> nearest masked δ1; p 1e9 -> 25; q −3 -> 0 < q_min: infeasible.
    np.testing.assert_array_equal(a.delta, [1, 1, 5, 1])
    np.testing.assert_array_equal(a.p, [12, 20, 9, 25])
    np.testing.assert_array_equal(a.q, [10, 3, 1, 0])
    np.testing.assert_array_equal(a.feasible, [True, True, True, False])
    # one unit more than the budget allows for t2 is refused: q_min 2 > 1 makes it infeasible
    threads.q_min[2] = 2.0
    b = clip_action(obs, lim, threads, np.array([100.0, 9.0, 5.0, -3.0]), a.delta, a.p)
    assert b.q[2] == 0 and not b.feasible[2]


def test_reservation_by_hand() -> None:
    obs = hand_day().take(np.array([0]))
    inc = ReservedLimits(obs)
    sell0 = l1_limits(obs).q_safe_sell.copy()
    # a purchase of 10 at δ1 for 12: committed input 11 + 10 = 21, Q_safe[δ] = 3·(10 − δ) − 21:
    #   δ0 9, δ1 6, δ2 3, δ3.. 0;  B_free = 870.5 − 10 · (12 + 2) = 730.5. cap(δ1) was already the
    #   3 lines, so no phantom outbound is needed and the sell side is unchanged.
    reserve(obs, 0, True, 10, 1, 12)
    inc.reserve(True, 10, 1, 12)
    lim = l1_limits(obs)
    q_buy = np.zeros(K)
    q_buy[:3] = [9, 6, 3]
    np.testing.assert_allclose(lim.q_safe_buy[0], q_buy)
    np.testing.assert_allclose(lim.b_free, [730.5])
    assert obs.supplies[0, 1] == 14 and obs.payables[0, 1] == 40 + 120
    np.testing.assert_allclose(lim.q_safe_sell, sell0)
    # a purchase of 1 at δ0 for 12 would raise cap(δ0) from 2 to 3: booked as 1 phantom outbound
    #   at δ0, so that the sale it would back stays unbacked (the partner may still refuse).
    reserve(obs, 0, True, 1, 0, 12)
    inc.reserve(True, 1, 0, 12)
    assert obs.sales[0, 0] == 1 + 1
    lim = l1_limits(obs)
    np.testing.assert_allclose(lim.q_safe_sell, sell0)
    np.testing.assert_allclose(lim.b_free, [730.5 - 14])
    # a sale of 2 at δ4 for 26 fills its room (2): no exposure, the budget is untouched, and
    #   δ4 keeps the allowance 0.75; one more unit (reserved directly, clip() would refuse it)
    #   exposes δ4 by 1, beyond the allowance: B_free − 12.5 and nothing more may be sold then.
    reserve(obs, 0, False, 2, 4, 26)
    inc.reserve(False, 2, 4, 26)
    lim = l1_limits(obs)
    np.testing.assert_allclose(lim.b_free, [716.5])
    assert lim.q_safe_sell[0, 4] == 0.75 and obs.receivables[0, 4] == 52
    reserve(obs, 0, False, 1, 4, 26)
    inc.reserve(False, 1, 4, 26)
    lim = l1_limits(obs)
    np.testing.assert_allclose(lim.b_free, [704.0])
    assert lim.q_safe_sell[0, 4] == 0.0
    got = inc.limits()
    for f in ("q_safe_buy", "q_safe_sell", "b_free", "sellable"):
        np.testing.assert_allclose(getattr(got, f), getattr(lim, f), err_msg=f)
    # nothing is booked for a zero quantity
    before = obs.copy()
    reserve(obs, 0, True, 0, 2, 10)
    np.testing.assert_array_equal(obs.supplies, before.supplies)


# ------------------------------------------------------------------------------------------------
# v2 labels
# ------------------------------------------------------------------------------------------------
def test_bucket_constants() -> None:
    assert BUCKET_EDGES == ((0, 0), (1, 2), (3, 5), (6, 10))
    np.testing.assert_allclose(BUCKET_CENTRES, [0.0, 1.5, 4.0, 8.0])
    assert GOAL_DIM == 16 and GOAL_NAMES[:5] == ("b0_q_buy", "b0_p_buy", "b0_q_sell", "b0_p_sell", "b1_q_buy")
    np.testing.assert_array_equal(hard_bucket(np.array([0, 1, 2, 3, 5, 6, 10, 15])), [0, 1, 1, 2, 2, 3, 3, 3])


def test_soft_bucket_weights_by_hand() -> None:
    w = soft_bucket_weights(np.array([0, 1, 2, 3, 4, 5, 6, 8, 10]))
    expect = [
        [1, 0, 0, 0],  # δ0 = centre 0
        [1 / 3, 2 / 3, 0, 0],  # δ1: (1 − 0) / 1.5 = 2/3 of the way from centre 0 to 1.5
        [0, 0.8, 0.2, 0],  # δ2: (2 − 1.5) / 2.5 = 0.2 towards 4
        [0, 0.4, 0.6, 0],  # δ3: 1.5 / 2.5 = 0.6 towards 4
        [0, 0, 1, 0],  # δ4 = centre 4
        [0, 0, 0.75, 0.25],  # δ5: 1 / 4 towards 8
        [0, 0, 0.5, 0.5],  # δ6: 2 / 4
        [0, 0, 0, 1],  # δ8 = centre 8
        [0, 0, 0, 1],  # δ10: beyond the last centre, all of it in the last bucket
    ]
    np.testing.assert_allclose(w, expect, atol=1e-12)


def _goal(rows: list[list[float]]) -> np.ndarray:
    return np.array(rows, dtype=np.float64).reshape(GOAL_DIM)


@pytest.fixture
def hand_labels() -> tuple[np.ndarray, np.ndarray]:
    """Three agent-days.

    Row 0, middle level, 5 lines, trading prices 10 (input) and 20 (output), needed_supplies 6:
      deals: buy 4 @ 9 at δ0, buy 6 @ 11 at δ2, sell 10 @ 22 at δ5;
      intents (threads that ended without agreement): sell 4 @ 30 at δ8, buy 8 @ 12 at δ10.
    Row 1, first level (cannot buy), 2 lines, prices 5 and 15, needed_sales 4 (needed_supplies 7
      is ignored): deals: sell 1 @ 18 at δ0, sell 2 @ 40 at δ4; intent: buy 2 @ 6 at δ1 (masked).
    Row 2, last level (cannot sell), 10 lines, prices 10 and 20: deal buy 500 @ 12 at δ0.
    """
    return v2_goals(
        n_rows=3,
        n_lines=np.array([5.0, 2.0, 10.0]),
        trading_in=np.array([10.0, 5.0, 10.0]),
        trading_out=np.array([20.0, 15.0, 20.0]),
        can_buy=np.array([1.0, 0.0, 1.0]),
        can_sell=np.array([1.0, 1.0, 0.0]),
        needed_supplies=np.array([6.0, 7.0, 0.0]),
        needed_sales=np.array([0.0, 4.0, 0.0]),
        deal_row=np.array([0, 0, 0, 1, 1, 2]),
        deal_is_buy=np.array([True, True, False, False, False, True]),
        deal_delta=np.array([0, 2, 5, 0, 4, 0]),
        deal_q=np.array([4.0, 6.0, 10.0, 1.0, 2.0, 500.0]),
        deal_p=np.array([9.0, 11.0, 22.0, 18.0, 40.0, 12.0]),
        intent_row=np.array([0, 0, 1]),
        intent_is_buy=np.array([False, True, True]),
        intent_delta=np.array([8, 10, 1]),
        intent_q=np.array([4.0, 8.0, 2.0]),
        intent_p=np.array([30.0, 12.0, 6.0]),
    )


def test_v2_goals_by_hand(hand_labels) -> None:
    goal, mask = hand_labels
    assert goal.shape == mask.shape == (3, GOAL_DIM)
    # Row 0, buy side (buckets centred 0, 1.5, 4, 8):
    #   deal 4 at δ0 -> b0: 4;  deal 6 at δ2 -> b1: 4.8, b2: 1.2 (weights 0.8 / 0.2);
    #   shortfall: needed 6 − 4 bought for today = 2, × 0.5 = 1 more at b0 -> 5;
    #   intent 8 at δ10 -> b3 (all), × 0.25 = 2.
    #   q / 5 lines: 1.0, 0.96, 0.24, 0.4.
    #   price: deals' VWAP 9, 11, 11 -> / 10 = 0.9, 1.1, 1.1; b3 has no deal: intent VWAP 12 -> 1.2.
    # Row 0, sell side:
    #   deal 10 at δ5 -> b2: 7.5, b3: 2.5 (weights 0.75 / 0.25); intent 4 at δ8 -> b3 + 0.25 · 4 = 1;
    #   no shortfall (needed_sales 0). q / 5: 0, 0, 1.5, 0.7.
    #   price: b0, b1 have neither deal nor intent -> the market (ratio 1); b2, b3 the deal at
    #   22 / 20 = 1.1 (b3's intent at 30 does not count: a bucket with a deal uses the deal).
    np.testing.assert_allclose(
        goal[0],
        _goal([[1.0, 0.9, 0.0, 1.0], [0.96, 1.1, 0.0, 1.0], [0.24, 1.1, 1.5, 1.1], [0.4, 1.2, 0.7, 1.1]]),
        atol=1e-12,
    )
    np.testing.assert_array_equal(mask[0], np.ones(GOAL_DIM))
    # Row 1 (first level): buy side masked (q 0, p 1, mask 0) whatever its events and needs.
    #   Sell: deal 1 at δ0 -> b0: 1; shortfall 4 − 1 = 3, × 0.5 = 1.5 -> b0: 2.5 -> / 2 lines = 1.25;
    #   deal 2 at δ4 -> b2: 2 -> 1.0. Price: b0 18 / 15 = 1.2; b2 40 / 15 = 2.67 -> clipped to 2.0;
    #   b1, b3 the market (1.0).
    np.testing.assert_allclose(
        goal[1],
        _goal([[0.0, 1.0, 1.25, 1.2], [0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 2.0], [0.0, 1.0, 0.0, 1.0]]),
        atol=1e-12,
    )
    np.testing.assert_array_equal(mask[1], _goal([[0, 0, 1, 1]] * 4))
    # Row 2 (last level): buy 500 at δ0 -> 500 / 10 lines = 50 days of production -> clipped to 20;
    #   price 12 / 10 = 1.2; the rest of the buy side: q 0, price the market. Sell side masked.
    np.testing.assert_allclose(
        goal[2],
        _goal([[20.0, 1.2, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0]]),
        atol=1e-12,
    )
    np.testing.assert_array_equal(mask[2], _goal([[1, 1, 0, 0]] * 4))


def test_v2_goals_empty_day_is_the_market() -> None:
    """No deal, no intent, nothing needed: zero quantities at the market price on both sides."""
    e_i, e_f, e_b = np.array([], dtype=np.int64), np.array([]), np.array([], dtype=bool)
    goal, mask = v2_goals(
        1, np.array([4.0]), np.array([10.0]), np.array([20.0]), np.array([1.0]), np.array([1.0]),
        np.array([0.0]), np.array([0.0]),
        e_i, e_b, e_i, e_f, e_f, e_i, e_b, e_i, e_f, e_f,
    )  # fmt: skip
    np.testing.assert_array_equal(goal[0], _goal([[0.0, 1.0, 0.0, 1.0]] * 4))
    np.testing.assert_array_equal(mask[0], np.ones(GOAL_DIM))
