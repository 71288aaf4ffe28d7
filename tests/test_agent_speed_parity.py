"""Issue 13: the fast planning path plans exactly what the straightforward one plans.

The reference, kept only in this test, is ``plan_round`` as it was before issue 13: the shared
observation replicated to one row per thread, every feature built by the offline functions with
nothing precomputed, ``clip_action`` thread by thread on limits recomputed after each
reservation, and the networks run through their modules' own forward. Rounds are captured from
a tiny real world whose two LitaAgentHRL play in neural mode on their onnxruntime graphs; each
round is planned again by the reference. The L3/L4 inputs must be equal to the last bit; the
networks' answers too on the modules, and within the graphs' tolerance on the graphs (whose
kernels are not torch's), where the plans must be the reference's on the graphs' answers. The
rewritten internals of the shared functions (closed-form production plan, one-call stacking, the
nearest-offset table, shared observation rows) are checked against their previous formulas on
random batches, which cover the offline callers too.
No wall time is asserted here (bench/agent.py measures it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import hrlxf_core.agent as agent_mod
from hrlxf_core.agent import Planned, ThreadInput
from hrlxf_core.agent_layers import NeuralStack, make_stack
from hrlxf_core.constants import N_OFFSETS
from hrlxf_core.expert_inputs import HORIZON, N_EXPERT, NEAR_OFFSETS, expert_features, penguin_needs
from hrlxf_core.l1_safety import (
    ReservedLimits,
    Threads,
    _nearest_masked,
    baseline,
    clip_action,
    l1_limits,
    limit_parts,
    limits_from_parts,
    market_price,
    role_safe,
    sellable,
    time_mask,
)
from hrlxf_core.l3_contract import OP_ACCEPT, OP_OFFER, ThreadHistory
from hrlxf_core.l4_features import global_features, thread_features
from hrlxf_core.labels import GOAL_DIM
from hrlxf_core.models.inference import close_outputs, eager_inference, example_inputs, onnx_inference
from hrlxf_core.models.l2 import L2Config, L2Net
from hrlxf_core.models.l3 import L3Config, L3Net
from hrlxf_core.models.l3_inputs import l3_context, l3_model_inputs, residual_to_offer
from hrlxf_core.models.l4 import L4Config, L4Net
from hrlxf_core.normalization import (
    FEATURE_CLIP,
    INVENTORY_DAYS_NORM,
    N_LINES_NORM,
    PRICE_NORM,
    ROUNDS_NORM,
)
from hrlxf_core.numeric import finite, stack_last
from hrlxf_core.online import thread_from_nmi
from hrlxf_core.sim.roster import KNOWN_AGENTS
from hrlxf_core.sim.world_run import apply_sandbox_env, run_world
from hrlxf_core.sim.world_spec import WorldSpec
from hrlxf_core.state import (
    N_STATIC,
    RECORD_TO_OBS,
    RECORD_VECTORS,
    K,
    inbound,
    needed_sales,
    needed_supplies,
    observation_from_arrays,
    outbound,
    production_plan,
    production_plan_loop,
    x_role_thread,
    x_static,
)
from hrlxf_core.training.checkpoint import CHECKPOINT_FORMAT, feature_schema, save_checkpoint

AGENT = "hrlxf_core.agent.LitaAgentHRL"


# ------------------------------------------------------------------------------------------------
# bit-for-bit comparison
# ------------------------------------------------------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    """Equal to the last bit (dtype and shape too; NaN equals NaN)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return a.tobytes() == b.tobytes() or bool(
            np.array_equal(a, b, equal_nan=True) and (np.signbit(a) == np.signbit(b)).all()
        )
    return bool(np.array_equal(a, b))


