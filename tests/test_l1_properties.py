"""Property tests of L1 (docs/design.md §6.2): an action that survives clip() is safe by construction, and
so is any sequence of dynamically reserved actions; the features of any valid observation are
finite and bounded; the batch API does not depend on the order of its rows.

The physical reference used throughout is a plain day-by-day loop over the factory as scml 0.8.4's
std engine runs it (output made on its delivery day from the stock and that day's inputs, within
the lines, only what is sold; unused inputs join the stock, which is never drawn down), written
here independently of ``hrlxf_core.state``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrlxf_core.l1_safety import (
    BUY_PRICE_FACTOR,
    SELL_PRICE_FACTOR,
    ReservedLimits,
    Threads,
    baseline,
    clip_action,
    l1_limits,
    market_price,
    reserve,
    role_safe,
    time_mask,
)
from hrlxf_core.normalization import FEATURE_CLIP
from hrlxf_core.state import K, Observation, observation_from_arrays, production_plan, x_static, x_temporal

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOL = 1e-6


# ------------------------------------------------------------------------------------------------
# Strategies
# ------------------------------------------------------------------------------------------------
def _sparse(rng: np.random.Generator, n: int, density: float, hi: int) -> np.ndarray:
    """(n, K) sparse non-negative integer units."""
    return (rng.random((n, K)) < density) * rng.integers(1, hi + 1, size=(n, K))


@st.composite
def observations(draw, max_rows: int = 4, no_inputs: bool = False) -> Observation:
    """A batch of random but valid observations (day < n_steps, n_lines in 1..20, stocks ≥ 0,
    sparse non-negative commitments, prices > 0). Balances may be negative (an agent in debt)."""
    n = draw(st.integers(1, max_rows))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_steps = np.array([draw(st.integers(2, 120)) for _ in range(n)])
    # the end of the game is often inside the horizon: bias the day towards it
    day = np.array(
        [draw(st.one_of(st.integers(0, s - 1), st.integers(max(s - K, 0), s - 1))) for s in n_steps]
    )
    n_lines = np.array([draw(st.integers(1, 20)) for _ in range(n)])
    level = np.array([draw(st.sampled_from(["first", "middle", "last"])) for _ in range(n)])
    first, last = level == "first", level == "last"
    density = draw(st.sampled_from([0.0, 0.05, 0.2, 0.6]))
    hi = draw(st.sampled_from([1, 5, 30, 200]))
    tp_in = np.round(rng.uniform(1.0, 60.0, n), 3)
    tp_out = np.round(tp_in + rng.uniform(0.5, 40.0, n), 3)
    scalars = {
        "day": day,
        "n_steps": n_steps,
        "n_lines": n_lines,
        "balance": np.array([draw(st.floats(-2_000.0, 50_000.0)) for _ in range(n)]),
        "initial_balance": np.array([draw(st.floats(1.0, 50_000.0)) for _ in range(n)]),
        "inventory_input": rng.integers(0, hi + 1, n) * (rng.random(n) < 0.7),
        "inventory_output": np.zeros(n),  # std never holds output inventory
        "production_cost": np.array([draw(st.sampled_from([0.0, 1.0, 2.5, 10.0])) for _ in range(n)]),
        "shortfall_penalty": np.array([draw(st.sampled_from([0.0, 0.3, 0.6, 1.0, 3.0])) for _ in range(n)]),
        "trading_price_input": tp_in,
        "trading_price_output": tp_out,
        # exogenous contracts: inputs of the first level, outputs of the last level
        "exo_input_quantity": np.where(first, rng.integers(0, 3 * n_lines + 1), 0),
        "exo_output_quantity": np.where(last, rng.integers(0, 3 * n_lines + 1), 0),
    }
    scalars["exo_input_price_total"] = scalars["exo_input_quantity"] * tp_in * rng.uniform(0.8, 1.2, n)
    scalars["exo_output_price_total"] = scalars["exo_output_quantity"] * tp_out * rng.uniform(0.8, 1.2, n)
    supplies = _sparse(rng, n, density, hi) * (~first)[:, None]
    sales = _sparse(rng, n, density, hi) * (~last)[:, None]
    vectors = {
        "supplies_by_offset": supplies,
        "sales_by_offset": sales,
        "payables_by_offset": supplies * tp_in[:, None] * rng.uniform(0.5, 1.5, (n, K)),
        "receivables_by_offset": sales * tp_out[:, None] * rng.uniform(0.5, 1.5, (n, K)),
    }
    oq_b, oq_s = _sparse(rng, n, density, hi), _sparse(rng, n, density, hi)
    offers = {
        "offers_buy_q": oq_b,
        "offers_buy_value": oq_b * tp_in[:, None] * rng.uniform(0.3, 3.0, (n, K)),
        "offers_sell_q": oq_s,
        "offers_sell_value": oq_s * tp_out[:, None] * rng.uniform(0.3, 3.0, (n, K)),
    }
    if no_inputs:
        scalars["inventory_input"] = np.zeros(n)
        scalars["exo_input_quantity"] = np.zeros(n)
        scalars["exo_input_price_total"] = np.zeros(n)
        vectors["supplies_by_offset"] = np.zeros((n, K))
        vectors["payables_by_offset"] = np.zeros((n, K))
    return observation_from_arrays(scalars, vectors, first, last, offers)


@st.composite
def threads_for(draw, obs: Observation, any_role: bool = False) -> Threads:
    """One thread per observation row, of a role the row can trade (or any role)."""
    n = obs.size
    roles = []
    for i in range(n):
        allowed = [r for r, ok in ((True, obs.can_buy[i]), (False, obs.can_sell[i])) if ok or any_role]
        roles.append(draw(st.sampled_from(allowed)))
    q_min = np.array([draw(st.integers(0, 5)) for _ in range(n)], dtype=np.float64)
    q_max = q_min + np.array([draw(st.integers(0, 40)) for _ in range(n)])
    t_min = obs.day + np.array([draw(st.integers(-2, 15)) for _ in range(n)])
    t_max = t_min + np.array([draw(st.integers(0, 12)) for _ in range(n)])
    p_min = np.array([draw(st.integers(1, 60)) for _ in range(n)], dtype=np.float64)
    p_max = p_min + np.array([draw(st.integers(0, 30)) for _ in range(n)])
    return Threads(
        is_buyer=np.array(roles, dtype=bool),
        q_min=q_min,
        q_max=q_max,
        t_min=t_min.astype(np.float64),
        t_max=t_max.astype(np.float64),
        p_min=p_min,
        p_max=p_max,
    )


#: Proposals from a policy that may output anything: negative, NaN, infinite, huge.
WILD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-50.0, 100.0),
    st.integers(-5, 60).map(float),
)


def proposals(n: int):
    return st.tuples(*(st.lists(WILD, min_size=n, max_size=n).map(np.array) for _ in range(3)))


@st.composite
def obs_threads_proposals(draw, any_role: bool = False, max_rows: int = 4):
    obs = draw(observations(max_rows=max_rows))
    threads = draw(threads_for(obs, any_role=any_role))
    q, d, p = draw(proposals(obs.size))
    return obs, threads, q, d, p


# ------------------------------------------------------------------------------------------------
# The reference factory, one day at a time (scml 0.8.4 std, written independently of state.py)
# ------------------------------------------------------------------------------------------------
def simulate(obs: Observation, row: int) -> dict[str, np.ndarray | float]:
    """The engine's day: made = min(stock + in, lines, sold); the unused inputs of the day join
    the stock; the stock is never drawn down. Returns made[δ], stock at the start of δ, the
    shortfall of δ (sold − made) and the input left unproduced at the end of the horizon."""
    n, day, steps = obs.n_lines[row], obs.day[row], obs.n_steps[row]
    inb = obs.supplies[row].copy()
    inb[0] += obs.exo_input_quantity[row]
    outb = obs.sales[row].copy()
    outb[0] += obs.exo_output_quantity[row]
    stock = float(obs.inventory_input[row])
    made, stock_at, short = np.zeros(K), np.zeros(K), np.zeros(K)
    for d in range(K):
        cap = n if day + d < steps and obs.balance[row] >= 0 else 0.0
        stock_at[d] = stock
        made[d] = min(stock + inb[d], cap, max(outb[d], 0.0))
        short[d] = outb[d] - made[d]
        stock += max(inb[d] - made[d], 0.0)
    return {"made": made, "stock": stock_at, "short": short}


def reference_limits(obs: Observation, i: int) -> dict[str, np.ndarray | float]:
    """The rule of l1_safety's docstring, written out for one row."""
    inb = obs.supplies[i].copy()
    inb[0] += obs.exo_input_quantity[i]
    outb = obs.sales[i].copy()
    outb[0] += obs.exo_output_quantity[i]
    left = obs.n_steps[i] - obs.day[i] - np.arange(K)
    in_game = left > 0
    committed = obs.inventory_input[i] + inb.sum()
    lines = obs.n_lines[i] if obs.balance[i] >= 0 else 0.0  # a factory in debt makes nothing
    cap = np.where(in_game, np.minimum(obs.inventory_input[i] + inb, lines), 0.0)
    e = np.where(in_game, np.maximum(outb - cap, 0.0), 0.0)
    pen = max(obs.shortfall_penalty[i], 0.0) * obs.trading_price_output[i]
    money = (
        obs.balance[i] - obs.payables[i].sum() - obs.exo_input_value[i] - obs.production_cost[i] * committed
    )
    b_free = money - pen * e.sum()
    allow = (0.0 if obs.can_sell[i] <= 0 else (0.5 if obs.can_buy[i] <= 0 else 0.25)) * obs.n_lines[i]
    room = cap - outb
    units = np.inf if pen <= 0 else max(b_free, 0.0) / pen
    q_sell = np.where(in_game, np.maximum(np.minimum(room + allow, np.maximum(room, 0.0) + units), 0.0), 0.0)
    return {
        "q_safe_buy": np.where(in_game, np.maximum(obs.n_lines[i] * left - committed, 0), 0),
        "sellable": np.where(in_game, np.maximum(room, 0.0), 0.0),
        "q_safe_sell": q_sell,
        "b_free": b_free,
        "exposure": e,
        "allowance": allow,
        "pen": pen,
        "committed": committed,
    }


