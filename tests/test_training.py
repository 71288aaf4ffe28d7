"""Training: exact resume, configured lr on resume, prepared-data reuse, and the five model-side
assets end to end on a tiny real collection."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import torch

from hrlxf_assets.collect import tournament_logs
from hrlxf_assets.datasets import macro_samples, micro_samples
from hrlxf_assets.models import l2_model, l3_model, l4_distill_set, l4_model, micro_samples_goal_hat
from hrlxf_assets.partitions import COLLECTION_RUNS
from hrlxf_assets.resources import DataStore
from hrlxf_core.models.l2 import L2Config, L2Net
from hrlxf_core.training.checkpoint import file_sha256, load_checkpoint
from hrlxf_core.training.l2_train import _l2_loss
from hrlxf_core.training.loop import TrainConfig, fit, lr_factor
from hrlxf_core.training.prepare import prepared


def _tiny_macro(n: int = 96, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x_static = rng.normal(size=(n, 12)).astype(np.float32)
    goal = np.abs(rng.normal(size=(n, 16))).astype(np.float32)
    goal[:, 1::2] = 1.0 + 0.1 * np.tanh(x_static[:, :8])
    return {
        "x_static": x_static,
        "x_temporal": rng.normal(size=(n, 41, 10)).astype(np.float32),
        "x_role": np.ones((n, 2), np.float32),
        "goal": goal,
        "goal_mask": np.ones((n, 16), np.float32),
    }


def test_resume_equals_uninterrupted_training(tmp_path: Path) -> None:
    data, val = _tiny_macro(96, 0), _tiny_macro(32, 1)
    cfg = TrainConfig(max_epochs=4, batch_size=16, patience=10, lr=3e-3, seed=7)
    mcfg = L2Config(conv_channels=8, static_hidden=16, fused_hidden=16)
    torch.manual_seed(0)
    a = L2Net(mcfg)
    fit(a, data, val, _l2_loss, cfg, tmp_path / "a", "l2", asdict(mcfg), log=lambda _: None)
    last_a = load_checkpoint(tmp_path / "a" / "last.pt", "l2")["state_dict"]

    torch.manual_seed(0)
    b = L2Net(mcfg)
    fit(
        b,
        data,
        val,
        _l2_loss,
        cfg,
        tmp_path / "b",
        "l2",
        asdict(mcfg),
        log=lambda _: None,
        stop_after_epochs=2,
    )
    torch.manual_seed(123)  # a different process state: resume must not depend on it
    b2 = L2Net(mcfg)
    res = fit(b2, data, val, _l2_loss, cfg, tmp_path / "b", "l2", asdict(mcfg), log=lambda _: None)
    assert res.resumed_from_epoch == 2
    last_b = load_checkpoint(tmp_path / "b" / "last.pt", "l2")["state_dict"]
    for k in last_a:
        torch.testing.assert_close(last_a[k], last_b[k], atol=1e-6, rtol=1e-5)


def test_resume_applies_the_configured_learning_rate(tmp_path: Path) -> None:
    data, val = _tiny_macro(64, 0), _tiny_macro(16, 1)
    mcfg = L2Config(conv_channels=8, static_hidden=16, fused_hidden=16)
    cfg = TrainConfig(max_epochs=4, batch_size=32, lr=1e-3, seed=1, warmup_epochs=0)
    fit(
        L2Net(mcfg),
        data,
        val,
        _l2_loss,
        cfg,
        tmp_path,
        "l2",
        asdict(mcfg),
        log=lambda _: None,
        stop_after_epochs=2,
    )
    new = TrainConfig(max_epochs=4, batch_size=32, lr=5e-4, seed=1, warmup_epochs=0)
    res = fit(
        L2Net(mcfg),
        data,
        val,
        _l2_loss,
        new,
        tmp_path,
        "l2",
        asdict(mcfg),
        log=lambda _: None,
        stop_after_epochs=1,
    )
    assert res.history[-1]["epoch"] == 2
    assert res.history[-1]["lr"] == pytest.approx(5e-4 * lr_factor(2, new))


def test_prepared_arrays_are_not_rebuilt(tmp_path: Path) -> None:
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * 100)
    calls = []

    def build(files):
        calls.append(files)
        return {"x": np.arange(10, dtype=np.float32)}

    a, d1, reused1 = prepared("k", [src], "h", tmp_path / "cache", build)
    b, d2, reused2 = prepared("k", [src], "h", tmp_path / "cache", build)
    assert (reused1, reused2) == (False, True) and len(calls) == 1 and d1 == d2
    assert isinstance(b["x"], np.memmap) and np.array_equal(a["x"], b["x"])
    src.write_bytes(b"y" * 100)  # new data: a new entry
    _, d3, reused3 = prepared("k", [src], "h", tmp_path / "cache", build)
    assert not reused3 and d3 != d1


EXPERTS = ["PenguinAgent", "AS0", "UltraSuperMiracleSoraFinalAgentZ"]
SMALL_TRAIN = {"max_epochs": 2, "patience": 2, "batch_size": 256}


def _logs_cfg(n_worlds: int, seed: int) -> dict:
    return {
        "config": {
            "roster": EXPERTS,
            "n_worlds": n_worlds,
            "n_steps_min": 8,
            "n_steps_max": 9,
            "competitors_per_world": 3,
            "workers": 2,
            "seed": seed,
        }
    }


@pytest.fixture(scope="module")
def trained_graph(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("graph")
    store = DataStore(data_dir=str(tmp / "data"))
    ds_cfg = {"config": {"experts": EXPERTS}}
    results = {}
    with dg.instance_for_test(temp_dir=str(tmp)) as instance:
        instance.add_dynamic_partitions(COLLECTION_RUNS, ["pa", "pb"])
        for p, n, seed in (("pa", 3, 1), ("pb", 1, 2)):
            r = dg.materialize(
                [tournament_logs, macro_samples, micro_samples],
                instance=instance,
                partition_key=p,
                resources={"data_store": store},
                run_config={
                    "ops": {
                        "tournament_logs": _logs_cfg(n, seed),
                        "macro_samples": ds_cfg,
                        "micro_samples": ds_cfg,
                    }
                },
            )
            assert r.success
        steps = [
            ([l2_model], None, {"l2_model": {"config": SMALL_TRAIN}}),
            ([micro_samples_goal_hat], "pa", {}),
            ([micro_samples_goal_hat], "pb", {}),
            ([l3_model], None, {"l3_model": {"config": {**SMALL_TRAIN, "awr_epochs": 1}}}),
            ([l4_distill_set], "pa", {"l4_distill_set": ds_cfg}),
            ([l4_distill_set], "pb", {"l4_distill_set": ds_cfg}),
            ([l4_model], None, {"l4_model": {"config": SMALL_TRAIN}}),
        ]
        for assets, key, ops in steps:
            r = dg.materialize(
                assets,
                instance=instance,
                partition_key=key,
                resources={"data_store": store},
                run_config={"ops": ops},
            )
            assert r.success, assets
            results.setdefault(assets[0].key.to_user_string(), []).append(r)
        yield tmp / "data", results


@pytest.mark.parametrize("asset", ["l2_model", "l3_model", "l4_model"])
def test_model_assets_record_lineage_and_pass_checks(trained_graph, asset: str) -> None:
    data, results = trained_graph
    (r,) = results[asset]
    (mat,) = r.asset_materializations_for_node(asset)
    md = {k: v.value for k, v in mat.metadata.items()}
    path = Path(md["checkpoint_path"])
    assert path.exists() and md["checkpoint_sha256"] == file_sha256(path)
    assert md["source_partitions"] == ["pa", "pb"]  # all materialized partitions, as a list
    assert md["training_curve"].startswith("![")
    ck = load_checkpoint(path, asset[:2])
    assert ck["lineage"]["source_partitions"] == ["pa", "pb"]
    assert set(ck["lineage"]["source_sha256"]) == {"pa", "pb"}
    assert ck["lineage"]["git_commit"] and ck["lineage"]["code_version"]
    checks = {c.check_name: c.passed for c in r.get_asset_check_evaluations()}
    assert checks["weights_finite"] and checks["reload_reproduces_metrics"]
    current = json.loads((data / asset / "current.json").read_text())
    assert Path(current["path"]) == path
    if asset == "l3_model":
        assert ck["lineage"]["l2_checkpoint"] == str(
            Path(json.loads((data / "l2_model" / "current.json").read_text())["path"])
        )
        assert {
            "op_accuracy",
            "op_accuracy_majority",
            "residual_mae_q",
            "residual_mae_q_zero",
            "delta_accuracy",
            "delta_accuracy_baseline",
        } <= set(ck["metrics"])
    if asset == "l2_model":
        assert "per_dim" in ck["metrics"] and ck["metrics"]["mae_train_mean"] > 0


def test_goal_hat_backfill_uses_the_trained_l2(trained_graph) -> None:
    import polars as pl

    data, _ = trained_graph
    gh = pl.read_parquet(data / "micro_samples_goal_hat" / "pa" / "micro_goal_hat.parquet")
    micro = pl.read_parquet(data / "micro_samples" / "pa" / "micro.parquet")
    assert gh.height == micro.height
    goal = np.stack(gh["goal"].to_numpy())
    assert (
        np.isfinite(goal).all() and np.abs(goal).sum() > 0
    )  # filled by L2, not the all-zero goal of micro_samples
    l4 = pl.read_parquet(data / "l4_distill_set" / "pa" / "l4_distill.parquet")
    sums = l4.group_by("set_id").agg(pl.col("teacher_alpha").sum())["teacher_alpha"].to_numpy()
    np.testing.assert_allclose(sums, 1.0, atol=1e-5)


def test_lineage_command_prints_the_chain_back_to_collection_runs(trained_graph, monkeypatch) -> None:
    from hrlxf_assets.cli import run_lineage

    data, _ = trained_graph
    monkeypatch.setenv("HRLXF_DATA_DIR", str(data))
    lines: list[str] = []
    assert run_lineage("l3_model", log=lines.append) == 0
    text = "\n".join(lines)
    assert "l3_model checkpoint" in text and "l2_model checkpoint" in text  # goal_hat came from this L2
    assert "<- micro_samples_goal_hat[pa]" in text and "<- micro_samples_goal_hat[pb]" in text
    assert "<- tournament_logs[pa]: 3 worlds (3 ok)" in text and "PenguinAgent" in text
    assert "op_accuracy_majority" in text
    assert run_lineage("no_such_model", log=lines.append) == 2


def _failure_message(result: dg.ExecuteInProcessResult, node: str) -> str:
    failure = result.failure_data_for_node(node)
    assert failure is not None, f"{node} did not fail"
    return failure.error.message if failure.error else ""


def test_unpartitioned_models_train_on_one_partition_and_refuse_zero(trained_graph, tmp_path: Path) -> None:
    """The inputs of the unpartitioned model assets: one chosen partition is enough; zero
    materialized partitions, or a chosen partition that is not materialized, is a clear failure."""
    data, _ = trained_graph
    small = {**SMALL_TRAIN, "max_epochs": 1}
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions(COLLECTION_RUNS, ["pa", "pb", "never-collected"])
        # a copy of the macro samples, so that the fixture's current L2 stays what it was
        shutil.copytree(data / "macro_samples", tmp_path / "data" / "macro_samples")
        store = DataStore(data_dir=str(tmp_path / "data"))
        one = dg.materialize(
            [l2_model],
            instance=instance,
            resources={"data_store": store},
            run_config={"ops": {"l2_model": {"config": {**small, "partitions": ["pa"]}}}},
        )
        (mat,) = one.asset_materializations_for_node("l2_model")
        assert mat.metadata["source_partitions"].value == ["pa"]
        assert load_checkpoint(Path(mat.metadata["checkpoint_path"].value), "l2")["lineage"][
            "source_partitions"
        ] == ["pa"]

        chosen_missing = dg.materialize(
            [l2_model],
            instance=instance,
            resources={"data_store": store},
            run_config={"ops": {"l2_model": {"config": {**small, "partitions": ["never-collected"]}}}},
            raise_on_error=False,
        )
        assert not chosen_missing.success
        msg = _failure_message(chosen_missing, "l2_model")
        assert "never-collected" in msg and "not materialized" in msg

        empty_store = DataStore(data_dir=str(tmp_path / "empty-data"))
        expected = {
            "l2_model": "no materialized partition to train on",
            "l4_model": "no materialized partition to train on",
            "l3_model": "materialize l2_model first",  # L3 needs the L2 of its goal_hat before data
        }
        for asset, name in ((l2_model, "l2_model"), (l4_model, "l4_model"), (l3_model, "l3_model")):
            zero = dg.materialize(
                [asset],
                instance=instance,
                resources={"data_store": empty_store},
                run_config={"ops": {name: {"config": small}}},
                raise_on_error=False,
            )
            assert not zero.success
            assert expected[name] in _failure_message(zero, name)


def _zero_residual(src: Path, dst: Path) -> None:
    """A deliberately broken L3: its residual mean head zeroed, so it plays the L1 baseline's
    quantities and prices (which over-buy: the L1-only agent is the weakest contender)."""
    from hrlxf_core.training.checkpoint import load_checkpoint, save_checkpoint

    ck = load_checkpoint(src, "l3")
    for k in ("res_mean.weight", "res_mean.bias"):
        ck["state_dict"][k] = torch.zeros_like(ck["state_dict"][k])
    save_checkpoint(dst, ck)


def test_policy_selection_picks_the_checkpoint_that_plays_better(trained_graph, tmp_path: Path) -> None:
    from hrlxf_assets.selection import policy_selection
    from hrlxf_core.selection import selected_policy
    from hrlxf_core.training.checkpoint import load_checkpoint

    data, _ = trained_graph
    l3 = Path(json.loads((data / "l3_model" / "current.json").read_text())["path"])
    broken = tmp_path / "l3_zeroed.pt"
    _zero_residual(l3, broken)
    cfg = {"n_worlds": 2, "n_steps_min": 10, "n_steps_max": 12, "seed": 3, "n_processes_min": 2,
           "n_processes_max": 2, "include_bc": True, "candidates": {"zeroed": str(broken)}}  # fmt: skip
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        r = dg.materialize(
            [policy_selection], instance=instance, resources={"data_store": DataStore(data_dir=str(data))},
            run_config={"ops": {"policy_selection": {"config": cfg}}},
        )  # fmt: skip
    assert r.success
    (check,) = r.get_asset_check_evaluations()
    assert check.passed
    md = r.asset_materializations_for_node("policy_selection")[0].metadata
    chosen = selected_policy(data)
    scores = chosen["scores"]
    assert set(scores) == {"awr", "bc", "zeroed"}
    assert chosen["winner"] == max(scores, key=scores.get) != "zeroed"
    assert scores["zeroed"] < scores[chosen["winner"]]
    assert md["winner"].value == chosen["winner"]
    # the choice is in the selected checkpoint's lineage, and its weights are the winner's
    ck = load_checkpoint(Path(chosen["l3"]), "l3")
    assert ck["lineage"]["selection"]["winner"] == chosen["winner"]
    assert ck["lineage"]["selection"]["scores"] == pytest.approx(scores)


def test_run_key_covers_every_training_knob_but_the_device(tmp_path: Path) -> None:
    from hrlxf_core.training.l2_train import run_dir_for

    base = TrainConfig()
    d0 = run_dir_for(tmp_path, "l2", tmp_path / "prep", {"a": 1}, base.run_key())
    same = run_dir_for(tmp_path, "l2", tmp_path / "prep", {"a": 1}, TrainConfig(device="cpu").run_key())
    assert same == d0  # another device resumes the same run
    for knob in ({"seed": 1}, {"batch_size": 64}, {"weight_decay": 0.0}, {"teacher_weighting": "top"}):
        other = run_dir_for(tmp_path, "l2", tmp_path / "prep", {"a": 1}, TrainConfig(**knob).run_key())
        assert other != d0, knob  # a new knob starts a fresh run instead of resuming the old one


def _nan_loss_after(epochs: int):
    """An L2 loss whose validation value is NaN for the first ``epochs`` validation passes."""
    calls = {"val": 0}

    def loss(model, b):
        value, parts = _l2_loss(model, b)
        if not model.training:
            calls["val"] += 1
            if calls["val"] <= epochs:
                value = value * float("nan")
        return value, parts

    return loss


def test_a_nan_first_validation_loss_never_becomes_the_best_epoch(tmp_path: Path) -> None:
    data = _tiny_macro(64)
    cfg = TrainConfig(max_epochs=3, batch_size=32, patience=5, seed=0)
    model = L2Net(L2Config(conv_channels=8))
    res = fit(model, data, data, _nan_loss_after(1), cfg, tmp_path / "run", "l2", {}, log=lambda _: None)
    assert np.isnan(res.history[0]["val_loss"])
    assert res.best_epoch >= 1 and np.isfinite(res.best_val)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    # every epoch NaN: a clear error, not NaN weights restored
    with pytest.raises(ValueError, match="not finite in any"):
        fit(L2Net(L2Config(conv_channels=8)), data, data, _nan_loss_after(99), cfg, tmp_path / "r2", "l2", {},
            log=lambda _: None)  # fmt: skip


def test_each_loss_term_is_logged_per_epoch(trained_graph) -> None:
    data, _ = trained_graph
    ck = load_checkpoint(Path(json.loads((data / "l3_model" / "current.json").read_text())["path"]), "l3")
    for row in ck["history"] + ck["awr_history"]:
        for term in ("op_ce", "residual_nll", "delta_ce", "value_mse"):
            assert np.isfinite(row[f"train_{term}"]) and np.isfinite(row[f"val_{term}"]), term
    assert ck["metrics"]["weighting"]["weighting"] == "uniform"


def test_max_train_worlds_keeps_nested_training_subsets_and_the_same_evaluation_worlds() -> None:
    from hrlxf_core.training.l2_train import weighted_splits

    n = 400
    wid = np.array([f"w{i % 40:02d}" for i in range(n)])
    arrays = {
        "x": np.arange(n, dtype=np.float32),
        "world_id": wid,
        "world_agent": np.char.add(wid, "/a"),
        "expert": np.array(["PenguinAgent"] * n),
        "level": np.array(["first"] * n),
        "agent_score": np.ones(n),
    }

    def worlds(m: int) -> dict[str, set[str]]:
        sub, split, info = weighted_splits(arrays, "uniform", lambda _m: None, m)
        assert info["train_worlds"] == len({wid[i] for i in split["train"]})
        return {s: {wid[int(i)] for i in sub[s]["x"]} for s in ("train", "val", "test")}

    full, ten, five = worlds(0), worlds(10), worlds(5)
    assert len(ten["train"]) == 10 and len(five["train"]) == 5
    assert five["train"] < ten["train"] < full["train"]  # nested
    assert ten["val"] == full["val"] and ten["test"] == full["test"]  # the same evaluation worlds


def _rerun(assets, data: Path, tmp: Path, partition: str | None, ops: dict) -> dg.ExecuteInProcessResult:
    """Materialize ``assets`` again on ``data`` (a copy of the fixture's data) in a fresh instance."""
    (tmp / "inst").mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(tmp / "inst")) as instance:
        instance.add_dynamic_partitions(COLLECTION_RUNS, ["pa", "pb"])
        return dg.materialize(
            assets,
            instance=instance,
            partition_key=partition,
            resources={"data_store": DataStore(data_dir=str(data))},
            run_config={"ops": ops},
            raise_on_error=False,
        )