def _same_cols(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Columns that differ (or are missing on one side)."""
    return sorted(k for k in set(a) | set(b) if k not in a or k not in b or not _same(a[k], b[k]))


# ------------------------------------------------------------------------------------------------
# the reference planner (plan_round before issue 13)
# ------------------------------------------------------------------------------------------------
def _eager_alpha(stack: NeuralStack, feats: np.ndarray, glob: np.ndarray) -> np.ndarray:
    t = len(feats)
    with torch.inference_mode():
        a = stack.l4(
            torch.as_tensor(feats[None]).float(),
            torch.ones((1, t), dtype=torch.bool),
            torch.as_tensor(np.asarray(glob)[None]).float(),
        )
    return a[0].float().numpy().astype(np.float64)


def _eager_decide(
    stack: NeuralStack, cols: dict[str, np.ndarray], offer_safe: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = l3_model_inputs(cols)
    with torch.inference_mode():
        out = stack.l3(  # the full forward; act used to read these three heads from it
            torch.as_tensor(x["hist"]).float(),
            torch.as_tensor(x["hist_len"]).long(),
            torch.as_tensor(x["context"]).float(),
            torch.as_tensor(x["time_mask"]).bool(),
            torch.as_tensor(x["op_mask"]).bool(),
        )
    return (
        out["op_logits"].argmax(-1).numpy().astype(np.int64),
        out["residual_mean"].float().numpy().astype(np.float64),
        out["delta_logits"].argmax(-1).numpy().astype(np.int64),
    )


def reference_plan_round(
    stack: Any,
    obs: Any,
    goal: np.ndarray,
    my_id: str,
    inputs: list[ThreadInput],
    ledger: dict,
    nets: dict[str, Any] | None = None,
) -> tuple[dict[str, Planned], dict[str, Any]]:
    """(plans, what the stack was given and answered) of the pre-issue-13 planner. ``nets``:
    the networks' answers (alpha, op, residual, delta) to plan with instead of the modules'
    own (the planner is then checked to the last bit on the answers of the graphs)."""
    neural = isinstance(stack, NeuralStack)
    t = len(inputs)
    day = int(obs.day[0])
    inputs = sorted(inputs, key=lambda x: x.nid)
    threads = [thread_from_nmi(x.nmi, my_id) for x in inputs]
    th = Threads(**{k: np.concatenate([getattr(x, k) for x in threads]) for k in threads[0].__dict__})
    rows = obs.take(np.zeros(t, dtype=np.int64))
    limits = l1_limits(rows)
    mask = time_mask(rows, limits, th)
    base = baseline(rows, limits, th, mask)
    market = market_price(rows, th.is_buyer)
    has = np.array([x.offer is not None for x in inputs])
    recv = np.array(
        [x.offer if x.offer is not None else (np.nan, np.nan, np.nan) for x in inputs], dtype=np.float64
    )
    hist = [
        ledger.get(x.nid, ThreadHistory()).features(float(obs.n_lines[0]), float(m), day)
        for x, m in zip(inputs, market, strict=True)
    ]
    goal_rows = np.repeat(np.asarray(goal, np.float64).reshape(1, -1), t, axis=0)
    cols = {
        "has_offer": has,
        "recv_q": finite(recv[:, 0]),
        "recv_delta": finite(recv[:, 1] - day),
        "recv_p": finite(recv[:, 2]),
        "x_role": x_role_thread(th.is_buyer),
        "x_static": x_static(rows),
        "relative_time": np.array([x.relative_time for x in inputs]),
        "round": np.array([x.round for x in inputs], dtype=np.float64),
        "n_lines": rows.n_lines,
        "market_price": market,
        "base_q": base.q,
        "base_delta": base.delta,
        "base_p": base.p,
        "base_feasible": base.feasible,
        "q_safe": role_safe(limits, th.is_buyer),
        "b_free": limits.b_free,
        "time_mask": mask,
        "goal": goal_rows,
        "hist": np.stack([h for h, _ in hist]),
        "hist_len": np.array([n for _, n in hist]),
        "x_expert": expert_features(rows, th.is_buyer),
    }
    offer_clip = clip_action(rows, limits, th, cols["recv_q"], cols["recv_delta"], cols["recv_p"], mask)
    offer_safe = (
        has
        & offer_clip.feasible
        & (offer_clip.q == cols["recv_q"])
        & (offer_clip.delta == cols["recv_delta"])
        & (offer_clip.p == cols["recv_p"])
    )
    feats = thread_features(
        rows, limits, th, base, cols["round"], cols["relative_time"],
        recv[:, 0], recv[:, 1] - day, recv[:, 2], goal_rows,
    )  # fmt: skip
    n_buy = int(th.is_buyer.sum())
    glob = global_features(obs, np.array([n_buy]), np.array([t - n_buy]), np.asarray(goal).reshape(1, -1))[0]
    if nets is not None:
        alpha, op, residual, delta = (nets[k] for k in ("alpha", "op", "residual", "delta"))
    else:
        alpha = (
            _eager_alpha(stack, feats, glob) if neural else np.asarray(stack.alpha(feats, glob), np.float64)
        )
        op, residual, delta = (
            _eager_decide(stack, cols, offer_safe) if neural else stack.decide(cols, offer_safe)
        )
    q_prop, p_prop = residual_to_offer(residual, base.q, base.p, rows.n_lines, market)
    order = sorted(range(t), key=lambda k: (-round(float(alpha[k]), 12), inputs[k].nid))
    reserved = ReservedLimits(obs)
    out: dict[str, Planned] = {}
    for k in order:
        th_k = th.take(np.array([k]))
        lim_k = limits_from_parts(reserved.parts)  # recomputed after every reservation
        mask_k = time_mask(obs, lim_k, th_k)
        buyer = bool(th.is_buyer[k])
        if op[k] == OP_ACCEPT and has[k]:
            c = clip_action(
                obs, lim_k, th_k, recv[k : k + 1, 0], recv[k : k + 1, 1] - day, recv[k : k + 1, 2], mask_k
            )
            if (
                c.feasible[0]
                and c.q[0] == recv[k, 0]
                and c.delta[0] == recv[k, 1] - day
                and c.p[0] == recv[k, 2]
            ):
                reserved.reserve(buyer, float(recv[k, 0]), int(recv[k, 1] - day), float(recv[k, 2]))
                out[inputs[k].nid] = Planned("ACCEPT", None)
                continue
            op_k = OP_OFFER
        else:
            op_k = int(op[k])
        if op_k != OP_OFFER:
            out[inputs[k].nid] = Planned("END", None)
            continue
        a = clip_action(obs, lim_k, th_k, q_prop[k : k + 1], delta[k : k + 1], p_prop[k : k + 1], mask_k)
        if not a.feasible[0]:
            out[inputs[k].nid] = Planned("END", None)
            continue
        changed = bool(
            abs(a.q[0] - q_prop[k]) > 0.5 or a.delta[0] != delta[k] or abs(a.p[0] - p_prop[k]) > 0.5
        )
        reserved.reserve(buyer, float(a.q[0]), int(a.delta[0]), float(a.p[0]))
        out[inputs[k].nid] = Planned("OFFER", (int(a.q[0]), day + int(a.delta[0]), int(a.p[0])), changed)
    io = {"feats": feats, "glob": glob, "cols": cols, "offer_safe": offer_safe, "alpha": alpha,
          "op": op, "residual": residual, "delta": delta}  # fmt: skip
    return out, io


def _recording(stack: Any) -> dict[str, list]:
    """Wrap a stack's alpha/decide so that their inputs and outputs are kept (per instance)."""
    seen: dict[str, list] = {"alpha": [], "decide": []}
    alpha, decide = stack.alpha, stack.decide

    def rec_alpha(f, g):
        a = alpha(f, g)
        seen["alpha"].append((f, g, a))
        return a

    def rec_decide(c, s):
        o = decide(c, s)
        seen["decide"].append((c, s, o))
        return o

    stack.alpha, stack.decide = rec_alpha, rec_decide
    return seen


def _fast(stack: Any, rnd: tuple) -> tuple[dict[str, Planned], dict[str, Any]]:
    seen = _recording(stack)
    try:
        plan = agent_mod.plan_round(stack, *rnd)
    finally:
        del stack.alpha, stack.decide  # back to the class's methods
    (f, g, a), (c, s, (op, res, d)) = seen["alpha"][0], seen["decide"][0]
    io = {
        "feats": f,
        "glob": g,
        "cols": c,
        "offer_safe": s,
        "alpha": a,
        "op": op,
        "residual": res,
        "delta": d,
    }
    return plan, io


def _assert_same_round(fast: tuple, ref_stack: Any, rnd: tuple, what: str, graphs: bool = False) -> None:
    """The fast planner's round equals the reference planner's: its plans and the networks'
    inputs to the last bit; the networks' answers to the last bit on the modules (``graphs``
    False), or within the graphs' tolerance (onnxruntime: argmax outputs equal, floats within
    ATOL), in which case the plans are the reference's on the graphs' answers."""
    (plan, io) = fast
    ref_plan, ref_io = reference_plan_round(ref_stack, *rnd)
    assert not _same_cols(io["cols"], ref_io["cols"]), (what, _same_cols(io["cols"], ref_io["cols"]))
    for k in ("feats", "glob", "offer_safe"):
        assert _same(io[k], ref_io[k]), (what, k)
    if not graphs:
        assert plan == ref_plan, what
        for k in ("alpha", "op", "residual", "delta"):
            assert _same(io[k], ref_io[k]), (what, k)
        return
    for k in ("alpha", "op", "residual", "delta"):
        assert close_outputs(io[k], ref_io[k]), (what, k, np.abs(np.asarray(io[k]) - ref_io[k]).max())
    assert plan == reference_plan_round(ref_stack, *rnd, nets=io)[0], what


# ------------------------------------------------------------------------------------------------
# a tiny real world in neural mode
# ------------------------------------------------------------------------------------------------
def _checkpoints(tmp: Path) -> dict[str, str]:
    """Default-size networks with random weights; L3's residual head (zero at init) is made
    non-zero so that the residual reaches the offers."""
    torch.manual_seed(13)
    l3 = L3Net(L3Config())
    with torch.no_grad():
        l3.res_mean.weight.normal_(0.0, 0.5)
        l3.res_mean.bias.normal_(0.0, 0.3)
    out = {}
    for kind, model, cfg in (
        ("l2", L2Net(L2Config()), L2Config()),
        ("l3", l3, L3Config()),
        ("l4", L4Net(L4Config()), L4Config()),
    ):
        path = tmp / f"{kind}.pt"
        save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "state_dict": model.state_dict(),
                               "config": dataclasses.asdict(cfg), "schema": feature_schema(kind)})  # fmt: skip
        out[f"{kind}_path"] = str(path)
    return out


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Rounds of two neural LitaAgentHRL in a real world (on their onnxruntime graphs from the
    first round), with the plans they made there."""
    tmp = tmp_path_factory.mktemp("speed")
    apply_sandbox_env(tmp)
    ck = _checkpoints(tmp)
    rounds: list[tuple] = []
    plans: list[dict[str, Planned]] = []
    real = agent_mod.plan_round

    def recording(stack, obs, goal, my_id, inputs, ledger):
        snap = (
            obs.copy(),
            goal.copy(),
            my_id,
            list(inputs),
            {k: ThreadHistory(list(v.entries)) for k, v in ledger.items()},
        )
        plan = real(stack, obs, goal, my_id, inputs, ledger)
        if len(rounds) < 120:
            rounds.append(snap)
            plans.append(plan)
        return plan

    mp = pytest.MonkeyPatch()
    mp.setattr(agent_mod, "plan_round", recording)
    mp.setattr(NeuralStack, "trace_after", 0)  # the world's agents play on their graphs
    p, g, r = KNOWN_AGENTS["PenguinAgent"], KNOWN_AGENTS["GreedyStdAgent"], KNOWN_AGENTS["RandomStdAgent"]
    params = {"mode": "neural", **ck}
    spec = WorldSpec(
        world_id="speed-parity",
        index=0,
        seed=3,
        n_steps=8,
        n_processes=2,
        agent_paths=(AGENT, p, g, r, AGENT, p, g, r),
        agent_levels=(0, 0, 0, 0, 1, 1, 1, 1),
        competitor=(False,) * 8,
        agent_params=(params, None, None, None, params, None, None, None),
    )
    try:
        out = run_world(spec, "speed", tmp / "log", tracked=False)
    finally:
        mp.undo()
    assert out.tables["worlds"]["status"][0] == "ok"
    return {"rounds": rounds, "plans": plans, "ck": ck}


def test_plans_of_a_real_world_equal_the_reference_planner(captured: dict[str, Any]) -> None:
    """Every plan the agents made in the world (onnxruntime graphs, shared observation row, clip split,
    cached limits) is the reference planner's, and so are its L3/L4 inputs and outputs."""
    rounds, plans = captured["rounds"], captured["plans"]
    assert len(rounds) >= 10 and any(len(r[3]) >= 3 for r in rounds)
    assert {p.response for pl in plans for p in pl.values()} >= {"OFFER", "END"}
    fast = make_stack("neural", **captured["ck"])
    fast.trace_after = 0
    ref = make_stack("neural", **captured["ck"])  # its own modules: nothing shared with `fast`
    for i, (rnd, plan) in enumerate(zip(rounds, plans, strict=True)):
        again = _fast(fast, rnd)
        assert plan == again[0], f"round {i}: the world's plan"
        _assert_same_round(again, ref, rnd, f"round {i}", graphs=True)
    assert all(hasattr(fast._graphs[k][3], "session") for k in ("l3", "l4"))  # it ran the graphs