# ------------------------------------------------------------------------------------------------
# l1_limits against the definitions
# ------------------------------------------------------------------------------------------------
@SETTINGS
@given(observations())
def test_limits_match_their_definitions(obs: Observation) -> None:
    from hrlxf_core.l1_safety import SELL_ALLOWANCE_LINES

    assert SELL_ALLOWANCE_LINES == {"first": 0.5, "middle": 0.25}  # the reference above states it
    lim = l1_limits(obs)
    made, stock = production_plan(obs)
    for i in range(obs.size):
        sim = simulate(obs, i)
        np.testing.assert_allclose(made[i], sim["made"], atol=TOL)
        np.testing.assert_allclose(stock[i], sim["stock"], atol=TOL)
        ref = reference_limits(obs, i)
        for f in ("q_safe_buy", "sellable", "q_safe_sell"):
            np.testing.assert_allclose(getattr(lim, f)[i], ref[f], atol=1e-6, err_msg=f)
        np.testing.assert_allclose(lim.b_free[i], ref["b_free"], rtol=1e-9, atol=1e-6)
    for a in (lim.q_safe_buy, lim.q_safe_sell, lim.sellable):
        assert np.isfinite(a).all() and (a >= 0).all()
    assert np.isfinite(lim.b_free).all()
    assert (lim.q_safe_sell >= lim.sellable - TOL).all() or (lim.b_free < 0).any()
    # a purchase safe at δ is safe earlier (more days to produce it)
    assert (np.diff(lim.q_safe_buy, axis=1) <= TOL).all()


