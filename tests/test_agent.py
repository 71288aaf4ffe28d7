"""LitaAgentHRL in real worlds: every mode, checkpoint errors at construction, order-free plans,
and the agent_evaluation asset on a tiny tournament."""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
import torch

import hrlxf_core.agent as agent_mod
from hrlxf_core.evaluation import EvalConfig, draw_eval_specs
from hrlxf_core.l3_contract import ThreadHistory
from hrlxf_core.l4_features import N_GLOBAL, N_THREAD
from hrlxf_core.models.l2 import L2Config, L2Net
from hrlxf_core.models.l3 import L3Config, L3Net
from hrlxf_core.models.l3_inputs import N_CONTEXT
from hrlxf_core.models.l4 import L4Config, L4Net
from hrlxf_core.sim.roster import KNOWN_AGENTS
from hrlxf_core.sim.world_run import apply_sandbox_env, run_world
from hrlxf_core.sim.world_spec import WorldSpec
from hrlxf_core.training.checkpoint import CheckpointError, save_checkpoint
from hrlxf_core.training.l2_train import _l2_loss, _payload
from hrlxf_core.training.l3_train import _loss as _l3_loss
from hrlxf_core.training.l4_train import _loss as _l4_loss
from hrlxf_core.training.loop import TrainConfig, fit

AGENT = "hrlxf_core.agent.LitaAgentHRL"
PENGUIN = KNOWN_AGENTS["PenguinAgent"]
GREEDY, RANDOM = KNOWN_AGENTS["GreedyStdAgent"], KNOWN_AGENTS["RandomStdAgent"]


def _train_tiny(tmp: Path) -> dict[str, Path]:
    """Tiny L2/L3/L4 checkpoints trained for one epoch on random data of the right layout."""
    rng = np.random.default_rng(0)
    n = 64
    l2 = {
        "x_static": rng.normal(size=(n, 12)),
        "x_temporal": rng.normal(size=(n, 41, 10)),
        "x_role": np.ones((n, 2)),
        "goal": np.abs(rng.normal(size=(n, 16))),
        "goal_mask": np.ones((n, 16)),
    }
    tm = rng.random((n, 41)) > 0.3
    l3 = {
        "hist": rng.normal(size=(n, 16, 4)),
        "hist_len": rng.integers(0, 17, n),
        "context": rng.normal(size=(n, N_CONTEXT)),
        "time_mask": tm,
        "op_mask": np.ones((n, 3), bool),
        "op_label": rng.integers(0, 3, n),
        "has_counter": rng.random(n) > 0.5,
        "residual_target": rng.normal(size=(n, 2)) * 0.1,
        "delta_label": rng.integers(-1, 10, n),
        "returns": rng.random(n),
    }
    valid = np.zeros((n, 6), bool)
    valid[:, :3] = True
    teacher = valid / 3.0
    l4 = {
        "thread_feats": rng.normal(size=(n, 6, N_THREAD)),
        "thread_valid": valid,
        "global_feats": rng.normal(size=(n, N_GLOBAL)),
        "teacher_alpha": teacher,
    }
    cfg = TrainConfig(max_epochs=1, batch_size=32)
    out = {}
    torch.manual_seed(0)
    for kind, model, mcfg, data, loss in (
        ("l2", L2Net(L2Config(conv_channels=8)), L2Config(conv_channels=8), l2, _l2_loss),
        (
            "l3",
            L3Net(L3Config(d_model=16, n_heads=2, n_layers=1)),
            L3Config(d_model=16, n_heads=2, n_layers=1),
            l3,
            _l3_loss,
        ),
        (
            "l4",
            L4Net(L4Config(d_model=16, n_heads=2, n_layers=1)),
            L4Config(d_model=16, n_heads=2, n_layers=1),
            l4,
            _l4_loss,
        ),
    ):
        data = {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in data.items()}
        fit(model, data, data, loss, cfg, tmp / f"{kind}_run", kind, asdict(mcfg), log=lambda _: None)
        path = tmp / f"{kind}.pt"
        save_checkpoint(path, _payload(model, mcfg, {}, {}, [], kind, np.zeros(16) if kind == "l2" else None))
        out[kind] = path
    return out


@pytest.fixture(scope="module")
def tiny_ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _train_tiny(tmp_path_factory.mktemp("ckpts"))


def _world(mode_params: dict, seed: int = 11) -> WorldSpec:
    return WorldSpec(
        world_id=f"agent-{seed}",
        index=0,
        seed=seed,
        n_steps=10,
        n_processes=2,
        agent_paths=(AGENT, PENGUIN, GREEDY, RANDOM, AGENT, PENGUIN, GREEDY, RANDOM),
        agent_levels=(0, 0, 0, 0, 1, 1, 1, 1),
        competitor=(False,) * 8,
        agent_params=(mode_params, None, None, None, mode_params, None, None, None),
    )