def test_ten_thread_rounds_and_every_stack_equal_the_reference(captured: dict[str, Any]) -> None:
    """Rounds replicated to 10 live threads (as bench/agent.py plans them), for the neural stack
    before and after it traces its networks, and for the heuristic and l1 stacks."""
    many = []
    for obs, goal, my_id, inputs, ledger in captured["rounds"][:40]:
        threads = [
            dataclasses.replace(inputs[i % len(inputs)], nid=f"{inputs[i % len(inputs)].nid}#{i}")
            for i in range(10)
        ]
        many.append((obs, goal, my_id, threads, ledger))
    eager = make_stack("neural", **captured["ck"])
    eager.trace_after = 10**9  # stays on the modules' own methods
    graphs = make_stack("neural", **captured["ck"])
    graphs.trace_after = 0
    ref = make_stack("neural", **captured["ck"])
    for i, rnd in enumerate(many):
        _assert_same_round(_fast(eager, rnd), ref, rnd, f"eager round {i}")
        _assert_same_round(_fast(graphs, rnd), ref, rnd, f"graph round {i}", graphs=True)
    for mode in ("heuristic", "l1"):
        stack = make_stack(mode)
        for i, rnd in enumerate(captured["rounds"][:40] + many[:10]):
            _assert_same_round(_fast(stack, rnd), stack, rnd, f"{mode} round {i}")


