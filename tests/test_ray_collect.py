"""Collection on Ray (the ``scale`` extra): same rows as the local pool, hangs timed out, resume.

The tests that run Ray are skipped when it is not installed (CI installs only ``.[dev]``) and
are marked slow (a Ray instance takes ~7 s to start here and each world a fresh worker); run
them with ``pytest -m slow tests/test_ray_collect.py``. The fast tests check, without Ray,
how the backend is chosen and how a local Ray instance is set up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from hrlxf_core.io import read_parquet_checked
from hrlxf_core.sim import collect as runner
from hrlxf_core.sim.collect import collect, make_config, parts_dir, resolve_backend
from hrlxf_core.sim.fault_agents import CRASHING as CRASH
from hrlxf_core.sim.fault_agents import HANGING as HANG
from hrlxf_core.sim.fault_agents import RAISING as RAISE
from hrlxf_core.sim.fault_agents import fault_status_mismatches
from hrlxf_core.sim.ray_backend import MAX_TEMP_DIR_CHARS, _finish, ray_init_args
from hrlxf_core.sim.records import SCHEMAS, TABLES
from hrlxf_core.sim.world_spec import draw_world_specs

GREEDY = "scml.std.agents.greedy.GreedyStdAgent"
TINY = dict(n_steps_min=6, n_steps_max=7, competitors_per_world=1)
#: Experts whose worlds are identical from run to run (tests/test_collect.py uses them too).
REPRODUCIBLE = ["PenguinAgent", "GreedyStdAgent", "SyncRandomStdAgent"]


# --------------------------------------------------------------------------- without Ray


def test_ray_backend_without_ray_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "ray_installed", lambda: False)
    with pytest.raises(RuntimeError, match=r"backend='ray' needs Ray.*pip install -e \"\.\[scale\]\""):
        resolve_backend("ray")
    assert resolve_backend("auto") == "local"
    assert resolve_backend("local") == "local"
    with pytest.raises(ValueError, match=r"unknown backend 'dask'"):
        resolve_backend("dask")
    with pytest.raises(ValueError, match=r"backend must be one of"):
        make_config("smoke", backend="dask")
    # a collection asked to run on Ray fails before writing anything
    cfg = make_config("smoke", roster=["GreedyStdAgent"], n_worlds=1, backend="ray", **TINY)
    with pytest.raises(RuntimeError, match=r"scale"):
        collect(cfg, tmp_path / "p", "x", tmp_path, progress=lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_asset_picks_local_without_the_extra_and_refuses_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    from hrlxf_assets.collect import TournamentLogsConfig, _pick_backend

    monkeypatch.setattr(runner, "ray_installed", lambda: False)
    assert _pick_backend(TournamentLogsConfig(backend="auto"), None) == "local"
    with pytest.raises(RuntimeError, match=r"TournamentLogsConfig.backend='ray'.*scale"):
        _pick_backend(TournamentLogsConfig(backend="ray"), None)
    # Ray importable but no dagster-ray resource (dagster-ray missing): auto falls back, ray refuses
    monkeypatch.setattr(runner, "ray_installed", lambda: True)
    assert _pick_backend(TournamentLogsConfig(backend="auto"), None) == "local"
    with pytest.raises(RuntimeError, match=r"needs dagster-ray.*scale"):
        _pick_backend(TournamentLogsConfig(backend="ray"), None)
    with pytest.raises(ValueError, match=r"TournamentLogsConfig.backend: unknown backend"):
        _pick_backend(TournamentLogsConfig(backend="Ray"), None)


def test_local_ray_instance_keeps_session_and_token_out_of_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    temp = Path(tempfile.mkdtemp(prefix="hrt-"))
    try:
        kwargs, env = ray_init_args(num_cpus=2, temp_dir=temp)
        assert kwargs["_temp_dir"] == str(temp.resolve()) and kwargs["num_cpus"] == 2
        assert kwargs["runtime_env"]["env_vars"]["PYTHONHASHSEED"] == "0"
        assert kwargs["address"] == "local"  # a new instance here, whatever RAY_ADDRESS says later
        assert env["RAY_AUTH_MODE"] == "token"  # Ray 2.60's default for local instances, kept
        token = Path(env["RAY_AUTH_TOKEN_PATH"])
        assert token.parent == temp.resolve() and token.stat().st_mode & 0o777 == 0o600
        assert ray_init_args(temp_dir=temp)[1]["RAY_AUTH_TOKEN_PATH"] == str(token)  # reused, not rewritten
        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
        assert "RAY_AUTH_TOKEN_PATH" not in ray_init_args(temp_dir=temp)[1]
        monkeypatch.setenv("RAY_ADDRESS", "head:6379")  # "local" still means a new instance here
        assert ray_init_args(address="local", temp_dir=temp)[0]["address"] == "local"
        monkeypatch.delenv("RAY_ADDRESS")
    finally:
        for p in temp.iterdir():
            p.unlink()
        temp.rmdir()
    # a cluster: only the address; authentication is the user's RAY_AUTH_* settings
    kwargs, env = ray_init_args(address="ray://head:10001", num_cpus=4)
    assert kwargs["address"] == "ray://head:10001" and "_temp_dir" not in kwargs and "num_cpus" not in kwargs
    assert env == {}
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")
    assert ray_init_args()[0]["address"] == "head:6379"
    monkeypatch.delenv("RAY_ADDRESS")
    long_dir = tmp_path / ("x" * MAX_TEMP_DIR_CHARS)
    with pytest.raises(ValueError, match=r"HRLXF_RAY_TMPDIR.*107 bytes"):
        ray_init_args(temp_dir=long_dir)


def test_a_ray_task_that_died_is_recorded_failed_with_rays_error(tmp_path: Path) -> None:
    """The driver side of a crash (worker killed, node lost), with a stand-in for ``ray.get``."""

    class DeadWorker:
        @staticmethod
        def get(ref: object, timeout: float | None = None) -> None:
            raise RuntimeError("The worker died unexpectedly while executing this task (SIGKILL)")

    (spec,) = draw_world_specs(run_id="d", roster_paths=[GREEDY], n_worlds=1, seed=0, **TINY)
    _finish(DeadWorker, object(), tmp_path, spec, "d", 3.0)
    (row,) = pl.read_parquet(parts_dir(tmp_path) / spec.world_id / "worlds.parquet").iter_rows(named=True)
    assert row["status"] == "failed"
    assert row["error"].startswith("Ray task failed (RuntimeError): The worker died")
    (spec2,) = draw_world_specs(run_id="e", roster_paths=[GREEDY], n_worlds=1, seed=0, **TINY)
    _finish(DeadWorker, object(), tmp_path, spec2, "e", 30.0, timeout_s=20.0)
    (row,) = pl.read_parquet(parts_dir(tmp_path) / spec2.world_id / "worlds.parquet").iter_rows(named=True)
    assert row["status"] == "timed_out" and "wall-clock limit of 20s" in row["error"]


# --------------------------------------------------------------------------- with Ray


@pytest.fixture
def ray_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Skip without Ray; a short, private Ray temp dir for the test (removed after)."""
    pytest.importorskip("ray")
    temp = Path(tempfile.mkdtemp(prefix="hrt-"))
    monkeypatch.setenv("HRLXF_RAY_TMPDIR", str(temp))
    for var in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    yield temp
    subprocess.run(["rm", "-rf", str(temp)], check=False)