@SETTINGS
@given(observations())
def test_exposure_bounds_the_engines_shortfall(obs: Observation) -> None:
    """e(δ) is an upper bound of what the engine leaves short on day δ with the committed inputs
    (the stock never falls, so min(S0 + in, lines) is always there)."""
    for i in range(obs.size):
        ref, sim = reference_limits(obs, i), simulate(obs, i)
        in_game = obs.day[i] + np.arange(K) < obs.n_steps[i]  # (no contract is due after the end)
        assert (sim["short"][in_game] <= ref["exposure"][in_game] + TOL).all()


@SETTINGS
@given(observations())
def test_selling_the_whole_sellable_stock_adds_no_shortfall(obs: Observation) -> None:
    """Sellable stock is certain: selling sellable(δ) on every day at once, the engine makes every
    such sale, and no day ends shorter than the exposure L1 already counted for it (a same-day
    sale may use inputs that would have joined the stock, but no backed sale relied on those)."""
    lim = l1_limits(obs)
    for i in range(obs.size):
        exposed = reference_limits(obs, i)["exposure"]
        more = obs.take(np.array([i]))
        add = np.floor(lim.sellable[i] + 1e-9)
        more.sales[0] += add
        after = simulate(more, 0)["short"]
        in_game = obs.day[i] + np.arange(K) < obs.n_steps[i]
        assert (after[in_game] <= exposed[in_game] + TOL).all()
        assert (after[in_game & (add > 0)] <= TOL).all()  # the sales themselves are all made