def test_a_checkpoint_failing_a_blocking_check_is_never_published(
    trained_graph, tmp_path: Path, monkeypatch
) -> None:
    """weights_finite fails: the new checkpoint stays under runs/<run_id> for inspection, the
    metadata says why it was not published, and current.json (what micro_samples_goal_hat,
    policy_selection, agent_evaluation and LitaAgentHRL read) still names the previous one."""
    import hrlxf_assets.models as models

    src, _ = trained_graph
    data = tmp_path / "data"
    shutil.copytree(src / "macro_samples", data / "macro_samples")
    shutil.copytree(src / "l2_model", data / "l2_model")
    before = (data / "l2_model" / "current.json").read_bytes()
    monkeypatch.setattr(models, "_finite", lambda _path: False)
    r = _rerun([l2_model], data, tmp_path, None, {"l2_model": {"config": {**SMALL_TRAIN, "max_epochs": 1}}})
    checks = {c.check_name: c.passed for c in r.get_asset_check_evaluations()}
    assert checks["weights_finite"] is False
    (mat,) = r.asset_materializations_for_node("l2_model")
    assert mat.metadata["published"].value is False
    assert "weights_finite" in mat.metadata["not_published_reason"].value
    assert Path(mat.metadata["checkpoint_path"].value).exists()  # kept for inspection
    assert (data / "l2_model" / "current.json").read_bytes() == before
    assert models.current_checkpoint(DataStore(data_dir=str(data)), "l2_model") != Path(
        mat.metadata["checkpoint_path"].value
    )