def _ray_processes(temp: Path) -> list[str]:
    """Command lines of live processes of the Ray instance whose session lives under ``temp``."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(temp) in cmd:
                out.append(f"{d.name}: {cmd[:160]}")
    return out


def _stable(df: pl.DataFrame) -> pl.DataFrame:
    """Drop what differs from run to run by design: negmas' uuids and wall-clock times."""
    return df.drop([c for c in ("negotiation_id", "contract_id", "wall_time_s") if c in df.columns])


_BOTH_BACKENDS = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import dagster as dg
    from hrlxf_assets.collect import tournament_logs
    from hrlxf_assets.partitions import COLLECTION_RUNS
    from hrlxf_assets.resources import DataStore
    if __name__ == "__main__":
        base, roster = Path(sys.argv[1]), json.loads(sys.argv[2])
        out = {}
        for backend in ("local", "ray"):
            config = {"profile": "smoke", "roster": roster, "n_worlds": 3, "n_steps_min": 6, "n_steps_max": 8,
                      "competitors_per_world": 3, "workers": 1, "seed": 11, "backend": backend}
            (base / f"dagster-{backend}").mkdir()
            with dg.instance_for_test(temp_dir=str(base / f"dagster-{backend}")) as instance:
                instance.add_dynamic_partitions(COLLECTION_RUNS, ["same"])
                res = dg.materialize([tournament_logs], instance=instance, partition_key="same",
                                     resources={"data_store": DataStore(data_dir=str(base / backend))},
                                     run_config={"ops": {"tournament_logs": {"config": config}}})
                (mat,) = res.asset_materializations_for_node("tournament_logs")
                out[backend] = {k: v.value for k, v in mat.metadata.items() if k in ("backend", "worlds_ok")}
        (base / "metadata.json").write_text(json.dumps(out))
    """
)


@pytest.mark.slow
def test_ray_partition_has_the_same_rows_as_the_local_pool(tmp_path: Path, ray_tmp: Path) -> None:
    """Through the Dagster asset and its dagster-ray resource, in a process whose $HOME is empty.

    One world at a time on both sides: these worlds' outcomes depend on how fast they run (with
    the local pool alone, three busy processes on this 2-core machine change the contracts of
    the same seeds; docs/scale.md), and a second world, or a fresh Ray worker starting beside a
    running world, is such load. What is compared is the backends, not the machine's load."""
    home = tmp_path / "home"
    home.mkdir()
    script = tmp_path / "both.py"
    script.write_text(_BOTH_BACKENDS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEGMAS", "MPLCONFIG", "DAGSTER_HOME"))}
    env["HOME"] = str(home)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), json.dumps(REPRODUCIBLE)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta == {"local": {"backend": "local", "worlds_ok": 3}, "ray": {"backend": "ray", "worlds_ok": 3}}
    for t in TABLES:
        local = pl.read_parquet(tmp_path / "local" / "tournament_logs" / "same" / f"{t}.parquet")
        ray = pl.read_parquet(tmp_path / "ray" / "tournament_logs" / "same" / f"{t}.parquet")
        assert local.height > 0, t
        assert _stable(local).equals(_stable(ray)), t
    assert list(home.iterdir()) == []  # neither Ray (session, auth token) nor scml wrote under $HOME
    assert (ray_tmp / "auth_token").exists()  # the token Ray would have put in ~/.ray
    assert not _ray_processes(ray_tmp)  # the step shut its local Ray instance down


