"""The collection runner on real tiny worlds: failure isolation, resume after a kill, determinism."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest

from hrlxf_core.io import DataFileError, read_parquet_checked
from hrlxf_core.sim.collect import collect, make_config, parts_dir
from hrlxf_core.sim.fault_agents import CRASHING as CRASH
from hrlxf_core.sim.fault_agents import HANGING as HANG
from hrlxf_core.sim.fault_agents import RAISING as RAISE
from hrlxf_core.sim.fault_agents import fault_status_mismatches
from hrlxf_core.sim.records import SCHEMAS, TABLES
from hrlxf_core.sim.world_spec import draw_world_specs

GREEDY = "scml.std.agents.greedy.GreedyStdAgent"

TINY = dict(n_steps_min=6, n_steps_max=7, competitors_per_world=1)


def _seed_covering(roster: list[str], n_worlds: int) -> int:
    """A seed whose draw puts every roster agent in at least one world (so the test is exact)."""
    for seed in range(200):
        specs = draw_world_specs(run_id="x", roster_paths=roster, n_worlds=n_worlds, seed=seed, **TINY)
        comps = {p for s in specs for p, c in zip(s.agent_paths, s.competitor, strict=True) if c}
        if comps == set(roster):
            return seed
    raise AssertionError("no covering seed")


def test_hanging_and_raising_worlds_are_recorded_and_the_run_ends(tmp_path: Path) -> None:
    roster = [GREEDY, HANG, RAISE, CRASH]
    seed = _seed_covering(roster, 4)
    cfg = make_config("smoke", roster=roster, n_worlds=4, seed=seed, world_timeout_s=20, workers=2, **TINY)
    lines: list[str] = []
    t0 = time.perf_counter()
    res = collect(cfg, tmp_path / "logs", "faults", tmp_path, progress=lines.append)
    assert time.perf_counter() - t0 < 120  # the run ends (hang killed), generous bound against hangs only
    worlds = pl.read_parquet(tmp_path / "logs" / "worlds.parquet")
    assert worlds.height == 4
    statuses = dict(zip(worlds["world_id"], worlds["status"], strict=True))
    assert fault_status_mismatches(worlds, roster) == []
    assert res.n_ok >= 1 and res.n_failed >= 1 and res.n_timed_out >= 1, statuses
    assert any("ETA" in line and "timed out" in line for line in lines)
    # the ok worlds produced rows; failed ones produced none
    decisions = pl.read_parquet(tmp_path / "logs" / "decisions.parquet")
    ok_ids = set(worlds.filter(pl.col("status") == "ok")["world_id"])
    assert set(decisions["world_id"]) == ok_ids


_KILLABLE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from hrlxf_core.sim.collect import collect, make_config
    if __name__ == "__main__":
        out, data = Path(sys.argv[1]), Path(sys.argv[2])
        cfg = make_config("smoke", roster=["GreedyStdAgent", "RandomStdAgent"], n_worlds=5, n_steps_min=6,
                          n_steps_max=8, competitors_per_world=2, seed=3, workers=1)
        collect(cfg, out, "killme", data)
    """
)


def _tables_of(out: Path) -> dict[str, pl.DataFrame]:
    return {t: pl.read_parquet(out / f"{t}.parquet") for t in TABLES}


def test_killed_collection_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    out, data = tmp_path / "logs", tmp_path
    script = tmp_path / "run_collect.py"
    script.write_text(_KILLABLE)
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out), str(data)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        done = (
            [d for d in parts_dir(out).glob("*") if not d.name.startswith(".")]
            if parts_dir(out).exists()
            else []
        )
        if len(done) >= 2:
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its workers, mid-run
    proc.wait()
    survivors = {
        d.name: (d / "worlds.parquet").stat().st_mtime_ns
        for d in parts_dir(out).iterdir()
        if not d.name.startswith(".")
    }
    assert 2 <= len(survivors) < 5
    for wid in survivors:  # every part on disk is complete and readable
        for t in TABLES:
            read_parquet_checked(parts_dir(out) / wid / f"{t}.parquet", SCHEMAS[t])

    cfg = make_config(
        "smoke",
        roster=["GreedyStdAgent", "RandomStdAgent"],
        n_worlds=5,
        n_steps_min=6,
        n_steps_max=8,
        competitors_per_world=2,
        seed=3,
        workers=2,
    )
    res = collect(cfg, out, "killme", data, progress=lambda _: None)
    assert res.n_skipped == len(survivors)
    assert res.n_ok == 5
    for wid, mtime in survivors.items():  # finished worlds were not rerun
        assert (parts_dir(out) / wid / "worlds.parquet").stat().st_mtime_ns == mtime
    tables = _tables_of(out)
    assert tables["worlds"]["world_id"].n_unique() == tables["worlds"].height == 5
    key = ["world_id", "agent_id", "day", "seq"]
    assert tables["decisions"].select(key).is_duplicated().sum() == 0
    assert not [p for p in parts_dir(out).iterdir() if p.name.startswith(".")]  # no temp leftovers
    assert not list(out.glob(".*.tmp"))
    # a rerun of a complete partition is a no-op that leaves the same tables
    res2 = collect(cfg, out, "killme", data, progress=lambda _: None)
    assert res2.n_skipped == 5
    assert _tables_of(out)["decisions"].equals(tables["decisions"])