@SETTINGS
@given(observations(no_inputs=True))
def test_without_inputs_only_the_allowance_can_be_sold(obs: Observation) -> None:
    """With no input stock and no inbound commitments nothing can be made: the sellable stock is
    0 and a day may be sold at most its allowance, and at most what B_free can pay the penalty of."""
    lim = l1_limits(obs)
    assert (production_plan(obs)[0] == 0).all()
    assert (lim.sellable == 0).all()
    for i in range(obs.size):
        ref = reference_limits(obs, i)
        assert (lim.q_safe_sell[i] <= ref["allowance"] + TOL).all()
        if ref["pen"] > 0:
            assert (lim.q_safe_sell[i] <= max(lim.b_free[i], 0.0) / ref["pen"] + TOL).all()


# ------------------------------------------------------------------------------------------------
# clip_action
# ------------------------------------------------------------------------------------------------
def _check_clipped(obs, lim, threads, mask, a) -> None:
    rows = np.arange(obs.size)
    is_buyer = threads.is_buyer
    assert a.q.dtype.kind == "i" and a.delta.dtype.kind == "i" and a.p.dtype.kind == "i"
    assert ((a.delta >= 0) & (a.delta < K)).all()
    safe = role_safe(lim, is_buyer)[rows, a.delta]
    assert (a.q <= safe + TOL).all(), "quantity above the role's safe quantity at the chosen δ"
    assert (
        a.q <= np.where(is_buyer, lim.q_safe_buy[rows, a.delta], lim.q_safe_sell[rows, a.delta]) + TOL
    ).all()
    spend = a.q * (a.p + obs.production_cost)
    assert (np.where(is_buyer, spend, 0.0) <= np.maximum(lim.b_free, 0.0) + TOL).all(), "over budget"
    assert ((a.p >= threads.p_min) & (a.p <= threads.p_max)).all(), "price outside the range"
    assert (a.q >= 0).all() and (a.q <= threads.q_max).all()
    assert (a.q[~a.feasible] == 0).all()
    assert (a.q[a.feasible] >= np.maximum(threads.q_min, 1)[a.feasible]).all()
    assert mask[rows, a.delta][a.feasible].all(), "feasible action at a masked-out δ"
    # δ goes into the mask whenever the mask has one; the chosen δ is then always masked
    has = mask.any(1)
    assert mask[rows, a.delta][has].all()
    assert not a.feasible[~has].any()


