"""Dataset assets on a tiny real collection, and clear errors on broken logs."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from hrlxf_assets.collect import tournament_logs
from hrlxf_assets.datasets import MACRO_FILE, MICRO_FILE, macro_samples, micro_samples
from hrlxf_assets.partitions import COLLECTION_RUNS
from hrlxf_assets.resources import DataStore
from hrlxf_assets.teachers import teacher_table_asset
from hrlxf_core.datasets.checks import check_macro, check_micro
from hrlxf_core.datasets.macro import build_macro
from hrlxf_core.datasets.micro import build_micro
from hrlxf_core.datasets.partition import load_partition
from hrlxf_core.io import DataFileError

EXPERTS = ["PenguinAgent", "AS0", "UltraSuperMiracleSoraFinalAgentZ"]
TEACHERS: dict = {}  # the teacher_table materialization of the module's tiny collection
RUN_CONFIG = {
    "ops": {
        "tournament_logs": {
            "config": {
                "roster": EXPERTS,
                "n_worlds": 2,
                "n_steps_min": 8,
                "n_steps_max": 10,
                "competitors_per_world": 3,
                "workers": 2,
                "seed": 5,
            }
        },
        "macro_samples": {"config": {"experts": EXPERTS}},
        "micro_samples": {"config": {"experts": EXPERTS}},
    }
}


@pytest.fixture(scope="module")
def materialized(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("datasets")
    with dg.instance_for_test(temp_dir=str(tmp)) as instance:
        instance.add_dynamic_partitions(COLLECTION_RUNS, ["tiny"])
        result = dg.materialize(
            [tournament_logs, macro_samples, micro_samples],
            instance=instance,
            partition_key="tiny",
            resources={"data_store": DataStore(data_dir=str(tmp / "data"))},
            run_config=RUN_CONFIG,
        )
        TEACHERS["result"] = dg.materialize(
            [teacher_table_asset],
            instance=instance,
            resources={"data_store": DataStore(data_dir=str(tmp / "data"))},
        )
        yield tmp / "data", result


def test_both_dataset_assets_materialize_from_a_tiny_real_collection(materialized) -> None:
    data, result = materialized
    assert result.success
    macro = pl.read_parquet(data / "macro_samples" / "tiny" / MACRO_FILE)
    micro = pl.read_parquet(data / "micro_samples" / "tiny" / MICRO_FILE)
    logs = data / "tournament_logs" / "tiny"
    day_states = pl.read_parquet(logs / "day_states.parquet")
    decisions = pl.read_parquet(logs / "decisions.parquet")
    # one macro row per tracked expert agent-day, one micro row per decision
    assert macro.height == day_states.height > 0
    assert micro.height == decisions.height > 0
    assert set(macro["agent_type"]) <= set(day_states["agent_type"])
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert set(checks) == {"macro_valid", "micro_valid", "expert_clip_rate"}
    assert checks["macro_valid"] and checks["micro_valid"]
    (mat,) = result.asset_materializations_for_node("micro_samples")
    assert mat.metadata["rows"].value == micro.height
    assert set(mat.metadata["op_labels"].value) <= {"ACCEPT", "OFFER", "END"}


def test_micro_samples_report_the_expert_clip_rate(materialized) -> None:
    """The share of expert actions L1 would change or forbid, by level × role × kind, is in the
    metadata, agrees with the per-decision flags of the dataset, and feeds the warning check."""
    data, result = materialized
    micro = pl.read_parquet(data / "micro_samples" / "tiny" / MICRO_FILE)
    (mat,) = result.asset_materializations_for_node("micro_samples")
    table = mat.metadata["expert_clip_rate"].value
    assert table.startswith("| level | role | kind |") and "| all |" in table
    by = mat.metadata["expert_clip_rate_by_level_role"].value
    assert by and set(k.split("/")[0] for k in by) <= {"first", "middle", "last"}
    acted = micro.filter(pl.col("action_kind") != "end")
    assert acted.height > 0 and set(micro["action_kind"]) <= {"accept", "counter", "open", "end"}
    for key, rate in by.items():
        level, role = key.split("/")
        part = acted.filter((pl.col("level") == level) & (pl.col("is_buyer") == (role == "buyer")))
        want = (part["l1_changed"].sum() + part["l1_forbidden"].sum()) / part.height
        assert rate == pytest.approx(want, abs=1e-4)
    assert not (micro["l1_changed"] & micro["l1_forbidden"]).any()
    assert not micro.filter(pl.col("action_kind") == "end")["l1_changed"].any()
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "expert_clip_rate"]
    assert check.passed == (max(by.values()) <= 0.10)


def test_experts_filter_is_exact(materialized) -> None:
    data, _ = materialized
    only = load_partition(data / "tournament_logs" / "tiny", ["PenguinAgent"])
    assert set(only.decisions["agent_type"]) <= {
        "scml_agents.scml2024.standard.team_penguin.penguinagent.PenguinAgent"
    }
    assert build_micro(only).height == only.decisions.height


def test_checks_catch_bad_samples(materialized) -> None:
    data, _ = materialized
    micro = pl.read_parquet(data / "micro_samples" / "tiny" / MICRO_FILE)
    leaked = micro.with_columns(hist_last_event=pl.col("own_event"))
    assert any(p.startswith("hist_last_event") for p in check_micro(leaked))
    nan = micro.with_columns(b_free=pl.lit(float("nan"), dtype=pl.Float32))
    assert any("b_free" in p for p in check_micro(nan))
    macro = pl.read_parquet(data / "macro_samples" / "tiny" / MACRO_FILE)
    day_states = pl.read_parquet(data / "tournament_logs" / "tiny" / "day_states.parquet")
    assert check_macro(macro, day_states) == []
    # a macro row whose inputs do not come from the day-start snapshot is caught
    shifted = macro.with_columns(day=pl.col("day") + 1).filter(pl.col("day") < pl.col("n_steps"))
    assert any("day-start" in p for p in check_macro(shifted, day_states))
    bad_goal = macro.with_columns(
        goal=pl.col("goal").arr.eval(pl.element() * 0 - 1.0).cast(macro.schema["goal"])
    )
    assert any("quantity label" in p for p in check_macro(bad_goal))


def _copy_logs(materialized, tmp_path: Path) -> Path:
    data, _ = materialized
    dst = tmp_path / "logs"
    shutil.copytree(data / "tournament_logs" / "tiny", dst)
    return dst


def test_missing_column_names_file_and_field(materialized, tmp_path: Path) -> None:
    logs = _copy_logs(materialized, tmp_path)
    pl.read_parquet(logs / "decisions.parquet").drop("relative_time").write_parquet(
        logs / "decisions.parquet"
    )
    with pytest.raises(
        DataFileError, match=r"decisions.parquet \(field 'relative_time'\): column is missing"
    ):
        load_partition(logs, EXPERTS)


def test_truncated_file_names_file(materialized, tmp_path: Path) -> None:
    logs = _copy_logs(materialized, tmp_path)
    raw = (logs / "contracts.parquet").read_bytes()
    (logs / "contracts.parquet").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFileError, match=r"contracts.parquet: not a readable parquet file"):
        load_partition(logs, EXPERTS)


def test_impossible_value_names_file_and_field(materialized, tmp_path: Path) -> None:
    logs = _copy_logs(materialized, tmp_path)
    ds = pl.read_parquet(logs / "day_states.parquet")
    ds.with_columns(
        pl.when(pl.int_range(pl.len()) == 3)
        .then(-5.0)
        .otherwise(pl.col("inventory_input"))
        .alias("inventory_input")
    ).write_parquet(logs / "day_states.parquet")
    with pytest.raises(
        DataFileError,
        match=r"day_states.parquet \(field 'inventory_input'\): 1 row\(s\) with an impossible value",
    ):
        load_partition(logs, EXPERTS)


def test_a_failed_build_leaves_the_previous_dataset_intact(materialized, tmp_path: Path) -> None:
    """Bad input stops the asset before it writes: the dataset already on disk is untouched."""
    data, _ = materialized
    root = tmp_path / "data"
    shutil.copytree(data, root)
    before = (root / "micro_samples" / "tiny" / MICRO_FILE).read_bytes()
    logs = root / "tournament_logs" / "tiny"
    pl.read_parquet(logs / "decisions.parquet").drop("action").write_parquet(logs / "decisions.parquet")
    (tmp_path / "inst").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "inst")) as instance:
        instance.add_dynamic_partitions(COLLECTION_RUNS, ["tiny"])
        result = dg.materialize(
            [micro_samples],
            instance=instance,
            partition_key="tiny",
            resources={"data_store": DataStore(data_dir=str(root))},
            run_config={"ops": {"micro_samples": {"config": {"experts": EXPERTS}}}},
            raise_on_error=False,
        )
    assert not result.success
    assert (root / "micro_samples" / "tiny" / MICRO_FILE).read_bytes() == before
    assert not list((root / "micro_samples" / "tiny").glob(".*"))  # no temp leftovers
    pq.read_metadata(root / "micro_samples" / "tiny" / MICRO_FILE)


def test_macro_builder_is_deterministic(materialized) -> None:
    data, _ = materialized
    tables = load_partition(data / "tournament_logs" / "tiny", EXPERTS)
    a, b = build_macro(tables), build_macro(tables)
    assert a.equals(b)
    goal = np.stack(a["goal"].to_numpy())
    assert np.isfinite(goal).all()


def test_l4_features_from_a_real_partition_match_row_by_row(materialized) -> None:
    from hrlxf_core.datasets.offline_obs import decision_threads
    from hrlxf_core.l1_safety import baseline, l1_limits
    from hrlxf_core.l4_features import N_GLOBAL, N_THREAD, global_features, thread_features

    data, _ = materialized
    t = load_partition(data / "tournament_logs" / "tiny", EXPERTS)
    dec, obs, threads = decision_threads(t)
    limits = l1_limits(obs)
    base = baseline(obs, limits, threads)
    args = (
        dec["round"].to_numpy(),
        dec["relative_time"].to_numpy(),
        dec["recv_q"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
        (dec["recv_t"] - dec["day"]).cast(pl.Float64).fill_null(np.nan).to_numpy(),
        dec["recv_p"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
    )
    feats = thread_features(obs, limits, threads, base, *args)
    assert feats.shape == (dec.height, N_THREAD) and np.isfinite(feats).all()
    g = global_features(obs, np.ones(obs.size), np.zeros(obs.size))
    assert g.shape == (obs.size, N_GLOBAL) and np.isfinite(g).all()
    # a single thread computed alone (as the live agent does) equals its row of the batch
    for i in (0, dec.height // 2, dec.height - 1):
        one = [i]
        lim1 = l1_limits(obs.take(one))
        f1 = thread_features(
            obs.take(one),
            lim1,
            threads.take(np.array(one)),
            baseline(obs.take(one), lim1, threads.take(np.array(one))),
            *(a[one] for a in args),
        )
        np.testing.assert_allclose(f1[0], feats[i], atol=1e-9)


def test_import_adopts_a_partition_folder_and_parses_it(materialized, tmp_path: Path) -> None:
    """``hrlxf import`` copies a partition folder (e.g. the shared datasets) under the data dir,
    registers it and parses it; a folder that is not a partition gets one clear line, rc 2."""
    import subprocess
    import sys

    data, _ = materialized
    src = data / "tournament_logs" / "tiny"
    assert (src / "collection.json").exists()
    flags = ["--dagster-home", str(tmp_path / "home"), "--data-dir", str(tmp_path / "data")]
    cmd = [sys.executable, "-m", "hrlxf_assets.cli", "import"]
    ok = subprocess.run([*cmd, str(src), "adopted", *flags], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    assert "check micro_samples:micro_valid passed" in ok.stdout
    copied = tmp_path / "data" / "tournament_logs" / "adopted"
    assert (copied / "decisions.parquet").read_bytes() == (src / "decisions.parquet").read_bytes()
    assert (tmp_path / "data" / "micro_samples" / "adopted" / MICRO_FILE).exists()
    bad = subprocess.run([*cmd, str(tmp_path), "nope", *flags], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "collection.json not found" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


def test_sell_needs_match_clip_and_the_refusal_table_is_monotone(materialized) -> None:
    """The L1 allowance's measurement (hrlxf_core.l1_exposure) on a real partition: one row per
    expert sell action; an action whose need is within the allowance passes (R1) by definition of
    q_sell, so clip() refuses or cuts only actions that need more (or that B_free cannot fund);
    refusal shares fall as the allowance grows, and the chosen allowance meets the target."""
    from hrlxf_core.l1_exposure import ALLOWANCES, REFUSAL_TARGET, chosen_allowance, refusal_table, sell_needs
    from hrlxf_core.l1_safety import SELL_ALLOWANCE_LINES

    data, _ = materialized
    tables = load_partition(data / "tournament_logs" / "tiny", EXPERTS)
    needs = sell_needs(tables)
    micro = pl.read_parquet(data / "micro_samples" / "tiny" / MICRO_FILE)
    sells = micro.filter(~pl.col("is_buyer") & (pl.col("action_kind") != "end"))
    assert needs.height == sells.height > 0
    # L1 changed or forbade each expert sell whose need exceeds its level's allowance
    joined = sells.sort(["world_id", "agent_id", "day", "seq"]).with_columns(
        pl.Series("need", needs["need_lines"].to_numpy())
    )
    for level, allowance in SELL_ALLOWANCE_LINES.items():
        over = joined.filter((pl.col("level") == level) & (pl.col("need") > allowance + 1e-9))
        assert (over["l1_changed"] | over["l1_forbidden"]).all()
    table = refusal_table(needs)
    for r in table.iter_rows(named=True):
        shares = [r[f"a={a:g}"] for a in ALLOWANCES]
        assert all(x >= y for x, y in zip(shares, shares[1:], strict=False))
        assert r["sells_ahead"] == shares[0]
    for level, a in chosen_allowance(table).items():
        row = table.filter(pl.col("level") == level).row(0, named=True)
        assert row[f"a={a:g}"] <= REFUSAL_TARGET or a == ALLOWANCES[-1]


# -- outcomes: the profit return, the teacher table and the outcome weights, on real logs ---------
def test_profit_return_is_the_balance_change_hand_checked(materialized) -> None:
    from hrlxf_core.datasets.outcomes import PROFIT_GAMMA

    data, _ = materialized
    t = load_partition(data / "tournament_logs" / "tiny", EXPERTS)
    micro = pl.read_parquet(data / "micro_samples" / "tiny" / MICRO_FILE)
    macro = pl.read_parquet(data / "macro_samples" / "tiny" / MACRO_FILE)
    w = t.worlds.row(0, named=True)
    checked = 0
    for aid, final, init, score in zip(
        w["agent_ids"], w["final_balances"], w["initial_balances"], w["scores"], strict=True
    ):
        ds = t.day_states.filter((pl.col("world_id") == w["world_id"]) & (pl.col("agent_id") == aid))
        if ds.height < 3:
            continue
        bal = ds.sort("day")["balance"].to_list()
        days = ds.sort("day")["day"].to_list()
        # by hand: the last three days' profit and return-to-go
        r = [(bal[-2] - bal[-3]) / init, (bal[-1] - bal[-2]) / init, (final - bal[-1]) / init]
        g_last = r[2]
        g_prev = r[1] + PROFIT_GAMMA * g_last
        g_prev2 = r[0] + PROFIT_GAMMA * g_prev
        mine = macro.filter((pl.col("world_id") == w["world_id"]) & (pl.col("agent_id") == aid)).sort("day")
        np.testing.assert_allclose(mine["profit"].to_list()[-3:], r, rtol=1e-5, atol=1e-7)
        assert mine["profit"].sum() == pytest.approx(score - 1.0, abs=1e-4)  # a world's r sum to score − 1
        assert mine["agent_score"].to_list()[0] == pytest.approx(score, rel=1e-5)
        for day, g in zip(days[-3:], (g_prev2, g_prev, g_last), strict=True):
            rows = micro.filter(
                (pl.col("world_id") == w["world_id"]) & (pl.col("agent_id") == aid) & (pl.col("day") == day)
            )
            if rows.height:  # every decision of the day carries the day's return
                np.testing.assert_allclose(rows["reward"].to_numpy(), g, rtol=1e-4, atol=1e-6)
                checked += 1
    assert checked >= 3


def test_teacher_table_asset_and_outcome_weights_on_real_rows(materialized) -> None:
    from hrlxf_core.datasets.outcomes import agent_world_scores, expert_name, teacher_weights

    data, _ = materialized
    res = TEACHERS["result"]
    assert res.success
    md = res.asset_materializations_for_node("teacher_table")[0].metadata
    table = pl.read_parquet(data / "teacher_table" / "teacher_table.parquet")
    assert set(table["expert"]) <= set(EXPERTS) and table.height >= 2
    assert "| expert | level-balanced mean |" in md["teacher_table"].value
    # the table's means are the worlds' own scores, by hand
    t = load_partition(data / "tournament_logs" / "tiny", EXPERTS)
    sc = agent_world_scores(t.worlds).filter(pl.col("tracked"))
    for r in table.iter_rows(named=True):
        for lv in ("first", "middle", "last"):
            x = sc.filter((pl.col("expert") == r["expert"]) & (pl.col("level") == lv))["score"]
            assert (r[f"mean_{lv}"] is None) == (x.len() == 0)
            if x.len():
                assert r[f"mean_{lv}"] == pytest.approx(float(x.mean()))
    # outcome weights of the macro rows
    macro = pl.read_parquet(data / "macro_samples" / "tiny" / MACRO_FILE)
    expert = np.array([expert_name(a) for a in macro["agent_type"].to_list()])
    level, score = macro["level"].to_numpy(), macro["agent_score"].to_numpy().astype(float)
    key = (macro["world_id"] + "/" + macro["agent_id"]).to_numpy()
    assert (teacher_weights(expert, level, score, key, "uniform") == 1).all()
    top = teacher_weights(expert, level, score, key, "top", top=1, min_agent_worlds=1)
    for lv in np.unique(level):
        at = level == lv
        per_aw = sc.filter(pl.col("level") == lv).group_by("expert").agg(pl.col("score").mean())
        per_aw = per_aw.filter(pl.col("expert").is_in(list(set(expert[at]))))
        best = per_aw.sort("score", descending=True)["expert"][0]
        assert set(expert[at & (top > 0)]) == {best}, lv  # only the level's best expert teaches
    w = teacher_weights(expert, level, score, key, "score")
    assert w.mean() == pytest.approx(1.0, rel=1e-5)
    for lv in np.unique(level):  # within a level, a better agent-world weighs at least as much
        at = level == lv
        order = np.argsort(score[at])
        assert (np.diff(w[at][order]) >= -1e-6).all()


def test_a_dataset_failing_its_blocking_check_is_never_published(
    materialized, tmp_path: Path, monkeypatch
) -> None:
    """check_micro / check_macro report a problem: the build goes to <name>.rejected.parquet, the
    previous valid file stays byte for byte, and with no previous file there is no canonical file
    for training's source_files to pick up. A later valid build replaces the rejected file."""
    import hrlxf_assets.datasets as datasets
    from hrlxf_assets.publish import rejected_path

    data, _ = materialized
    root = tmp_path / "data"
    shutil.copytree(data, root)
    micro = root / "micro_samples" / "tiny" / MICRO_FILE
    macro = root / "macro_samples" / "tiny" / MACRO_FILE
    before = micro.read_bytes()
    macro.unlink()  # macro: no valid build yet
    monkeypatch.setattr(datasets, "check_micro", lambda df: ["res_q: 1 row(s) out of range"])
    monkeypatch.setattr(datasets, "check_macro", lambda df, ds: ["goal: quantity label outside [0, 20]"])

    def run() -> dg.ExecuteInProcessResult:
        inst = tmp_path / f"inst{len(list(tmp_path.glob('inst*')))}"
        inst.mkdir()
        with dg.instance_for_test(temp_dir=str(inst)) as instance:
            instance.add_dynamic_partitions(COLLECTION_RUNS, ["tiny"])
            return dg.materialize(
                [macro_samples, micro_samples],
                instance=instance,
                partition_key="tiny",
                resources={"data_store": DataStore(data_dir=str(root))},
                run_config={
                    "ops": {k: {"config": {"experts": EXPERTS}} for k in ("macro_samples", "micro_samples")}
                },
                raise_on_error=False,
            )

    r = run()
    checks = {c.check_name: c.passed for c in r.get_asset_check_evaluations()}
    assert checks["micro_valid"] is False and checks["macro_valid"] is False
    assert micro.read_bytes() == before and not macro.exists()
    assert rejected_path(micro).exists() and rejected_path(macro).exists()
    for node in ("macro_samples", "micro_samples"):
        (mat,) = r.asset_materializations_for_node(node)
        assert mat.metadata["published"].value is False
        assert mat.metadata["path"].value.endswith(".rejected.parquet")

    monkeypatch.setattr(datasets, "check_micro", check_micro)
    monkeypatch.setattr(datasets, "check_macro", check_macro)
    assert run().success
    assert macro.exists() and not rejected_path(macro).exists() and not rejected_path(micro).exists()