@pytest.mark.parametrize("mode", ["l1", "heuristic", "neural"])
def test_every_mode_completes_real_worlds_safely(tmp_path: Path, tiny_ckpts, mode: str) -> None:
    apply_sandbox_env(tmp_path)
    params = {"mode": mode}
    if mode == "neural":
        params.update({f"{k}_path": str(v) for k, v in tiny_ckpts.items()})
    out = run_world(_world(params), "agent", tmp_path / "log", tracked=False, keep_world=True)
    assert out.tables["worlds"]["status"][0] == "ok"
    stats = [json.loads(s) for s in out.tables["agent_stats"]["stats_json"]]
    assert len(stats) == 2 and all(s["mode"] == mode for s in stats)
    for s in stats:
        assert s["first_error"] == "" and s["fallbacks"] == 0, s  # no layer raised
        assert s["violations"] == 0, s  # no realised safety violation
        assert s["decisions"] > 0
    if mode != "neural":  # the neural stack here is trained for one epoch on random data
        assert sum(s["agreements"] for s in stats) > 0


def test_neural_mode_fails_at_construction_on_missing_or_mismatched_checkpoints(
    tmp_path: Path, tiny_ckpts
) -> None:
    from hrlxf_core.agent import LitaAgentHRL

    paths = {f"{k}_path": str(v) for k, v in tiny_ckpts.items()}
    with pytest.raises(CheckpointError, match="checkpoint file is missing"):
        LitaAgentHRL(mode="neural", **{**paths, "l3_path": str(tmp_path / "nope.pt")})
    with pytest.raises(CheckpointError, match="field 'schema.kind' is 'l3', expected a 'l2' checkpoint"):
        LitaAgentHRL(mode="neural", **{**paths, "l2_path": paths["l3_path"]})
    bad = torch.load(tiny_ckpts["l4"], weights_only=True)
    bad["state_dict"] = {k: torch.zeros(3, 3) if v.ndim == 2 else v for k, v in bad["state_dict"].items()}
    save_checkpoint(tmp_path / "bad_l4.pt", bad)
    with pytest.raises(CheckpointError, match="bad_l4.pt: checkpoint does not fit the model: tensor"):
        LitaAgentHRL(mode="neural", **{**paths, "l4_path": str(tmp_path / "bad_l4.pt")})
    with pytest.raises(ValueError, match="unknown LitaAgentHRL mode 'greedy'"):
        LitaAgentHRL(mode="greedy")


