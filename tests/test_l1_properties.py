"""Property tests of L1 (DESIGN §6.2): an action that survives clip() is safe by construction, and
so is any sequence of dynamically reserved actions; the features of any valid observation are
finite and bounded; the batch API does not depend on the order of its rows.

The physical reference used throughout is a plain day-by-day loop over the factory (produce as
early as inputs and lines allow; output made on day d can leave from day d + 1), written here
independently of the closed-form (Lindley) code in ``hrlxf_core.state``.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrlxf_core.l1_safety import (
    BUY_PRICE_FACTOR,
    SELL_PRICE_FACTOR,
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
        "inventory_output": rng.integers(0, hi + 1, n) * (rng.random(n) < 0.7),
        "production_cost": np.array([draw(st.sampled_from([0.0, 1.0, 2.5, 10.0])) for _ in range(n)]),
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
# The reference factory, one day at a time
# ------------------------------------------------------------------------------------------------
def simulate(obs: Observation, row: int) -> dict[str, np.ndarray | float]:
    """Greedy production with committed inputs only, day by day until the end of the game.

    Returns plan[δ], input stock after day δ, output stock on day δ after that day's deliveries
    (before that day's production, which can only leave on a later day), and the input left
    unproduced when the game ends."""
    n, day, steps = obs.n_lines[row], obs.day[row], obs.n_steps[row]
    inb = obs.supplies[row].copy()
    inb[0] += obs.exo_input_quantity[row]
    outb = obs.sales[row].copy()
    outb[0] += obs.exo_output_quantity[row]
    w, stock = float(obs.inventory_input[row]), float(obs.inventory_output[row])
    plan, w_at, stock_at = np.zeros(K), np.zeros(K), np.zeros(K)
    for d in range(int(max(K, steps - day))):
        cap = n if day + d < steps else 0.0
        w += inb[d] if d < K else 0.0
        made = min(w, cap)
        w -= made
        if d < K:
            stock -= outb[d]
            plan[d], w_at[d], stock_at[d] = made, w, stock
        stock += made
    return {"plan": plan, "w": w_at, "stock": stock_at, "leftover": w}


# ------------------------------------------------------------------------------------------------
# l1_limits against the definitions
# ------------------------------------------------------------------------------------------------
@SETTINGS
@given(observations())
def test_limits_match_their_definitions(obs: Observation) -> None:
    lim = l1_limits(obs)
    plan, w = production_plan(obs)
    for i in range(obs.size):
        ref = simulate(obs, i)
        np.testing.assert_allclose(plan[i], ref["plan"], atol=TOL)
        np.testing.assert_allclose(w[i], ref["w"], atol=TOL)
        left = obs.n_steps[i] - obs.day[i] - np.arange(K)
        in_game = left > 0
        committed = obs.inventory_input[i] + obs.supplies[i].sum() + obs.exo_input_quantity[i]
        np.testing.assert_allclose(
            lim.q_safe_buy[i],
            np.where(in_game, np.maximum(obs.n_lines[i] * left - committed, 0), 0),
            atol=TOL,
        )
        future_min = np.minimum.accumulate(ref["stock"][::-1])[::-1]
        np.testing.assert_allclose(
            lim.q_safe_sell[i], np.where(in_game, np.maximum(future_min, 0), 0), atol=TOL
        )
        b = (
            obs.balance[i]
            - obs.payables[i].sum()
            - obs.exo_input_value[i]
            - obs.production_cost[i] * committed
        )
        np.testing.assert_allclose(lim.b_free[i], b, rtol=1e-9, atol=TOL)
    for a in (lim.q_safe_buy, lim.q_safe_sell):
        assert np.isfinite(a).all() and (a >= 0).all()
    assert np.isfinite(lim.b_free).all()
    # a purchase safe at δ is safe earlier (more days to produce it); a sale safe at δ is safe
    # later, as long as the game lasts (more time to produce, the same promises in the way)
    assert (np.diff(lim.q_safe_buy, axis=1) <= TOL).all()
    in_game = (obs.day[:, None] + np.arange(K)[None, :]) < obs.n_steps[:, None]
    assert (np.diff(lim.q_safe_sell, axis=1)[in_game[:, 1:]] >= -TOL).all()


@SETTINGS
@given(observations())
def test_sell_safe_never_exceeds_inputs_that_are_there(obs: Observation) -> None:
    """Output promised by δ'' ≤ output stock + what can be made before δ'' (inputs there by then,
    lines of the days before) − output already promised by δ'', for every δ'' ≥ δ."""
    lim = l1_limits(obs)
    for i in range(obs.size):
        inb = obs.supplies[i].copy()
        inb[0] += obs.exo_input_quantity[i]
        outb = obs.sales[i].copy()
        outb[0] += obs.exo_output_quantity[i]
        in_game = obs.day[i] + np.arange(K) < obs.n_steps[i]
        # inputs present strictly before δ'' and lines of the in-game days strictly before δ''
        inputs_before = obs.inventory_input[i] + np.concatenate([[0.0], np.cumsum(inb)[:-1]])
        lines_before = obs.n_lines[i] * np.concatenate([[0.0], np.cumsum(in_game)[:-1]])
        bound = obs.inventory_output[i] + np.minimum(inputs_before, lines_before) - np.cumsum(outb)
        for d in range(K):
            assert lim.q_safe_sell[i, d] <= max(bound[d:].min(), 0.0) + TOL


@SETTINGS
@given(observations(no_inputs=True))
def test_sell_safe_without_inputs_is_stock_minus_promises(obs: Observation) -> None:
    """With no input inventory and no inbound commitments nothing can be produced: the sell-side
    safe quantity at any δ is at most the output inventory minus every committed outbound unit."""
    lim = l1_limits(obs)
    outb = obs.sales.copy()
    outb[:, 0] += obs.exo_output_quantity
    assert (production_plan(obs)[0] == 0).all()
    cap = np.maximum(obs.inventory_output - outb.sum(1), 0.0)
    assert (lim.q_safe_sell <= cap[:, None] + TOL).all()
    assert (lim.q_safe_sell <= np.maximum(obs.inventory_output[:, None] - np.cumsum(outb, 1), 0) + TOL).all()


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
            assert np.isclose(base.q[i], obs.inventory_output[i] / 2)
    # the baseline is the seed, clip() makes it binding-safe
    a = clip_action(obs, lim, threads, base.q, base.delta, base.p, mask)
    _check_clipped(obs, lim, threads, mask, a)


# ------------------------------------------------------------------------------------------------
# Dynamic reservation: any sequence of clipped + reserved actions never over-commits
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


def _stock_with_sales(obs: Observation, sold: np.ndarray) -> np.ndarray:
    """Output stock per δ with only the committed inputs of ``obs`` and ``sold`` more outbound."""
    o = obs.copy()
    o.sales[0] += sold
    return simulate(o, 0)["stock"]


@SETTINGS
@given(planning_rounds())
def test_any_sequence_of_reservations_never_over_commits(args) -> None:
    obs0, threads, q, d, p, order = args
    work = obs0.copy()
    lim0 = l1_limits(obs0)
    ref0 = simulate(obs0, 0)
    cost = obs0.production_cost[0]
    n, days_left = obs0.n_lines[0], obs0.n_steps[0] - obs0.day[0] - np.arange(K)
    committed0 = obs0.inventory_input[0] + obs0.supplies[0].sum() + obs0.exo_input_quantity[0]
    bought = spent = 0.0
    sold = np.zeros(K)
    for k in order:
        th = threads.take(np.array([k]))
        lim = l1_limits(work)
        a = clip_action(work, lim, th, q[[k]], d[[k]], p[[k]])
        _check_clipped(work, lim, th, time_mask(work, lim, th), a)
        qq, dd, pp = int(a.q[0]), int(a.delta[0]), int(a.p[0])
        reserve(work, 0, bool(th.is_buyer[0]), qq, dd, pp)
        after = l1_limits(work)
        if qq <= 0:  # nothing was reserved, nothing changed
            for f in ("q_safe_buy", "q_safe_sell", "b_free"):
                np.testing.assert_array_equal(getattr(after, f), getattr(lim, f))
            continue
        if th.is_buyer[0]:
            # a reserved purchase takes its quantity off Q_safe wherever it was binding, its cost
            # off B_free, and leaves the sell side exactly as it was (it is not committed yet)
            np.testing.assert_allclose(after.q_safe_buy, np.maximum(lim.q_safe_buy - qq, 0.0), atol=TOL)
            np.testing.assert_allclose(after.b_free, lim.b_free - qq * (pp + cost), rtol=1e-9, atol=TOL)
            np.testing.assert_allclose(after.q_safe_sell, lim.q_safe_sell, atol=TOL)
        else:
            # a reserved sale takes its quantity off the sell side from its δ on (earlier δ keep
            # at most what is left after it) and leaves the buy side and the budget alone
            np.testing.assert_allclose(after.q_safe_buy, lim.q_safe_buy, atol=TOL)
            np.testing.assert_allclose(after.b_free, lim.b_free, atol=TOL)
            in_game = obs0.day[0] + np.arange(dd, K) < obs0.n_steps[0]
            np.testing.assert_allclose(
                after.q_safe_sell[0, dd:], np.where(in_game, lim.q_safe_sell[0, dd:] - qq, 0.0), atol=TOL
            )
            assert (after.q_safe_sell[0, :dd] <= after.q_safe_sell[0, dd] + TOL).all()
        if th.is_buyer[0]:
            bought += qq
            spent += qq * (pp + cost)
            # every purchase, with all that was committed or reserved before it, fits in what the
            # lines can make from its delivery day to the end of the game
            assert committed0 + bought <= n * days_left[dd] + TOL
            assert bought <= lim0.q_safe_buy[0, dd] + TOL
        else:
            sold[dd] += qq
    lim1 = l1_limits(work)
    for a in (lim1.q_safe_buy, lim1.q_safe_sell):
        assert np.isfinite(a).all() and (a >= 0).all()
    # budget: each purchase was paid for (price and production cost) out of the free budget
    np.testing.assert_allclose(lim1.b_free[0], lim0.b_free[0] - spent, rtol=1e-9, atol=1e-6)
    assert lim1.b_free[0] >= min(lim0.b_free[0], 0.0) - TOL
    if lim0.b_free[0] >= 0:
        assert lim1.b_free[0] >= -TOL
    # buys: no reserved input is ever wasted (what cannot be produced by the end of the game)
    assert simulate(work, 0)["leftover"] <= ref0["leftover"] + TOL
    assert bought <= lim0.q_safe_buy[0].max() + TOL
    # sells are backed by the committed inputs only (a reserved purchase may still be refused):
    # the output stock never goes below zero where it was not already below zero before
    stock1 = _stock_with_sales(obs0, sold)
    assert (stock1 >= np.minimum(ref0["stock"], 0.0) - TOL).all()
    if sold.any():
        first = int(np.flatnonzero(sold)[0])
        # from the first sale on, every unit promised by δ'' is in stock or made before δ''
        assert (stock1[first:] >= -TOL).all()
        assert sold.sum() <= max(ref0["stock"][-1], 0.0) + TOL


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
    from hrlxf_core.l1_safety import ReservedLimits

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