def _seed_covering(roster: list[str], n_worlds: int) -> int:
    for seed in range(200):
        specs = draw_world_specs(run_id="x", roster_paths=roster, n_worlds=n_worlds, seed=seed, **TINY)
        if {p for s in specs for p, c in zip(s.agent_paths, s.competitor, strict=True) if c} == set(roster):
            return seed
    raise AssertionError("no covering seed")


@pytest.mark.slow
def test_hanging_world_under_ray_times_out_and_is_recorded(tmp_path: Path, ray_tmp: Path) -> None:
    from hrlxf_core.sim.world_run import apply_sandbox_env

    apply_sandbox_env(tmp_path)
    roster = [GREEDY, HANG, RAISE, CRASH]
    seed = _seed_covering(roster, 4)
    cfg = make_config(
        "smoke", roster=roster, n_worlds=4, seed=seed, world_timeout_s=20, workers=2, backend="ray", **TINY
    )
    lines: list[str] = []
    t0 = time.perf_counter()
    res = collect(cfg, tmp_path / "logs", "faults", tmp_path, progress=lines.append)
    assert time.perf_counter() - t0 < 180  # the run ends: the hang was killed
    assert "worker(s) of Ray" in lines[0]
    worlds = pl.read_parquet(tmp_path / "logs" / "worlds.parquet")
    assert worlds.height == 4
    assert fault_status_mismatches(worlds, roster) == []
    assert all(
        "wall-clock limit of 20s" in e for e in worlds.filter(pl.col("status") == "timed_out")["error"]
    )
    assert res.n_ok >= 1 and res.n_failed >= 1 and res.n_timed_out >= 1
    timed_out_line = next(line for line in lines if " timed_out in " in line)
    elapsed = float(timed_out_line.split(" timed_out in ")[1].split("s")[0])
    assert 20 <= elapsed < 25  # killed at the limit, counted from the world's start
    decisions = pl.read_parquet(tmp_path / "logs" / "decisions.parquet")
    assert set(decisions["world_id"]) == set(worlds.filter(pl.col("status") == "ok")["world_id"])
    assert not _ray_processes(ray_tmp)  # the hung worker and the instance are gone