# ------------------------------------------------------------------------------------------------
# the stack's graphs
# ------------------------------------------------------------------------------------------------
def test_graphs_are_made_after_trace_after_calls_and_again_for_a_new_module(
    captured: dict[str, Any],
) -> None:
    stack = make_stack("neural", **captured["ck"])
    stack.trace_after = 2
    l3 = stack.l3
    first = stack._graph("l3")
    assert first.module is l3 and not hasattr(first, "session") and stack._graph("l3") is first  # eager
    graph = stack._graph("l3")
    assert hasattr(graph, "session") and graph.module is l3 and stack._graph("l3") is graph
    stack.l3 = L3Net(L3Config()).eval()  # a wrapper may swap a network: it is used, eagerly at first
    again = stack._graph("l3")
    assert again.module is stack.l3 and not hasattr(again, "session")
    assert stack.__getstate__()["_graphs"] == {}


def test_onnx_graphs_answer_as_the_modules_on_every_batch_size() -> None:
    """The graph of each network, on batches of several sizes (the export's is 2): argmax
    outputs equal and floats within ATOL of the module's own method."""
    torch.manual_seed(5)
    l3, l4 = L3Net(L3Config()).eval(), L4Net(L4Config()).eval()
    with torch.no_grad():
        l3.res_mean.weight.normal_(0.0, 0.5)  # non-zero residuals (zero at init)
    for model, kind in ((l3, "l3"), (l4, "l4")):
        graph, eager = onnx_inference(model, kind), eager_inference(model, kind)
        assert hasattr(graph, "session"), kind
        for n in (1, 3, 10, 40):
            x = tuple(t.numpy() for t in example_inputs(kind, n, seed=n))
            assert close_outputs(graph(*x), eager(*x)), (kind, n)