def test_batch_plan_is_order_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans captured in a real world are identical for every presentation order of the threads."""
    apply_sandbox_env(tmp_path)
    calls = []
    real = agent_mod.plan_round

    def recording(stack, obs, goal, my_id, inputs, ledger):
        if len(inputs) >= 3 and len(calls) < 12:
            calls.append(
                (
                    stack,
                    obs.copy(),
                    goal.copy(),
                    my_id,
                    list(inputs),
                    {k: ThreadHistory(list(v.entries)) for k, v in ledger.items()},
                )
            )
        return real(stack, obs, goal, my_id, inputs, ledger)

    monkeypatch.setattr(agent_mod, "plan_round", recording)
    run_world(_world({"mode": "heuristic"}, seed=5), "order", tmp_path / "log", tracked=False)
    assert len(calls) >= 3
    rng = random.Random(0)
    for stack, obs, goal, my_id, inputs, ledger in calls:
        ref = real(stack, obs, goal, my_id, inputs, ledger)
        for _ in range(3):
            shuffled = inputs[:]
            rng.shuffle(shuffled)
            assert real(stack, obs, goal, my_id, shuffled, ledger) == ref


def test_evaluation_specs_put_every_contender_in_every_world() -> None:
    cfg = EvalConfig(contenders=("LitaAgentHRL-l1", "PenguinAgent", "AS0"), n_worlds=3, checkpoints_dir="x")
    for spec in draw_eval_specs(cfg, "e"):
        labels = [lab for lab in spec.agent_labels if lab != "filler"]
        assert sorted(labels) == sorted(cfg.contenders)
        assert all(spec.agent_levels.count(level) >= 4 for level in range(spec.n_processes))


@pytest.mark.parametrize("n_worlds", [1, 2, 3, 5, 7, 12, 20])
@pytest.mark.parametrize("n_contenders", [2, 3, 7, 10])
@pytest.mark.parametrize("levels", [(3, 3), (2, 2), (2, 3), (2, 4)])
def test_evaluation_is_level_balanced(n_worlds: int, n_contenders: int, levels: tuple[int, int]) -> None:
    """Each contender's count at each level differs by at most 1 within every level count, so it
    does at every level class once the worlds of a level count are whole blocks; and a fixed
    level count gives exactly equal counts when the worlds are a multiple of it."""
    names = ("PenguinAgent", "AS0", "XenoSotaAgent", "UltraSuperMiracleSoraFinalAgentZ", "PriceTrendStdAgent",
             "CautiousStdAgent", "DogAgent", "AX", "QuickDecisionAgent", "PenguinAgent+L1")[:n_contenders]  # fmt: skip
    cfg = EvalConfig(
        contenders=names, n_worlds=n_worlds, n_processes_min=levels[0], n_processes_max=levels[1]
    )
    specs = draw_eval_specs(cfg, "bal")
    assert len(specs) == n_worlds
    counts: dict[tuple[int, str], dict[int, int]] = {}
    for spec in specs:
        placed = [
            (lab, lv) for lab, lv in zip(spec.agent_labels, spec.agent_levels, strict=True) if lab != "filler"
        ]
        assert sorted(lab for lab, _ in placed) == sorted(names)  # everyone plays in every world
        per_level = [sum(1 for _, lv in placed if lv == level) for level in range(spec.n_processes)]
        assert max(per_level) - min(per_level) <= 1  # contenders spread evenly over the levels
        for lab, lv in placed:
            counts.setdefault((spec.n_processes, lab), {}).setdefault(lv, 0)
            counts[(spec.n_processes, lab)][lv] += 1
    for (n_proc, _), by_level in counts.items():
        c = [by_level.get(level, 0) for level in range(n_proc)]
        assert max(c) - min(c) <= 1, (n_proc, c)
        n_here = sum(1 for spec in specs if spec.n_processes == n_proc)
        if n_here % n_proc == 0:
            assert len(set(c)) == 1
    # the draw is reproducible and the seed changes who meets whom
    assert [s.to_json() for s in draw_eval_specs(cfg, "bal")] == [s.to_json() for s in specs]


def test_balanced_mean_is_the_mean_of_the_level_means() -> None:
    from hrlxf_core.evaluation import balanced_mean

    s = np.array([0.0, 0.2, 1.0, 1.2, 1.4, 2.0])
    lv = np.array(["first", "first", "middle", "middle", "middle", "last"])
    mean, ci = balanced_mean(s, lv)
    assert mean == pytest.approx((0.1 + 1.2 + 2.0) / 3)
    assert np.isnan(ci)  # one level has a single world: no CI
    s2 = np.concatenate([s, [2.2]])
    lv2 = np.concatenate([lv, ["last"]])
    mean2, ci2 = balanced_mean(s2, lv2)
    assert mean2 == pytest.approx((0.1 + 1.2 + 2.1) / 3) and 0 < ci2 < 5


def test_agent_evaluation_asset_on_a_tiny_tournament(tmp_path: Path, tiny_ckpts) -> None:
    from hrlxf_assets.evaluation import agent_evaluation
    from hrlxf_assets.resources import DataStore

    data = tmp_path / "data"
    for kind, path in tiny_ckpts.items():
        d = data / f"{kind}_model"
        d.mkdir(parents=True)
        (d / "current.json").write_text(json.dumps({"path": str(path), "sha256": "x"}))
    sel = data / "policy_selection"
    sel.mkdir()
    (sel / "current.json").write_text(
        json.dumps({k: str(p) for k, p in tiny_ckpts.items()} | {"winner": "awr"})
    )
    (tmp_path / "inst").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "inst")) as instance:
        result = dg.materialize(
            [agent_evaluation], instance=instance, resources={"data_store": DataStore(data_dir=str(data))},
            run_config={"ops": {"agent_evaluation": {"config": {
                "contenders": ["LitaAgentHRL-neural", "LitaAgentHRL-l1", "PenguinAgent"],
                "n_worlds": 2, "n_steps_min": 8, "n_steps_max": 9, "seed": 1}}}},
        )  # fmt: skip
    assert result.success
    (mat,) = result.asset_materializations_for_node("agent_evaluation")
    md = mat.metadata
    assert md["worlds_ok"].value == 2 and md["unsafe_agreements_behind_l1"].value == 0
    assert "LitaAgentHRL-neural" in md["results"].value and md["scores_plot"].value.startswith("![")
    summary = pl.read_parquet(Path(md["path"].value) / "summary.parquet")
    assert set(summary["contender"]) == {"LitaAgentHRL-neural", "LitaAgentHRL-l1", "PenguinAgent"}
    assert (summary["worlds"] == 2).all()
    hrl = summary.filter(pl.col("contender").str.starts_with("LitaAgentHRL"))
    assert (hrl["unsafe_agreements"] == 0).all() and (hrl["fallbacks"] == 0).all()
    # every contender reports its realised shortfall from the world's own accounting
    assert summary["shortfall_ratio"].is_not_null().all()
    assert "level-balanced mean" in md["results"].value and "| first | middle | last |" in md["results"].value