_KILLABLE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from hrlxf_core.sim.collect import collect, make_config
    from hrlxf_core.sim.world_run import apply_sandbox_env
    if __name__ == "__main__":
        out, data = Path(sys.argv[1]), Path(sys.argv[2])
        apply_sandbox_env(data)
        cfg = make_config("smoke", roster=["GreedyStdAgent", "SyncRandomStdAgent"], n_worlds=5, n_steps_min=6,
                          n_steps_max=8, competitors_per_world=2, seed=3, workers=1, backend=sys.argv[3])
        collect(cfg, out, "killme", data)
    """
)


def _done_parts(out: Path) -> list[Path]:
    pdir = parts_dir(out)
    return [d for d in pdir.iterdir() if not d.name.startswith(".")] if pdir.exists() else []


@pytest.mark.slow
def test_killed_ray_collection_resumes_skipping_finished_worlds(tmp_path: Path, ray_tmp: Path) -> None:
    out, data = tmp_path / "logs", tmp_path
    script = tmp_path / "run_collect.py"
    script.write_text(_KILLABLE)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out), str(data), "ray"],
        env={**os.environ, "HOME": str(tmp_path / "home")},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline and len(_done_parts(out)) < 2:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver mid-run
    proc.wait()
    survivors = {d.name: (d / "worlds.parquet").stat().st_mtime_ns for d in _done_parts(out)}
    assert 2 <= len(survivors) < 5
    for wid in survivors:  # every part on disk is complete and readable
        for t in TABLES:
            read_parquet_checked(parts_dir(out) / wid / f"{t}.parquet", SCHEMAS[t])
    deadline = time.time() + 30  # the killed driver's Ray instance goes down with it
    while time.time() < deadline and _ray_processes(ray_tmp):
        time.sleep(0.5)
    assert not _ray_processes(ray_tmp)

    from hrlxf_core.sim.world_run import apply_sandbox_env

    apply_sandbox_env(data)
    cfg = make_config(
        "smoke",
        roster=["GreedyStdAgent", "SyncRandomStdAgent"],
        n_worlds=5,
        n_steps_min=6,
        n_steps_max=8,
        competitors_per_world=2,
        seed=3,
        workers=2,
        backend="ray",
    )
    res = collect(cfg, out, "killme", data, progress=lambda _: None)
    assert res.n_skipped == len(survivors) and res.n_ok == 5
    for wid, mtime in survivors.items():  # finished worlds were not rerun
        assert (parts_dir(out) / wid / "worlds.parquet").stat().st_mtime_ns == mtime
    tables = {t: pl.read_parquet(out / f"{t}.parquet") for t in TABLES}
    assert tables["worlds"]["world_id"].n_unique() == tables["worlds"].height == 5
    assert tables["decisions"].select(["world_id", "agent_id", "day", "seq"]).is_duplicated().sum() == 0
    assert not [p for p in parts_dir(out).iterdir() if p.name.startswith(".")]  # no temp leftovers
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").iterdir())


_ON_CLUSTER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import dagster as dg
    from hrlxf_assets.collect import tournament_logs
    from hrlxf_assets.partitions import COLLECTION_RUNS
    from hrlxf_assets.resources import DataStore
    if __name__ == "__main__":
        base = Path(sys.argv[1])
        config = {"profile": "smoke", "roster": ["GreedyStdAgent"], "n_worlds": 2, "n_steps_min": 6,
                  "n_steps_max": 6, "competitors_per_world": 1, "seed": 5}  # backend auto, workers empty
        (base / "dagster").mkdir()
        with dg.instance_for_test(temp_dir=str(base / "dagster")) as instance:
            instance.add_dynamic_partitions(COLLECTION_RUNS, ["c"])
            res = dg.materialize([tournament_logs], instance=instance, partition_key="c",
                                 resources={"data_store": DataStore(data_dir=str(base / "data"))},
                                 run_config={"ops": {"tournament_logs": {"config": config}}})
            (mat,) = res.asset_materializations_for_node("tournament_logs")
            keep = ("backend", "workers", "worlds_ok")
            (base / "metadata.json").write_text(json.dumps({k: v.value for k, v in mat.metadata.items() if k in keep}))
    """
)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_a_cluster_address_is_the_only_change(tmp_path: Path, ray_tmp: Path) -> None:
    """A Ray cluster started apart (`ray start --head`, token auth), reached through Ray Client as
    dagster-ray and KubeRay do: only RAY_ADDRESS (and the cluster's token) differ from a laptop run."""
    home = tmp_path / "home"
    home.mkdir()
    head_tmp = Path(tempfile.mkdtemp(prefix="hrh-"))
    gcs, client = _free_port(), _free_port()
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "hrlxf-test-" + os.urandom(8).hex()}
    env = {**os.environ, "HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0", **auth}
    ray_cli = Path(sys.executable).parent / "ray"
    head = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", f"--port={gcs}", f"--ray-client-server-port={client}",
         "--num-cpus=2", "--include-dashboard=false", f"--dashboard-agent-listen-port={_free_port()}",
         f"--temp-dir={head_tmp}", "--disable-usage-stats"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        import socket

        deadline = time.time() + 90
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", client)) == 0:
                    break
            assert time.time() < deadline and head.poll() is None, "the Ray head did not come up"
            time.sleep(0.5)
        script = tmp_path / "on_cluster.py"
        script.write_text(_ON_CLUSTER)
        proc = subprocess.run(
            [sys.executable, str(script), str(tmp_path)],
            env={**env, "RAY_ADDRESS": f"ray://127.0.0.1:{client}"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
    finally:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        subprocess.run(["rm", "-rf", str(head_tmp)], check=False)
    # auto picked Ray, the worker count is the cluster's CPUs, the worlds ran there
    assert json.loads((tmp_path / "metadata.json").read_text()) == {
        "backend": "ray",
        "workers": 2,
        "worlds_ok": 2,
    }
    assert not list(ray_tmp.glob("session_*"))  # no local Ray instance was started
    assert list(home.iterdir()) == []