def test_attention_written_out_and_the_query_subset_equal_the_full_block() -> None:
    """The two forms of an attention block that play uses (attention written out for the
    export; L3's last block on the context token alone) against the training form."""
    from hrlxf_core.models.common import AttentionBlock, explicit_attention

    torch.manual_seed(2)
    blk = AttentionBlock(32, 4, 64).eval()
    x = torch.randn(6, 9, 32)
    valid = torch.rand(6, 9) > 0.4
    valid[:, 0] = True  # the always-valid context / global token
    with torch.no_grad():
        full = blk(x, valid)
        with explicit_attention():
            written = blk(x, valid)
            first_written = blk(x, valid, n_query=1)
        first = blk(x, valid, n_query=1)
    assert written.shape == full.shape and first.shape == (6, 1, 32)
    for y, ref in ((written, full), (first, full[:, :1]), (first_written, full[:, :1])):
        assert torch.allclose(y, ref, atol=1e-5, rtol=0), (y - ref).abs().max()


def test_onnx_inference_falls_back_to_the_module_when_the_graph_differs_or_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hrlxf_core.models.inference as inference

    l3, l4 = (
        L3Net(L3Config(d_model=16, n_heads=2, n_layers=1)).eval(),
        L4Net(L4Config(d_model=16, n_heads=2, n_layers=1)).eval(),
    )
    assert hasattr(onnx_inference(l3, "l3"), "session")
    monkeypatch.setattr(inference, "close_outputs", lambda a, b: False)
    for model, kind in ((l3, "l3"), (l4, "l4")):
        fn = onnx_inference(model, kind)
        assert fn.module is model and not hasattr(fn, "session"), kind
    monkeypatch.setattr(
        inference.torch.onnx, "export", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no export"))
    )
    monkeypatch.setattr(inference, "close_outputs", lambda a, b: True)
    assert not hasattr(onnx_inference(l4, "l4"), "session")