def _stable(df: pl.DataFrame) -> pl.DataFrame:
    """Drop the uuid columns negmas draws from the OS (not from our seeds)."""
    return df.drop([c for c in ("negotiation_id", "contract_id") if c in df.columns])


@pytest.mark.slow  # long (determinism is covered by tests/test_determinism.py in the default run)
def test_fixed_seed_gives_identical_results_and_nothing_outside_data_dir(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    script = tmp_path / "twice.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from pathlib import Path
            from hrlxf_core.sim.collect import collect, make_config
            from hrlxf_core.sim.world_run import apply_sandbox_env
            if __name__ == "__main__":
                base = Path(sys.argv[1])
                apply_sandbox_env(base / "data")
                cfg = make_config("smoke", roster=["PenguinAgent", "GreedyStdAgent", "SyncRandomStdAgent"],
                                  n_worlds=2, n_steps_min=6, n_steps_max=8, competitors_per_world=3, seed=11)
                for name in ("a", "b"):
                    collect(cfg, base / "data" / name, "same", base / "data", progress=lambda _: None)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEGMAS", "MPLCONFIG"))}
    env["HOME"] = str(home)
    subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        env=env,
        check=True,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for t in ("decisions", "contracts", "day_states", "negotiations"):
        a = _stable(pl.read_parquet(tmp_path / "data" / "a" / f"{t}.parquet"))
        b = _stable(pl.read_parquet(tmp_path / "data" / "b" / f"{t}.parquet"))
        assert a.height > 0
        assert a.equals(b), t
    assert list(home.iterdir()) == []  # scml/negmas/matplotlib wrote nothing under $HOME
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "home", "twice.py"]


def _one_greedy_world(seed: int):
    """A one-world, five-day config (the smallest collection the runner accepts)."""
    return make_config(
        "smoke",
        roster=["GreedyStdAgent"],
        n_worlds=1,
        n_steps_min=5,
        n_steps_max=5,
        competitors_per_world=1,
        seed=seed,
    )


def test_resume_with_a_different_config_is_refused(tmp_path: Path) -> None:
    cfg = _one_greedy_world(1)
    collect(cfg, tmp_path / "p", "p", tmp_path, progress=lambda _: None)
    other = _one_greedy_world(2)
    with pytest.raises(ValueError, match=r"collection.json.*different config.*seed"):
        collect(other, tmp_path / "p", "p", tmp_path, progress=lambda _: None)


def test_config_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        make_config("huge")
    with pytest.raises(ValueError, match="workers must be >= 1"):
        make_config("smoke", workers=0)
    full = make_config("full")
    assert (full.n_steps_min, full.n_steps_max) == (50, 200)


def test_broken_part_file_names_file_and_field(tmp_path: Path) -> None:
    good = tmp_path / "w.parquet"
    pl.DataFrame({"world_id": ["a"]}).write_parquet(good)
    with pytest.raises(DataFileError, match=r"w.parquet \(field 'status'\): column is missing"):
        read_parquet_checked(good, {"world_id": pl.String, "status": pl.String})
    truncated = tmp_path / "t.parquet"
    truncated.write_bytes(good.read_bytes()[:20])
    with pytest.raises(DataFileError, match="t.parquet: not a readable parquet file"):
        read_parquet_checked(truncated)


def test_partition_of_an_older_record_schema_is_refused(tmp_path: Path) -> None:
    import json

    cfg = _one_greedy_world(1)
    out = tmp_path / "p"
    out.mkdir()
    (out / "collection.json").write_text(json.dumps({"record_schema_version": 1, "draw_key": cfg.draw_key()}))
    with pytest.raises(ValueError, match=r"record_schema_version.*schema v1.*new partition"):
        collect(cfg, out, "p", tmp_path, progress=lambda _: None)
