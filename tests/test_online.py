"""Online fine-tuning (issue 13) in real tiny SCML worlds: the recorded log-probabilities equal the
learner's, rewards sum to score − 1, an iteration changes the weights within the KL bound, a killed
run resumes exactly, and the ``hrl_online_policy`` asset materializes and plays as a contender."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import torch

from hrlxf_core.models.l2 import L2Config, L2Net
from hrlxf_core.models.l3 import L3Config, L3Net
from hrlxf_core.models.l4 import L4Config, L4Net
from hrlxf_core.rl.distributions import (
    StdRule,
    categorical_kl,
    gaussian_kl,
    plackett_luce_log_prob,
    plackett_luce_sample,
)
from hrlxf_core.rl.policy import LAYER_FILES, load_policy
from hrlxf_core.rl.ppo import PPOConfig
from hrlxf_core.rl.rollouts import RolloutConfig, load_trajectories
from hrlxf_core.rl.train import OnlineConfig, _iter_dir, check_log_probs, fine_tune, online_config_from_dict
from hrlxf_core.training.checkpoint import save_checkpoint
from hrlxf_core.training.skeleton import _payload

ROOT = Path(__file__).resolve().parent.parent


def tiny_config(**kw) -> OnlineConfig:
    return OnlineConfig(
        phase_a_iterations=kw.pop("phase_a", 1),
        phase_b_iterations=kw.pop("phase_b", 1),
        seed=3,
        rollout=RolloutConfig(
            n_worlds=2,
            n_steps_min=8,
            n_steps_max=8,
            n_processes_min=2,
            n_processes_max=2,
            opponents=("PenguinAgent",),
        ),
        ppo=PPOConfig(critic_warmup_epochs=3, critic_epochs=2, epochs=2, minibatches=2),
        **kw,
    )


def small_checkpoints(tmp: Path) -> dict[str, str]:
    """Small untrained networks in the ordinary checkpoint format (the residual head starts at
    zero, so the policy is the L1 baseline plus exploration)."""
    torch.manual_seed(0)
    out = {}
    for kind, model, cfg in (
        (
            "l2",
            L2Net(L2Config(conv_channels=8, static_hidden=16, fused_hidden=16)),
            L2Config(conv_channels=8, static_hidden=16, fused_hidden=16),
        ),
        (
            "l3",
            L3Net(L3Config(d_model=16, n_heads=2, n_layers=1)),
            L3Config(d_model=16, n_heads=2, n_layers=1),
        ),
        (
            "l4",
            L4Net(L4Config(d_model=16, n_heads=2, n_layers=1)),
            L4Config(d_model=16, n_heads=2, n_layers=1),
        ),
    ):
        path = tmp / f"{kind}.pt"
        save_checkpoint(path, _payload(model, cfg, {}, {}, [], kind, np.zeros(16) if kind == "l2" else None))
        out[kind] = str(path)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("online")
    bc = small_checkpoints(tmp)
    cfg = tiny_config()
    res = fine_tune(cfg, bc, tmp / "work", tmp / "data", log=lambda _m: None)
    return {"tmp": tmp, "bc": bc, "cfg": cfg, "res": res}


def _state(policy_dir: Path) -> dict[str, torch.Tensor]:
    out = {}
    for kind, f in LAYER_FILES.items():
        for k, v in torch.load(policy_dir / f, weights_only=True)["state_dict"].items():
            out[f"{kind}.{k}"] = v
    for k, v in torch.load(policy_dir / "critic.pt", weights_only=True)["state_dict"].items():
        out[f"critic.{k}"] = v
    return out


# -- the heads ---------------------------------------------------------------------------------------
def test_plackett_luce_probabilities_sum_to_one_and_match_sampling() -> None:
    logits = torch.tensor([[0.3, -1.0, 1.2, 0.0]], dtype=torch.float64)
    perms = list(itertools.permutations(range(4)))
    lp = torch.stack([plackett_luce_log_prob(logits, torch.tensor([p]), torch.tensor([4]))[0] for p in perms])
    assert float(lp.exp().sum()) == pytest.approx(1.0, abs=1e-12)
    # padding beyond n_valid is ignored: a 2-thread order inside a row of 4
    two = plackett_luce_log_prob(logits[:, :2], torch.tensor([[1, 0]]), torch.tensor([2]))
    padded = plackett_luce_log_prob(logits, torch.tensor([[1, 0, 3, 2]]), torch.tensor([2]))
    assert float(two) == pytest.approx(float(padded), abs=1e-12)
    # Gumbel-top-k draws follow the same law: the first choice's frequencies
    rng = np.random.default_rng(0)
    first = (
        np.bincount([plackett_luce_sample(logits[0].numpy(), rng)[0] for _ in range(20000)], minlength=4)
        / 20000
    )
    np.testing.assert_allclose(first, torch.softmax(logits[0], -1).numpy(), atol=0.015)


def test_kl_is_zero_to_itself_and_positive_otherwise() -> None:
    a = torch.tensor([[0.0, 1.0, -1e9]], dtype=torch.float64)
    assert float(categorical_kl(a, a)) == 0.0
    assert float(categorical_kl(a, torch.tensor([[1.0, 0.0, -1e9]], dtype=torch.float64))) > 0
    rule = StdRule(0.5, (0.05, 0.01))
    ls = rule.log_std(torch.full((1, 2), -20.0, dtype=torch.float64))  # BC σ ≈ 0: the floor alone
    assert float(gaussian_kl(torch.zeros(1, 2), ls, torch.zeros(1, 2), ls)) == pytest.approx(0.0, abs=1e-12)
    # the floor bounds how sharp the policy is: a mean shift of one floor-std costs 0.5 nats
    shifted = torch.tensor([[0.0, 0.01]], dtype=torch.float64)
    assert float(gaussian_kl(shifted, ls, torch.zeros(1, 2, dtype=torch.float64), ls)) == pytest.approx(
        0.5, rel=0.01
    )


def test_config_refuses_a_phase_b_rate_above_a_tenth_of_bc() -> None:
    cfg = tiny_config()
    cfg.ppo.lr_b = 5e-4
    with pytest.raises(ValueError, match="lr_b"):
        cfg.validate()
    again = online_config_from_dict(json.loads(json.dumps(__import__("dataclasses").asdict(tiny_config()))))
    assert again.key() == tiny_config().key()


# -- a real run --------------------------------------------------------------------------------------
def test_recorded_log_probs_equal_the_learners(run) -> None:
    r = run["res"].run_dir
    a = check_log_probs(r / "initial", _iter_dir(r, 0) / "worlds", _iter_dir(r, 0) / "rollouts")
    b = check_log_probs(_iter_dir(r, 0) / "policy", _iter_dir(r, 1) / "worlds", _iter_dir(r, 1) / "rollouts")
    assert set(a) == {"l4"}  # phase A samples L4 only
    assert set(b) == {"l2", "l3_op", "l3_delta", "l3_residual", "l4"}  # phase B samples every head
    for head, err in {**a, **b}.items():
        assert err < 1e-5, (head, err)


def test_rewards_sum_to_score_minus_one_and_decisions_carry_values(run) -> None:
    r = run["res"].run_dir
    for i in range(2):
        trajs, skipped = load_trajectories(_iter_dir(r, i) / "worlds", _iter_dir(r, i) / "rollouts")
        assert len(trajs) == 2 and skipped["not_ok"] == 0
        for t in trajs:
            a = t.arrays
            assert float(a["day_reward"].sum()) == pytest.approx(t.score - 1.0, abs=1e-9)
            assert float(a["first_day_balance"]) == float(a["initial_balance"])
            assert len(a["day_value"]) == len(a["day_reward"]) == len(a["day_x_static"]) > 0
            assert int(a["dropped_rounds"]) == 0
            if i == 1:  # every L3 decision points at a recorded day (its reward and value)
                assert a["l3_day_idx"].max() < len(a["day_reward"]) and len(a["l3_op"]) > 0


def test_an_iteration_changes_the_weights_within_the_kl_bound(run) -> None:
    r, cfg = run["res"].run_dir, run["cfg"]
    init, a, b = _state(r / "initial"), _state(_iter_dir(r, 0) / "policy"), _state(_iter_dir(r, 1) / "policy")
    changed = lambda x, y, layer: any(not torch.equal(x[k], y[k]) for k in x if k.startswith(layer))  # noqa: E731
    assert (
        changed(init, a, "l4.") and not changed(init, a, "l3.") and not changed(init, a, "l2.")
    )  # phase A: L4 only
    assert changed(a, b, "l3.") and changed(a, b, "l2.")  # phase B: all layers
    assert changed(init, a, "critic.")
    for h in run["res"].history:
        assert h["policy_steps"] > 0
        assert all(v <= cfg.ppo.kl_max for v in h["kl_to_bc"].values()), h["kl_to_bc"]


def test_a_killed_run_resumes_exactly(run, tmp_path: Path) -> None:
    """A run killed (SIGKILL) after its first iteration, then restarted, ends with the same
    weights as the uninterrupted run."""
    work = tmp_path / "work"
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "sys.path.insert(0, {!r})\n"
        "from tests.test_online import tiny_config\n"
        "from hrlxf_core.rl.train import fine_tune\n"
        "if __name__ == '__main__':\n"
        "    fine_tune(tiny_config(), json.loads({!r}), Path({!r}), Path({!r}), log=lambda m: None)\n"
    ).format(str(ROOT), json.dumps(run["bc"]), str(work), str(tmp_path / "data"))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not list(work.glob("runs/*/iter_0000/state.pt")):
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    (run_dir,) = list((work / "runs").iterdir())
    assert not (_iter_dir(run_dir, 1) / "state.pt").exists()
    res = fine_tune(tiny_config(), run["bc"], work, tmp_path / "data", log=lambda _m: None)
    assert res.resumed_from == 1 and len(res.history) == 2
    want, got = _state(run["res"].policy_dir), _state(res.policy_dir)
    assert want.keys() == got.keys()
    for k in want:
        assert torch.equal(want[k], got[k]), k


def test_policy_directory_of_another_shape_is_refused(run, tmp_path: Path) -> None:
    import shutil

    from hrlxf_core.models.checkpoint import CheckpointError

    bad = tmp_path / "bad"
    shutil.copytree(run["res"].policy_dir, bad)
    ck = torch.load(bad / "l4.pt", weights_only=True)
    ck["state_dict"]["score.0.weight"] = torch.zeros(3, 3)
    torch.save(ck, bad / "l4.pt")
    with pytest.raises(CheckpointError, match="l4.pt.*score.0.weight"):
        load_policy(bad)


# -- Dagster ------------------------------------------------------------------------------------------
def test_hrl_online_policy_materializes_and_plays_as_a_contender(run, tmp_path: Path) -> None:
    from hrlxf_assets.online import ONLINE_FILE, hrl_online_policy
    from hrlxf_assets.resources import DataStore
    from hrlxf_core.evaluation import EvalConfig, contender_slot
    from hrlxf_core.selection import SELECTION_FILE

    data = tmp_path / "data"
    (data / SELECTION_FILE).parent.mkdir(parents=True)
    (data / SELECTION_FILE).write_text(json.dumps(run["bc"]))
    config = {
        "phase_a_iterations": 1,
        "phase_b_iterations": 0,
        "worlds_per_iteration": 1,
        "n_steps_min": 8,
        "n_steps_max": 8,
        "opponents": ["PenguinAgent"],
    }
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.materialize(
            [hrl_online_policy],
            instance=instance,
            resources={"data_store": DataStore(data_dir=str(data))},
            run_config={"ops": {"hrl_online_policy": {"config": config}}},
        )
    assert result.success
    (mat,) = result.asset_materializations_for_node("hrl_online_policy")
    assert mat.metadata["iterations"].value == 1 and mat.metadata["worlds_per_hour"].value > 0
    assert all(c.passed for c in result.get_asset_check_evaluations())
    cur = json.loads((data / ONLINE_FILE).read_text())
    assert {k: cur["bc"][k]["path"] for k in ("l2", "l3", "l4")} == run["bc"]
    path, params = contender_slot("LitaAgentHRL-online", EvalConfig(checkpoints_dir=str(data)))
    assert path.endswith("LitaAgentHRL") and params["mode"] == "neural"
    assert params["l4_path"] == cur["l4"] and Path(cur["l4"]).parent == Path(cur["policy_dir"])
    with pytest.raises(FileNotFoundError, match="materialize hrl_online_policy"):
        contender_slot("LitaAgentHRL-online", EvalConfig(checkpoints_dir=str(tmp_path / "empty")))