# ------------------------------------------------------------------------------------------------
# the rewritten internals of the shared (online and offline) functions
# ------------------------------------------------------------------------------------------------
def _random_obs(rng: np.random.Generator, n: int, odd: bool = False) -> Any:
    sc = {k: rng.integers(0, 30, n).astype(float) * rng.choice([1.0, 0.37, 1.5]) for k in RECORD_TO_OBS}
    sc["day"] = rng.integers(0, 50, n).astype(float)
    sc["n_steps"] = rng.integers(1, 60, n).astype(float)
    sc["n_lines"] = rng.integers(1, 12, n).astype(float)
    sc["balance"] = rng.normal(100, 200, n)
    sc["initial_balance"] = np.abs(rng.normal(100, 50, n))
    sc["shortfall_penalty"] = rng.random(n)
    sc["inventory_input"] = rng.choice([0.0, 1.0, 3.3, 7.0, 100.0], n) * (rng.random(n) > 0.2)
    vec = {
        k: np.where(rng.random((n, K)) > 0.6, rng.integers(0, 15, (n, K)) * rng.choice([1.0, 0.1, 2.7]), 0.0)
        for k in RECORD_VECTORS
    }
    names = ("offers_buy_q", "offers_buy_value", "offers_sell_q", "offers_sell_value")
    offers = {k: np.where(rng.random((n, K)) > 0.8, rng.integers(0, 9, (n, K)) * 3.0, 0.0) for k in names}
    if odd:  # what the engine never produces: negative stock or sales, NaN and infinite entries
        sc["inventory_input"] = sc["inventory_input"] * rng.choice([-1.0, 1.0], n)
        vec["sales_by_offset"] = vec["sales_by_offset"] * rng.choice([-1.0, 1.0], (n, K))
        vec["supplies_by_offset"][rng.random((n, K)) > 0.97] = rng.choice([np.nan, np.inf, -np.inf])
    return observation_from_arrays(sc, vec, rng.random(n) > 0.5, rng.random(n) > 0.5, offers)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NaN / inf inputs on purpose