@SETTINGS
@given(obs_threads_proposals(any_role=True))
def test_clip_action_is_safe(args) -> None:
    obs, threads, q, d, p = args
    lim = l1_limits(obs)
    mask = time_mask(obs, lim, threads)
    a = clip_action(obs, lim, threads, q, d, p, mask)
    _check_clipped(obs, lim, threads, mask, a)
    # without an explicit mask, clip computes the same one
    b = clip_action(obs, lim, threads, q, d, p)
    for f in ("q", "delta", "p", "feasible"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


@SETTINGS
@given(obs_threads_proposals())
def test_clip_action_moves_delta_to_the_nearest_masked_and_is_idempotent(args) -> None:
    obs, threads, q, d, p = args
    lim = l1_limits(obs)
    mask = time_mask(obs, lim, threads)
    a = clip_action(obs, lim, threads, q, d, p, mask)
    wanted = np.clip(np.rint(np.nan_to_num(d.astype(np.float64))), 0, K - 1)
    for i in range(obs.size):
        masked = np.flatnonzero(mask[i])
        if len(masked):
            assert abs(a.delta[i] - wanted[i]) == np.abs(masked - wanted[i]).min()
    again = clip_action(obs, lim, threads, a.q, a.delta, a.p, mask)
    for f in ("delta", "p", "feasible"):
        np.testing.assert_array_equal(getattr(again, f), getattr(a, f))
    np.testing.assert_array_equal(again.q[a.feasible], a.q[a.feasible])


@SETTINGS
@given(obs_threads_proposals())
def test_clip_action_keeps_a_safe_proposal_unchanged(args) -> None:
    """Minimal intervention: an integer proposal already inside every limit is returned as is."""
    obs, threads, _, _, _ = args
    lim = l1_limits(obs)
    mask = time_mask(obs, lim, threads)
    rows = np.arange(obs.size)
    d = np.where(mask.any(1), mask.argmax(1), 0)
    p = threads.p_min.copy()
    safe = role_safe(lim, threads.is_buyer)[rows, d]
    budget = np.maximum(lim.b_free, 0) / (p + obs.production_cost)
    cap = np.where(threads.is_buyer, np.minimum(safe, budget), safe)
    q = np.floor(np.minimum(cap, threads.q_max))
    a = clip_action(obs, lim, threads, q, d, p, mask)
    ok = mask.any(1) & (q >= np.maximum(threads.q_min, 1))
    np.testing.assert_array_equal(a.feasible, ok)
    np.testing.assert_array_equal(a.q[ok], q[ok])
    np.testing.assert_array_equal(a.delta[ok], d[ok])
    np.testing.assert_array_equal(a.p, p)


@SETTINGS
@given(obs_threads_proposals())
def test_baseline_follows_the_binding_formula(args) -> None:
    obs, threads, *_ = args
    lim = l1_limits(obs)
    mask = time_mask(obs, lim, threads)
    base = baseline(obs, lim, threads, mask)
    market = market_price(obs, threads.is_buyer)
    for i in range(obs.size):
        masked = np.flatnonzero(mask[i])
        assert base.feasible[i] == bool(len(masked))
        if not len(masked):
            assert base.q[i] == 0
            continue
        d = masked[0]
        assert base.delta[i] == d
        if threads.is_buyer[i]:
            assert np.isclose(base.p[i], BUY_PRICE_FACTOR * market[i])
            want = min(lim.q_safe_buy[i, d] / 2, max(lim.b_free[i], 0) / (BUY_PRICE_FACTOR * market[i]))
            assert np.isclose(base.q[i], want)
            assert base.q[i] <= lim.q_safe_buy[i, d] / 2 + TOL
        else:
            assert np.isclose(base.p[i], SELL_PRICE_FACTOR * market[i])
            assert np.isclose(base.q[i], lim.sellable[i, d] / 2)  # inventory = sellable stock
    # the baseline is the seed, clip() makes it binding-safe
    a = clip_action(obs, lim, threads, base.q, base.delta, base.p, mask)
    _check_clipped(obs, lim, threads, mask, a)


# ------------------------------------------------------------------------------------------------
# Dynamic reservation: L1's invariant holds after any sequence of clipped + reserved actions
# ------------------------------------------------------------------------------------------------
@st.composite
def planning_rounds(draw):
    """One agent (one observation row) and 1..8 threads planned one at a time in a random order."""
    obs = draw(observations(max_rows=1))
    n = draw(st.integers(1, 8))
    rep = obs.take(np.zeros(n, dtype=np.int64))
    threads = draw(threads_for(rep))
    q, d, p = draw(proposals(n))
    order = draw(st.permutations(range(n)))
    return obs, threads, q, d, p, list(order)


def check_invariant(obs0: Observation, work: Observation, bought: float, sold: np.ndarray) -> None:
    """L1's invariant (l1_safety docstring) for row 0 after reservations: (R2) if B_free was ≥ 0,
    it still is, computed from scratch: every committed and reserved purchase and its production
    **and** the worst-case penalty of every unbacked unit can be paid at once; (R1) every day a
    sale was added to is exposed by at most the allowance; the buy side never commits input the
    lines cannot use; and the real engine, with the committed inputs only, is short on each day
    by at most that day's exposure."""
    ref0, ref = reference_limits(obs0, 0), reference_limits(work, 0)
    if ref0["b_free"] >= 0:
        assert ref["b_free"] >= -1e-6, "B_free below zero: the worst-case penalty could not be paid"
    days = np.flatnonzero(sold > 0)
    assert (ref["exposure"][days] <= ref["allowance"] + TOL).all(), "a day exposed beyond the allowance"
    with_sales = obs0.copy()
    with_sales.sales[0] += sold
    in_game = obs0.day[0] + np.arange(K) < obs0.n_steps[0]
    short = simulate(with_sales, 0)["short"][in_game]
    e = reference_limits(with_sales, 0)["exposure"][in_game]
    assert (short <= e + TOL).all()
    if bought > 0:
        days_left = obs0.n_steps[0] - obs0.day[0]
        assert ref0["committed"] + bought <= obs0.n_lines[0] * days_left + TOL


@SETTINGS
@given(planning_rounds())
def test_any_sequence_of_reservations_keeps_the_invariant(args) -> None:
    obs0, threads, q, d, p, order = args
    work = obs0.copy()
    inc = ReservedLimits(obs0)
    bought = 0.0
    sold = np.zeros(K)
    for k in order:
        th = threads.take(np.array([k]))
        lim = l1_limits(work)
        a = clip_action(work, lim, th, q[[k]], d[[k]], p[[k]])
        _check_clipped(work, lim, th, time_mask(work, lim, th), a)
        qq, dd, pp = int(a.q[0]), int(a.delta[0]), int(a.p[0])
        reserve(work, 0, bool(th.is_buyer[0]), qq, dd, pp)
        inc.reserve(bool(th.is_buyer[0]), qq, dd, pp)
        after = l1_limits(work)
        if qq <= 0:  # nothing was reserved, nothing changed
            for f in ("q_safe_buy", "q_safe_sell", "b_free"):
                np.testing.assert_array_equal(getattr(after, f), getattr(lim, f))
            continue
        if th.is_buyer[0]:
            # a purchase takes its quantity off Q_safe, its cost off B_free, and leaves the
            # sellable stock as it was (it is not committed yet)
            np.testing.assert_allclose(after.q_safe_buy, np.maximum(lim.q_safe_buy - qq, 0.0), atol=TOL)
            np.testing.assert_allclose(
                after.b_free, lim.b_free - qq * (pp + obs0.production_cost[0]), rtol=1e-9, atol=1e-6
            )
            np.testing.assert_allclose(after.sellable, lim.sellable, atol=TOL)
            bought += qq
        else:
            # a sale uses that day only (days are independent) and never the buy side
            np.testing.assert_allclose(after.q_safe_buy, lim.q_safe_buy, atol=TOL)
            other = np.arange(K) != dd
            np.testing.assert_allclose(after.sellable[0, other], lim.sellable[0, other], atol=TOL)
            assert after.b_free[0] <= lim.b_free[0] + TOL
            sold[dd] += qq
        check_invariant(obs0, work, bought, sold)
        got = inc.limits()
        for f in ("q_safe_buy", "q_safe_sell", "b_free", "sellable"):
            np.testing.assert_allclose(getattr(got, f), getattr(after, f), atol=1e-6, err_msg=f)
    lim1 = l1_limits(work)
    for a in (lim1.q_safe_buy, lim1.q_safe_sell):
        assert np.isfinite(a).all() and (a >= 0).all()


@pytest.mark.slow  # long (the smaller property tests stay in the default run)
def test_invariant_on_ten_thousand_random_states_with_reservations() -> None:
    """The same invariant on 10⁴ random states (numpy-drawn, so that the count is not left to
    hypothesis), each with a round of 4 clipped + reserved actions of random roles and offers."""
    rng = np.random.default_rng(20261201)
    n_states, checked = 10_000, 0
    for _ in range(n_states):
        obs0 = _numpy_state(rng)
        work = obs0.copy()
        bought, sold = 0.0, np.zeros(K)
        for _ in range(4):
            roles = [r for r, ok in ((True, obs0.can_buy[0] > 0), (False, obs0.can_sell[0] > 0)) if ok]
            buyer = bool(roles[int(rng.integers(len(roles)))])
            th = Threads(
                is_buyer=np.array([buyer]),
                q_min=np.array([float(rng.integers(0, 3))]),
                q_max=np.array([float(rng.integers(3, 40))]),
                t_min=obs0.day.astype(float),
                t_max=obs0.day + float(rng.integers(0, 11)),
                p_min=np.array([float(rng.integers(1, 30))]),
                p_max=np.array([float(rng.integers(30, 60))]),
            )
            q = rng.choice([rng.uniform(-5, 60), np.nan, np.inf, 1e6])
            d = rng.uniform(-2, 14)
            p = rng.uniform(0, 70)
            lim = l1_limits(work)
            a = clip_action(work, lim, th, np.array([q]), np.array([d]), np.array([p]))
            reserve(work, 0, buyer, int(a.q[0]), int(a.delta[0]), int(a.p[0]))
            if a.q[0] > 0:
                if buyer:
                    bought += int(a.q[0])
                else:
                    sold[int(a.delta[0])] += int(a.q[0])
        check_invariant(obs0, work, bought, sold)
        checked += 1
    assert checked == n_states


def _numpy_state(rng: np.random.Generator) -> Observation:
    """One random but valid std observation (the same ranges as the hypothesis strategy)."""
    n_steps = int(rng.integers(2, 121))
    day = (
        int(rng.integers(max(n_steps - K, 0), n_steps))
        if rng.random() < 0.5
        else int(rng.integers(0, n_steps))
    )
    n_lines = int(rng.integers(1, 21))
    level = rng.choice(["first", "middle", "last"])
    first, last = level == "first", level == "last"
    hi = int(rng.choice([1, 5, 30, 200]))
    density = float(rng.choice([0.0, 0.05, 0.2, 0.6]))
    tp_in = round(float(rng.uniform(1, 60)), 3)
    tp_out = round(tp_in + float(rng.uniform(0.5, 40)), 3)
    exo_in = float(rng.integers(0, 3 * n_lines + 1)) if first else 0.0
    exo_out = float(rng.integers(0, 3 * n_lines + 1)) if last else 0.0
    scalars = {
        "day": [day], "n_steps": [n_steps], "n_lines": [n_lines],
        "balance": [float(rng.uniform(-2000, 50000))], "initial_balance": [float(rng.uniform(1, 50000))],
        "inventory_input": [float(rng.integers(0, hi + 1)) * (rng.random() < 0.7)], "inventory_output": [0.0],
        "production_cost": [float(rng.choice([0.0, 1.0, 2.5, 10.0]))],
        "shortfall_penalty": [float(rng.choice([0.0, 0.3, 0.6, 1.0, 3.0]))],
        "trading_price_input": [tp_in], "trading_price_output": [tp_out],
        "exo_input_quantity": [exo_in], "exo_output_quantity": [exo_out],
        "exo_input_price_total": [exo_in * tp_in], "exo_output_price_total": [exo_out * tp_out],
    }  # fmt: skip
    sup = _sparse(rng, 1, density, hi) * (not first)
    sal = _sparse(rng, 1, density, hi) * (not last)
    vectors = {
        "supplies_by_offset": sup, "sales_by_offset": sal,
        "payables_by_offset": sup * tp_in * rng.uniform(0.5, 1.5, (1, K)),
        "receivables_by_offset": sal * tp_out * rng.uniform(0.5, 1.5, (1, K)),
    }  # fmt: skip
    return observation_from_arrays(
        {k: np.array(v, dtype=np.float64) for k, v in scalars.items()},
        vectors,
        np.array([first]),
        np.array([last]),
    )


# ------------------------------------------------------------------------------------------------
# Features and the batch API
# ------------------------------------------------------------------------------------------------
@SETTINGS
@given(observations(max_rows=6))
def test_features_are_finite_and_bounded(obs: Observation) -> None:
    xs, xt = x_static(obs), x_temporal(obs)
    assert xs.shape == (obs.size, 12) and xt.shape == (obs.size, K, 10)
    for x in (xs, xt):
        assert np.isfinite(x).all()
        assert (np.abs(x) <= FEATURE_CLIP).all()


@st.composite
def batch_and_permutation(draw):
    obs, threads, q, d, p = draw(obs_threads_proposals(any_role=True, max_rows=6))
    perm = np.array(draw(st.permutations(range(obs.size))), dtype=np.int64)
    return obs, threads, q, d, p, perm


def _outputs(obs, threads, q, d, p) -> dict[str, np.ndarray]:
    lim = l1_limits(obs)
    mask = time_mask(obs, lim, threads)
    base = baseline(obs, lim, threads, mask)
    a = clip_action(obs, lim, threads, q, d, p, mask)
    return {
        "x_static": x_static(obs),
        "x_temporal": x_temporal(obs),
        "q_safe_buy": lim.q_safe_buy,
        "q_safe_sell": lim.q_safe_sell,
        "b_free": lim.b_free,
        "mask": mask,
        "base_q": base.q,
        "base_delta": base.delta,
        "base_p": base.p,
        "q": a.q,
        "delta": a.delta,
        "p": a.p,
        "feasible": a.feasible,
    }


@SETTINGS
@given(batch_and_permutation())
def test_batch_api_is_order_free_and_row_independent(args) -> None:
    obs, threads, q, d, p, perm = args
    full = _outputs(obs, threads, q, d, p)
    permuted = _outputs(obs.take(perm), threads.take(perm), q[perm], d[perm], p[perm])
    for name, value in full.items():
        np.testing.assert_array_equal(permuted[name], value[perm], err_msg=name)
    for i in range(obs.size):
        idx = np.array([i])
        single = _outputs(obs.take(idx), threads.take(idx), q[idx], d[idx], p[idx])
        for name, value in full.items():
            np.testing.assert_array_equal(single[name][0], value[i], err_msg=f"{name} row {i}")


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_incremental_reserved_limits_equal_recomputed_limits(data) -> None:
    """ReservedLimits (the agent's O(K) update) equals l1_limits after reserve() at every step."""
    obs = data.draw(observations(max_rows=1))
    work = obs.copy()
    inc = ReservedLimits(obs)
    for _ in range(data.draw(st.integers(1, 6))):
        buyer = data.draw(st.booleans())
        q = data.draw(st.integers(0, 15))
        delta = data.draw(st.integers(0, K - 1))
        p = data.draw(st.floats(1.0, 60.0))
        reserve(work, 0, buyer, float(q), delta, p)
        inc.reserve(buyer, float(q), delta, p)
        ref, got = l1_limits(work), inc.limits()
        np.testing.assert_allclose(got.q_safe_buy, ref.q_safe_buy, atol=1e-7)
        np.testing.assert_allclose(got.q_safe_sell, ref.q_safe_sell, atol=1e-7)
        np.testing.assert_allclose(got.b_free, ref.b_free, atol=1e-6)
        np.testing.assert_allclose(got.sellable, ref.sellable, atol=1e-7)


def test_the_safety_counter_judges_an_agreement_at_its_delivery_offset() -> None:
    """Issue 14 item 3: an agreement breaks L1 at *its* δ; a check at δ = 0 alone would miss a
    sale five days ahead that no input backs, and would blame one that inputs do back."""
    from types import SimpleNamespace

    from hrlxf_core.l1_safety import agreement_breaks_l1

    def after_sale(q: int, delta: int, supplies_at: int = 0) -> tuple[Observation, SimpleNamespace]:
        n = 10.0
        sup = np.zeros((1, K))
        sup[0, delta] = supplies_at
        sal = np.zeros((1, K))
        sal[0, delta] = q  # the AWI already holds the agreement when the callback fires
        scalars = {
            "day": [0], "n_steps": [50], "n_lines": [n], "balance": [1e6], "initial_balance": [1e6],
            "inventory_input": [0], "inventory_output": [0], "production_cost": [1.0],
            "shortfall_penalty": [1.0], "trading_price_input": [10.0], "trading_price_output": [20.0],
            "exo_input_quantity": [0], "exo_output_quantity": [0],
            "exo_input_price_total": [0.0], "exo_output_price_total": [0.0],
        }  # fmt: skip
        vectors = {
            "supplies_by_offset": sup, "sales_by_offset": sal,
            "payables_by_offset": sup * 10.0, "receivables_by_offset": sal * 20.0,
        }  # fmt: skip
        obs = observation_from_arrays(
            {k: np.array(v, dtype=np.float64) for k, v in scalars.items()}, vectors,
            np.array([False]), np.array([False]),
        )  # fmt: skip
        contract = SimpleNamespace(
            agreement={"quantity": q, "time": delta, "unit_price": 20.0},
            annotation={"buyer": "b", "seller": "me"},
        )
        return obs, contract

    # middle level: a day may be sold 0.25 lines (2.5 units) beyond its sellable stock
    assert agreement_breaks_l1(*after_sale(q=5, delta=5), "me")  # unbacked, beyond the allowance
    assert not agreement_breaks_l1(*after_sale(q=2, delta=5), "me")  # within the allowance
    assert not agreement_breaks_l1(*after_sale(q=5, delta=5, supplies_at=10), "me")  # inputs back it
    assert agreement_breaks_l1(*after_sale(q=5, delta=0), "me")  # and the same at δ = 0