def test_a_rejected_goal_hat_and_l4_set_stay_out_of_training(
    trained_graph, tmp_path: Path, monkeypatch
) -> None:
    """A goal_hat with an infinite dim and an L4 set whose α does not sum to 1 fail their
    blocking checks: each goes to its .rejected.parquet, the canonical file of a previous valid
    build is unchanged, and a partition with no valid build has no canonical file at all."""
    import polars as pl

    import hrlxf_core.datasets.l4_distill as l4d
    import hrlxf_core.training.l2_train as l2t
    from hrlxf_assets.publish import rejected_path

    src, _ = trained_graph
    data = tmp_path / "data"
    shutil.copytree(src, data, ignore=shutil.ignore_patterns(".train"))
    gh_pa = data / "micro_samples_goal_hat" / "pa" / "micro_goal_hat.parquet"
    gh_pb = data / "micro_samples_goal_hat" / "pb" / "micro_goal_hat.parquet"
    before = gh_pa.read_bytes()
    gh_pb.unlink()  # pb: no valid build yet
    real_backfill = l2t.backfill_goal_hat

    def broken_backfill(*args, **kwargs):
        df = real_backfill(*args, **kwargs)
        return df.with_columns(pl.col("goal").arr.eval(pl.element() * float("inf")).cast(df.schema["goal"]))

    monkeypatch.setattr(l2t, "backfill_goal_hat", broken_backfill)
    for p in ("pa", "pb"):
        r = _rerun([micro_samples_goal_hat], data, tmp_path, p, {})
        (check,) = r.get_asset_check_evaluations()
        assert not check.passed and "goal" in check.metadata["problems"].value
        (mat,) = r.asset_materializations_for_node("micro_samples_goal_hat")
        assert mat.metadata["published"].value is False
    assert gh_pa.read_bytes() == before and not gh_pb.exists()
    assert rejected_path(gh_pa).exists() and rejected_path(gh_pb).exists()

    from hrlxf_assets.lineage import source_files

    class _Ctx:  # source_files only asks the instance for the known partitions
        class instance:
            @staticmethod
            def get_dynamic_partitions(_name):
                return ["pa", "pb"]

    assert set(source_files(_Ctx(), data, "micro_samples_goal_hat", "micro_goal_hat.parquet", [])) == {"pa"}

    l4_pa = data / "l4_distill_set" / "pa" / "l4_distill.parquet"
    l4_before = l4_pa.read_bytes()
    real_l4 = l4d.build_l4_distill
    monkeypatch.setattr(
        l4d, "build_l4_distill", lambda *a: real_l4(*a).with_columns(pl.col("teacher_alpha") * 2)
    )
    r = _rerun([l4_distill_set], data, tmp_path, "pa", {"l4_distill_set": {"config": {"experts": EXPERTS}}})
    (check,) = r.get_asset_check_evaluations()
    assert not check.passed and "teacher_alpha" in check.metadata["problems"].value
    assert l4_pa.read_bytes() == l4_before and rejected_path(l4_pa).exists()