def test_closed_form_production_plan_is_the_recursion_to_the_last_bit() -> None:
    rng = np.random.default_rng(0)
    for trial in range(400):
        obs = _random_obs(rng, int(rng.integers(1, 9)), odd=trial % 4 == 0)
        for got, want in zip(production_plan(obs), production_plan_loop(obs), strict=True):
            assert _same(got, want)


def test_stack_last_is_np_stack() -> None:
    rng = np.random.default_rng(1)
    for shape in ((1,), (10,), (3, 41), (5000,), (200, 41)):
        for dtypes in ((np.float64,), (np.float64, np.int64), (np.float64, bool)):
            arrays = [(rng.normal(size=shape) * 10).astype(dtypes[i % len(dtypes)]) for i in range(7)]
            got, want = stack_last(arrays), np.stack(arrays, axis=-1)
            assert _same(got, want) and got.flags.c_contiguous


def test_nearest_offset_table_is_the_distance_formula() -> None:
    rng = np.random.default_rng(2)
    delta = rng.integers(0, K, 500)
    mask = rng.random((500, K)) > rng.random((500, 1))
    dist = np.abs(np.arange(K)[None, :] - delta[:, None]).astype(np.float64)
    want = np.where(mask, dist + np.arange(K)[None, :] * 1e-6, np.inf).argmin(1)
    assert _same(_nearest_masked(delta, mask), want)


def _expert_features_reference(obs: Any, is_buyer: np.ndarray) -> np.ndarray:
    """expert_features before issue 13 (one row per decision)."""
    nl = np.maximum(obs.n_lines, 1e-9)[:, None]
    buyer = np.asarray(is_buyer, bool)
    pb, ps = penguin_needs(obs)
    ns, nsa = needed_supplies(obs), needed_sales(obs)
    needs = np.stack([pb, ps, ns, nsa, np.where(buyer, pb, ps)], axis=1) / nl
    plan, _ = production_plan_loop(obs)
    chans = [inbound(obs), outbound(obs), plan, sellable(limit_parts(obs))]
    by_delta = [c[:, :NEAR_OFFSETS] / nl for c in chans]
    far = [c[:, NEAR_OFFSETS : HORIZON + 1].sum(1, keepdims=True) / nl for c in chans]
    bq, sq = obs.offers_buy_q.sum(1), obs.offers_sell_q.sum(1)
    bp = np.where(bq > 0, obs.offers_buy_value.sum(1) / np.maximum(bq, 1e-9), 0.0)
    sp = np.where(sq > 0, obs.offers_sell_value.sum(1) / np.maximum(sq, 1e-9), 0.0)
    table = np.stack(
        [bq, sq, bp / np.maximum(obs.trading_price_input, 1e-9), sp / np.maximum(obs.trading_price_output, 1e-9),
         np.where(buyer, bq, sq)], axis=1,
    )  # fmt: skip
    table[:, [0, 1, 4]] /= nl
    out = np.concatenate([needs, *by_delta, *far, table], axis=1)
    return np.clip(
        np.nan_to_num(out, nan=0.0, posinf=FEATURE_CLIP, neginf=-FEATURE_CLIP), -FEATURE_CLIP, FEATURE_CLIP
    )


