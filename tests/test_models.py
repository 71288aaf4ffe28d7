"""The neural layers L2/L3/L4 and the rule-based layers: shapes, bounded outputs, masks,
permutation equivariance, one optimisation step, checkpoints, and torch-free input builders.

Fast (a few seconds): tiny random batches, fixed seeds, CPU.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import polars as pl
import pytest
import torch

from hrlxf_core.constants import N_OFFSETS
from hrlxf_core.expert_inputs import N_EXPERT
from hrlxf_core.heuristics import (
    heuristic_l2_goal,
    heuristic_l3_residual,
    heuristic_l4_alpha,
    heuristic_l4_alpha_batch,
)
from hrlxf_core.l4_features import N_GLOBAL, N_THREAD, THREAD_FEATURE_NAMES
from hrlxf_core.labels import GOAL_DIM, PRICE_RATIO_RANGE, QUANTITY_LABEL_MAX
from hrlxf_core.models.common import (
    as_tensors,
)
from hrlxf_core.models.l2 import PRICE_DIMS, QUANTITY_DIMS, L2Config, L2Net, l2_nll
from hrlxf_core.models.l3 import L3Config, L3Net, l3_bc_loss
from hrlxf_core.models.l3_inputs import (
    HIST_FEATURES,
    HIST_LEN,
    L3_CONTEXT_NAMES,
    N_CONTEXT,
    OP_ACCEPT,
    OP_END,
    OP_OFFER,
    RESIDUAL_BOUNDS,
    l3_context,
    l3_model_inputs,
    l3_targets,
    op_mask_from,
    residual_to_offer,
)
from hrlxf_core.models.l4 import L4Config, L4Net, l4_distill_loss
from hrlxf_core.normalization import FEATURE_CLIP
from hrlxf_core.state import N_STATIC, N_TEMPORAL, K, Observation, observation_from_arrays

F = {n: i for i, n in enumerate(THREAD_FEATURE_NAMES)}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ------------------------------------------------------------------------------------------------
# Random inputs
# ------------------------------------------------------------------------------------------------
def l2_batch(b: int = 8, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    xs = torch.randn(b, N_STATIC, generator=g) * scale
    xt = torch.randn(b, K, N_TEMPORAL, generator=g) * scale
    xr = torch.randint(0, 2, (b, 2), generator=g).float()
    return xs, xt, xr


def micro_columns(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random micro-sample columns in MICRO_SCHEMA units (raw quantities and prices)."""
    rng = np.random.default_rng(seed)
    n_lines = rng.integers(1, 20, n).astype(np.float64)
    market = rng.uniform(5, 60, n)
    hist_len = rng.integers(0, HIST_LEN + 1, n)
    hist = rng.normal(size=(n, HIST_LEN, HIST_FEATURES))
    hist[np.arange(HIST_LEN)[None, :] < (HIST_LEN - hist_len)[:, None]] = 0.0
    tm = rng.random((n, N_OFFSETS)) < 0.3
    tm[: max(n // 4, 1)] = False  # some rows without any feasible δ
    has_offer = rng.random(n) < 0.7
    has_counter = rng.random(n) < 0.7
    delta_label = np.where(has_counter, rng.integers(0, 11, n), -1)
    return {
        "goal": rng.uniform(0, 3, (n, GOAL_DIM)),
        "base_q": rng.uniform(0, 200, n),
        "base_delta": rng.integers(0, N_OFFSETS, n),
        "base_p": market * 0.95,
        "x_role": np.eye(2)[rng.integers(0, 2, n)],
        "relative_time": rng.random(n),
        "round": rng.integers(0, 21, n),
        "x_static": rng.normal(size=(n, N_STATIC)),
        "q_safe": rng.uniform(0, 500, (n, N_OFFSETS)),
        "b_free": rng.uniform(-1e4, 1e5, n),
        "has_offer": has_offer,
        "recv_q": np.where(has_offer, rng.integers(1, 20, n), 0),
        "recv_delta": np.where(has_offer, rng.integers(0, 11, n), 0),
        "recv_p": np.where(has_offer, market * rng.uniform(0.8, 1.2, n), 0),
        "n_lines": n_lines,
        "market_price": market,
        "hist": hist.reshape(n, -1),
        "hist_len": hist_len,
        "x_expert": rng.normal(size=(n, N_EXPERT)),
        "time_mask": tm,
        "op_label": np.where(has_counter, OP_OFFER, np.where(has_offer, OP_ACCEPT, OP_END)),
        "has_counter": has_counter,
        "res_q": rng.normal(0, 5, n) * n_lines,
        "res_p": rng.normal(0, 0.05, n) * market,
        "delta_label": delta_label,
    }


def l3_batch(n: int = 32, seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    cols = micro_columns(n, seed)
    return as_tensors(l3_model_inputs(cols)), as_tensors(l3_targets(cols))


def l3_forward(net: L3Net, inp: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return net(inp["hist"], inp["hist_len"], inp["context"], inp["time_mask"], inp["op_mask"])


def l4_batch(b: int = 6, t: int = 7, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, t, N_THREAD, generator=g)
    counts = torch.tensor([(i % t) + 1 for i in range(b)])  # 1..t threads
    valid = torch.arange(t)[None, :] < counts[:, None]
    glob = torch.randn(b, N_GLOBAL, generator=g)
    return feats, valid, glob


def random_obs(n: int = 16, seed: int = 0) -> Observation:
    rng = np.random.default_rng(seed)
    n_steps = rng.integers(5, 100, n)
    day = rng.integers(0, n_steps)
    n_lines = rng.integers(1, 15, n)
    level = rng.integers(0, 3, n)
    first, last = level == 0, level == 2
    tp_in = rng.uniform(5, 30, n)

    def sparse() -> np.ndarray:
        return (rng.random((n, K)) < 0.15) * rng.integers(1, 10, (n, K)).astype(float)

    supplies, sales = sparse() * (~first)[:, None], sparse() * (~last)[:, None]
    scalars = {
        "day": day,
        "n_steps": n_steps,
        "n_lines": n_lines,
        "balance": rng.uniform(-500, 20_000, n),
        "initial_balance": rng.uniform(1_000, 20_000, n),
        "inventory_input": rng.integers(0, 30, n),
        "inventory_output": rng.integers(0, 30, n),
        "production_cost": rng.uniform(0, 5, n),
        "shortfall_penalty": rng.uniform(0, 2, n),
        "trading_price_input": tp_in,
        "trading_price_output": tp_in + rng.uniform(1, 20, n),
        "exo_input_quantity": np.where(first, rng.integers(0, 20, n), 0),
        "exo_output_quantity": np.where(last, rng.integers(0, 20, n), 0),
        "exo_input_price_total": np.where(first, 100.0, 0.0),
        "exo_output_price_total": np.where(last, 100.0, 0.0),
    }
    vectors = {
        "supplies_by_offset": supplies,
        "sales_by_offset": sales,
        "payables_by_offset": supplies * tp_in[:, None],
        "receivables_by_offset": sales * 20.0,
    }
    return observation_from_arrays(scalars, vectors, first, last)


# ------------------------------------------------------------------------------------------------
# L2
# ------------------------------------------------------------------------------------------------
def test_l2_shapes_and_flat_temporal_input() -> None:
    net = L2Net()
    xs, xt, xr = l2_batch(5)
    mean, log_std = net(xs, xt, xr)
    assert mean.shape == log_std.shape == (5, GOAL_DIM)
    mean2, _ = net(xs, xt.reshape(5, -1), xr)  # MACRO_SCHEMA stores x_temporal flat, δ-major
    torch.testing.assert_close(mean, mean2)


def test_l2_init_is_a_sane_goal() -> None:
    mean, log_std = L2Net()(*l2_batch(16))
    q, p = mean[:, list(QUANTITY_DIMS)], mean[:, list(PRICE_DIMS)]
    assert (q - L2Config().init_quantity).abs().max() < 0.5
    assert (p - 1.0).abs().max() < 0.1
    assert log_std.abs().max() < 0.5


@pytest.mark.parametrize("scale", [1.0, 1e3, -1e3, 1e6])
def test_l2_outputs_are_bounded_for_extreme_inputs(scale: float) -> None:
    net = L2Net()
    with torch.no_grad():  # make the net itself extreme as well
        for prm in net.parameters():
            prm.mul_(20.0)
    mean, log_std = net(*l2_batch(8, scale))
    assert torch.isfinite(mean).all() and torch.isfinite(log_std).all()
    q, p = mean[:, list(QUANTITY_DIMS)], mean[:, list(PRICE_DIMS)]
    assert q.min() >= 0.0 and q.max() <= QUANTITY_LABEL_MAX
    assert p.min() >= PRICE_RATIO_RANGE[0] and p.max() <= PRICE_RATIO_RANGE[1]
    cfg = net.config
    assert log_std.min() >= cfg.log_std_min and log_std.max() <= cfg.log_std_max


def test_l2_nll_ignores_masked_entries() -> None:
    mean, log_std = torch.rand(4, GOAL_DIM), torch.zeros(4, GOAL_DIM)
    target = torch.rand(4, GOAL_DIM)
    mask = torch.ones(4, GOAL_DIM)
    mask[:, 2::4] = 0  # Q_sell of every bucket masked (e.g. last level cannot sell)
    loss = l2_nll(mean, log_std, target, mask)
    target2 = target.clone()
    target2[mask == 0] = 1e6
    assert torch.isclose(loss, l2_nll(mean, log_std, target2, mask))
    ref = 0.5 * (target - mean) ** 2 + 0.5 * np.log(2 * np.pi)
    assert torch.isclose(loss, ref[mask > 0].mean())


def test_l2_one_step_lowers_loss() -> None:
    net = L2Net()
    xs, xt, xr = l2_batch(16)
    target = torch.rand(16, GOAL_DIM) * 2
    mask = (torch.rand(16, GOAL_DIM) < 0.8).float()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    before = l2_nll(*net(xs, xt, xr), target, mask)
    opt.zero_grad()
    before.backward()
    opt.step()
    assert l2_nll(*net(xs, xt, xr), target, mask) < before


# ------------------------------------------------------------------------------------------------
# L3
# ------------------------------------------------------------------------------------------------
def test_l3_shapes_and_zero_residual_at_init() -> None:
    inp, _ = l3_batch(10)
    out = l3_forward(L3Net(), inp)
    assert out["op_logits"].shape == (10, 3)
    assert out["residual_mean"].shape == out["residual_log_std"].shape == (10, 2)
    assert out["delta_logits"].shape == (10, N_OFFSETS)
    assert out["value"].shape == (10,)
    # cold start = the L1 baseline (seed §1.1)
    assert torch.equal(out["residual_mean"], torch.zeros(10, 2))


def test_l3_masks_are_respected_and_finite() -> None:
    net = L3Net()
    with torch.no_grad():  # large logits, so a wrong mask would show up in argmax
        for prm in net.parameters():
            prm.mul_(5.0)
    inp, _ = l3_batch(64, seed=3)
    inp["op_mask"][0] = False  # a fully masked op row
    out = l3_forward(net, inp)
    for k in ("op_logits", "delta_logits", "residual_mean", "residual_log_std", "value"):
        assert torch.isfinite(out[k]).all(), k
    assert torch.isfinite(torch.softmax(out["op_logits"], -1)).all()
    assert torch.isfinite(torch.softmax(out["delta_logits"], -1)).all()
    tm, om = inp["time_mask"], inp["op_mask"]
    rows = torch.arange(64)
    has_delta = tm.any(1)
    assert (~has_delta).any() and has_delta.any()
    assert tm[rows, out["delta_logits"].argmax(-1)][has_delta].all()
    has_op = om.any(1)
    assert om[rows, out["op_logits"].argmax(-1)][has_op].all()
    # ACCEPT infeasible without an offer, OFFER infeasible without a δ in the mask
    assert not om[~torch.as_tensor(micro_columns(64, 3)["has_offer"]), OP_ACCEPT].any()
    assert not om[1:][~has_delta[1:], OP_OFFER].any()
    assert om[1:, OP_END].all()
    act = net.act(inp["hist"], inp["hist_len"], inp["context"], tm, om)
    assert tm[rows, act["delta"]][has_delta].all()
    assert act["residual"].abs().max(0).values.le(torch.tensor(RESIDUAL_BOUNDS)).all()


def test_l3_ignores_padded_history() -> None:
    net = L3Net().eval()
    inp, _ = l3_batch(16, seed=4)
    out = l3_forward(net, inp)
    junk = dict(inp)
    pad = torch.arange(HIST_LEN)[None, :] < (HIST_LEN - inp["hist_len"])[:, None]
    junk["hist"] = torch.where(pad[..., None], torch.full_like(inp["hist"], 7.0), inp["hist"])
    out2 = l3_forward(net, junk)
    for k in ("op_logits", "delta_logits", "residual_mean", "value"):
        torch.testing.assert_close(out[k], out2[k])


def test_l3_loss_skips_infeasible_labels() -> None:
    net = L3Net()
    inp, tg = l3_batch(32, seed=5)
    # expert δ outside the L1 mask, and expert OFFER where no δ is feasible: no 1e9 losses
    tg["delta_label"] = torch.where(tg["has_counter"], torch.full_like(tg["delta_label"], 40), -1)
    inp["time_mask"][:, 40] = False
    inp["op_mask"][:8, OP_OFFER] = False
    tg["op_label"][:8] = OP_OFFER
    out = l3_forward(net, inp)
    loss, parts = l3_bc_loss(out, tg)
    assert torch.isfinite(loss) and loss < 100
    assert parts["delta_rows"] == 0 and parts["op_rows"] <= 24
    # zero AWR weights silence the policy terms; returns add the value term
    lw, pw = l3_bc_loss(out, tg, weights=torch.zeros(32))
    assert lw.item() == 0.0
    lv, pv = l3_bc_loss(out, {**tg, "returns": torch.ones(32)})
    assert "value_mse" in pv and lv > loss
    # raw residual columns give the same loss as the normalised target
    cols = micro_columns(32, 5)
    raw = {k: v for k, v in tg.items() if k != "residual_target"}
    raw.update(as_tensors({k: cols[k] for k in ("res_q", "res_p", "n_lines", "market_price")}))
    torch.testing.assert_close(l3_bc_loss(out, raw)[0], loss)


def test_l3_one_step_lowers_loss() -> None:
    net = L3Net()
    inp, tg = l3_batch(32, seed=6)
    tg["returns"] = torch.randn(32)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    before, _ = l3_bc_loss(l3_forward(net, inp), tg)
    opt.zero_grad()
    before.backward()
    opt.step()
    after, _ = l3_bc_loss(l3_forward(net, inp), tg)
    assert after < before


def test_l3_context_is_finite_bounded_and_frame_compatible() -> None:
    cols = micro_columns(200, seed=7)
    cols["b_free"][:3] = [np.inf, -np.inf, np.nan]
    cols["n_lines"][3] = 0.0
    cols["market_price"][4] = 0.0
    ctx = l3_context(cols)
    assert ctx.shape == (200, N_CONTEXT) == (200, len(L3_CONTEXT_NAMES))
    assert ctx.dtype == np.float32 and np.isfinite(ctx).all()
    assert np.abs(ctx).max() <= FEATURE_CLIP
    ok = np.ones(200, bool)
    ok[:5] = False
    assert np.abs(ctx[ok]).mean() < 2.0  # O(1)
    frame = pl.DataFrame({k: v for k, v in cols.items()})
    np.testing.assert_array_equal(l3_context(frame), ctx)


def test_op_mask_and_residual_inverse() -> None:
    m = op_mask_from(np.array([True, False, True]), np.array([[True, False], [False, False], [False, False]]))
    assert m.tolist() == [[True, True, True], [False, False, True], [True, False, True]]
    assert op_mask_from(np.array([False]), np.array([True])).tolist() == [[False, True, True]]
    cols = micro_columns(20, seed=8)
    cols["res_q"] = np.clip(cols["res_q"], -10 * cols["n_lines"], 10 * cols["n_lines"])
    t = l3_targets(cols)["residual_target"]
    q, p = residual_to_offer(t, cols["base_q"], cols["base_p"], cols["n_lines"], cols["market_price"])
    np.testing.assert_allclose(q, cols["base_q"] + cols["res_q"], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(p, cols["base_p"] + cols["res_p"], rtol=1e-5, atol=1e-3)


# ------------------------------------------------------------------------------------------------
# L4
# ------------------------------------------------------------------------------------------------
def test_l4_variable_thread_counts() -> None:
    net = L4Net().eval()
    feats, valid, glob = l4_batch(6, 7)
    alpha = net(feats, valid, glob)
    assert alpha.shape == (6, 7)
    assert torch.all(alpha[~valid] == 0.0)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(6))
    assert alpha[0, 0] == 1.0 and valid[0].sum() == 1  # one thread → α = 1
    # padding content (even NaN) never reaches valid threads
    junk = torch.where(valid[..., None], feats, torch.full_like(feats, float("nan")))
    torch.testing.assert_close(net(junk, valid, glob), alpha)
    # a row's α does not depend on how much padding follows it
    b = 3
    n = int(valid[b].sum())
    alone = net(feats[b : b + 1, :n], valid[b : b + 1, :n], glob[b : b + 1])
    torch.testing.assert_close(alone[0], alpha[b, :n], atol=1e-6, rtol=1e-5)
    # an all-padding row gives zeros, not NaN
    empty = net(feats[:1], torch.zeros(1, 7, dtype=torch.bool), glob[:1])
    assert torch.equal(empty, torch.zeros(1, 7))


def test_l4_is_permutation_equivariant() -> None:
    net = L4Net().eval()
    feats, _, glob = l4_batch(4, 9, seed=2)
    valid = torch.ones(4, 9, dtype=torch.bool)
    valid[1, 6:] = False
    alpha = net(feats, valid, glob)
    for seed in range(3):
        perm = torch.randperm(9, generator=torch.Generator().manual_seed(seed))
        alpha_p = net(feats[:, perm], valid[:, perm], glob)
        torch.testing.assert_close(alpha_p, alpha[:, perm], atol=1e-6, rtol=0)


def test_l4_distill_loss_and_one_step() -> None:
    net = L4Net()
    feats, valid, glob = l4_batch(8, 6, seed=3)
    teacher = torch.as_tensor(heuristic_l4_alpha_batch(feats.numpy(), valid.numpy(), glob.numpy())).float()
    loss = l4_distill_loss(net(feats, valid, glob), teacher, valid)
    assert torch.isfinite(loss) and loss >= 0
    assert l4_distill_loss(teacher, teacher, valid).abs() < 1e-6  # KL(t‖t) = 0
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert l4_distill_loss(net(feats, valid, glob), teacher, valid) < loss


# ------------------------------------------------------------------------------------------------
# Heuristics
# ------------------------------------------------------------------------------------------------
def test_heuristic_l4_teacher_is_equivariant_normalised_deterministic() -> None:
    rng = np.random.default_rng(0)
    for t in (1, 2, 5, 12):
        feats = rng.normal(size=(t, N_THREAD))
        feats[:, F["is_buyer"]] = rng.integers(0, 2, t)
        feats[:, F["is_seller"]] = 1 - feats[:, F["is_buyer"]]
        glob = rng.normal(size=N_GLOBAL)
        alpha = heuristic_l4_alpha(feats, glob)
        assert alpha.shape == (t,) and np.all(alpha > 0)
        assert abs(alpha.sum() - 1.0) < 1e-12
        np.testing.assert_array_equal(alpha, heuristic_l4_alpha(feats, glob))
        perm = rng.permutation(t)
        np.testing.assert_allclose(heuristic_l4_alpha(feats[perm], glob), alpha[perm], atol=1e-12)
    assert heuristic_l4_alpha(np.zeros((0, N_THREAD)), np.zeros(N_GLOBAL)).shape == (0,)


def test_heuristic_l4_teacher_prefers_a_better_offer_and_batches_consistently() -> None:
    feats = np.zeros((2, N_THREAD))
    feats[:, F["is_buyer"]] = 1.0
    feats[:, F["has_offer"]] = 1.0
    feats[:, F["offer_price"]] = [0.9, 1.1]  # buying: 10 % below market beats 10 % above
    glob = np.zeros(N_GLOBAL)
    alpha = heuristic_l4_alpha(feats, glob)
    assert alpha[0] > alpha[1]
    fb, valid, gb = (x.numpy().astype(np.float64) for x in l4_batch(5, 4, seed=9))
    valid = valid.astype(bool)
    batch = heuristic_l4_alpha_batch(fb, valid, gb)
    assert np.all(batch[~valid] == 0.0)
    for i in range(5):
        n = valid[i].sum()
        np.testing.assert_allclose(batch[i, :n], heuristic_l4_alpha(fb[i, :n], gb[i]), atol=1e-12)


def test_heuristic_l2_goal_is_bounded_and_respects_roles() -> None:
    obs = random_obs(64, seed=1)
    goal = heuristic_l2_goal(obs)
    assert goal.shape == (64, GOAL_DIM) and np.isfinite(goal).all()
    q, p = goal[:, list(QUANTITY_DIMS)], goal[:, list(PRICE_DIMS)]
    assert q.min() >= 0 and q.max() <= QUANTITY_LABEL_MAX
    assert p.min() >= PRICE_RATIO_RANGE[0] and p.max() <= PRICE_RATIO_RANGE[1]
    assert np.all(goal[obs.can_buy == 0][:, 0::4] == 0)  # first level: no buying
    assert np.all(goal[obs.can_sell == 0][:, 2::4] == 0)  # last level: no selling
    assert (q > 0).any()


def test_heuristic_l3_residual_concedes_with_time() -> None:
    args = dict(base_q=np.full(3, 10.0), base_p=np.full(3, 95.0), recv_q=np.full(3, 4.0))
    args |= dict(recv_p=np.full(3, 110.0), n_lines=np.full(3, 5.0), market=np.full(3, 100.0))
    r = heuristic_l3_residual(
        has_offer=np.array([True, True, False]), relative_time=np.array([0.2, 0.9, 0.9]), **args
    )
    assert r.shape == (3, 2)
    assert 0 < r[0, 1] < r[1, 1] <= 0.15  # toward the partner's price, more when late
    assert r[1, 0] < 0  # toward the partner's smaller quantity
    assert np.all(r[2] == 0)  # no offer: the baseline


# ------------------------------------------------------------------------------------------------
# Checkpoints, schema, torch-free inputs
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "model_cls", "config_cls", "config"),
    [
        ("l2", L2Net, L2Config, L2Config(conv_dilations=(1, 3))),
        ("l3", L3Net, L3Config, L3Config(n_layers=1)),
        ("l4", L4Net, L4Config, L4Config(d_model=32)),
    ],
)
def test_checkpoint_round_trip_and_schema_guard(tmp_path, kind, model_cls, config_cls, config) -> None:
    import dataclasses

    from hrlxf_core.training.checkpoint import (
        CHECKPOINT_FORMAT,
        CheckpointError,
        feature_schema,
        load_model,
        save_checkpoint,
    )

    model = model_cls(config)
    path = tmp_path / "m.pt"
    payload = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": model.state_dict(),
        "config": dataclasses.asdict(config),
        "schema": feature_schema(kind),
        "metrics": {"loss": 1.0},
    }
    save_checkpoint(path, payload)
    loaded, ck = load_model(path, kind, model_cls, config_cls)
    assert loaded.config == config and ck["metrics"] == {"loss": 1.0}
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    payload["schema"]["normalization"]["PRICE_NORM"] = 1.0
    save_checkpoint(path, payload)
    with pytest.raises(CheckpointError, match=r"m.pt: feature schema differs.*PRICE_NORM"):
        load_model(path, kind, model_cls, config_cls)
    # a checkpoint of another shape: the message names the tensor and both shapes
    other = dataclasses.replace(config, **({"conv_channels": 16} if kind == "l2" else {"d_model": 48}))
    payload = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": model_cls(other).state_dict(),
        "config": dataclasses.asdict(config),
        "schema": feature_schema(kind),
    }
    save_checkpoint(path, payload)
    with pytest.raises(
        CheckpointError, match=r"m.pt: checkpoint does not fit the model: tensor .* has shape"
    ):
        load_model(path, kind, model_cls, config_cls)
    other_kind = "l3" if kind != "l3" else "l2"
    with pytest.raises(
        CheckpointError, match=f"field 'schema.kind' is '{kind}', expected a '{other_kind}' checkpoint"
    ):
        load_model(path, other_kind, model_cls, config_cls)


def test_input_builders_do_not_import_torch() -> None:
    code = (
        "import sys; import hrlxf_core.models.l3_inputs, hrlxf_core.models.schema, hrlxf_core.heuristics; "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_models_run_under_bf16_autocast() -> None:
    """Mixed precision (as a GPU trainer would use it): masks stay exact, losses finite."""
    inp, tg = l3_batch(16, seed=10)
    feats, valid, glob = l4_batch(4, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mean, log_std = L2Net()(*l2_batch(4))
        out = l3_forward(L3Net(), inp)
        alpha = L4Net()(feats, valid, glob)
    assert torch.isfinite(l2_nll(mean, log_std, torch.rand(4, GOAL_DIM), torch.ones(4, GOAL_DIM)))
    assert out["delta_logits"].dtype == torch.float32
    assert torch.isfinite(l3_bc_loss(out, tg)[0])
    assert torch.all(alpha[~valid] == 0) and torch.allclose(alpha.sum(-1), torch.ones(4))