def _l3_context_reference(cols: dict[str, np.ndarray]) -> np.ndarray:
    """l3_context before issue 13."""
    f = {k: np.asarray(v).astype(np.float64) for k, v in cols.items()}
    n = len(f["n_lines"])
    nl, market = np.maximum(f["n_lines"], 1e-9), np.maximum(f["market_price"], 1e-9)
    base_delta = np.asarray(cols["base_delta"]).astype(np.int64)
    safe = f["q_safe"].reshape(n, N_OFFSETS)[np.arange(n), np.clip(base_delta, 0, N_OFFSETS - 1)]
    has = np.asarray(cols["has_offer"]).astype(bool)
    parts = [
        f["goal"].reshape(n, GOAL_DIM), (f["base_q"] / nl)[:, None], (base_delta / INVENTORY_DAYS_NORM)[:, None],
        (f["base_p"] / market)[:, None], f["x_role"].reshape(n, 2), f["relative_time"][:, None],
        (f["round"] / ROUNDS_NORM)[:, None], f["x_static"].reshape(n, N_STATIC),
        (safe / (nl * INVENTORY_DAYS_NORM))[:, None], (f["b_free"] / (market * nl * INVENTORY_DAYS_NORM))[:, None],
        has.astype(np.float64)[:, None], np.where(has, f["recv_q"] / nl, 0.0)[:, None],
        np.where(has, f["recv_delta"] / INVENTORY_DAYS_NORM, 0.0)[:, None],
        np.where(has, f["recv_p"] / market, 0.0)[:, None], (nl / N_LINES_NORM)[:, None], (market / PRICE_NORM)[:, None],
        f["x_expert"].reshape(n, N_EXPERT),
    ]  # fmt: skip
    return np.clip(finite(np.concatenate(parts, axis=1), nan=0.0), -FEATURE_CLIP, FEATURE_CLIP).astype(
        np.float32
    )


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NaN / inf inputs on purpose
def test_feature_functions_equal_their_previous_formulas_and_take_a_shared_row() -> None:
    """Offline batches (one row per decision) give the previous values; a single shared row
    gives the values of that row replicated to every thread; rows of neither kind are refused."""
    rng = np.random.default_rng(3)
    for trial in range(60):
        n = int(rng.integers(1, 12))
        obs = _random_obs(rng, n, odd=trial % 5 == 0)
        buyer = rng.random(n) > 0.5
        assert _same(expert_features(obs, buyer), _expert_features_reference(obs, buyer))
        one = obs.take([0])
        rows = one.take(np.zeros(n, np.int64))
        assert _same(expert_features(one, buyer), expert_features(rows, buyer))
        threads = Threads(
            is_buyer=buyer,
            q_min=rng.integers(0, 3, n).astype(float),
            q_max=rng.integers(3, 20, n).astype(float),
            t_min=obs.day[0] + rng.integers(-1, 3, n),
            t_max=obs.day[0] + rng.integers(2, 12, n),
            p_min=rng.integers(1, 10, n).astype(float),
            p_max=rng.integers(10, 40, n).astype(float),
        )
        lim = l1_limits(rows)
        base = baseline(rows, lim, threads)
        q = np.where(rng.random(n) > 0.3, rng.normal(5, 5, n), np.nan)
        d, p = rng.integers(-2, 15, n).astype(float), rng.normal(15, 8, n)
        goal = rng.normal(size=(n, GOAL_DIM))
        args = (lim, threads, base, rng.integers(0, 20, n), rng.random(n), q, d, p, goal)
        assert _same(thread_features(one, *args), thread_features(rows, *args))
        if n > 2:
            with pytest.raises(ValueError, match="observation rows"):
                thread_features(obs.take([0, 1]), *args)
            with pytest.raises(ValueError, match="observation rows"):
                expert_features(obs.take([0, 1]), buyer)
        cols = {
            "goal": goal, "base_q": base.q, "base_delta": base.delta, "base_p": base.p,
            "x_role": x_role_thread(buyer), "relative_time": rng.random(n), "round": rng.integers(0, 20, n) * 1.0,
            "x_static": x_static(rows), "q_safe": role_safe(lim, buyer), "b_free": lim.b_free,
            "has_offer": ~np.isnan(q), "recv_q": finite(q), "recv_delta": d, "recv_p": p,
            "n_lines": rows.n_lines, "market_price": market_price(rows, buyer),
            "x_expert": expert_features(rows, buyer),
        }  # fmt: skip
        assert _same(l3_context(cols), _l3_context_reference(cols))
