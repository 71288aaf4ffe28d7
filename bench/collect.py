"""Benchmark of the collection runner (docs/design.md §5): recorder overhead and parallel speedup.

Prints two figures, each against its target:

(a) tracked ÷ untracked wall time over the same worlds and seeds (target <= 1.05).
    Every world is run once tracked and once untracked per repetition, back to back, in the
    runner's own worker body (``hrlxf_core.sim.collect._world_entry``: world, tables, atomic
    part write) in a forkserver process from the runner's own context; the order of the pair
    alternates between worlds and repetitions so drift and warm-up hit both sides equally. Per
    repetition the ratio is sum(tracked) / sum(untracked); the table gives the median over the
    repetitions and its spread (min-max), for three clocks: the in-world wall time the runner
    records (``worlds.parquet`` column ``wall_time_s``: build + run), the worker's end-to-end
    elapsed time (process start to join: also the recorder's table building and the parquet
    write), and the worker's CPU time (insensitive to other load on the machine).

(b) the speedup of 2 workers over 1: total elapsed of ``collect()`` with ``workers=1`` and with
    ``workers=2`` on the same worlds (tracked, as collected for real; target >= 1.8). The
    runner starts the worlds of largest estimated cost first, yet a few worlds of unequal length
    still cap the speedup whatever the executor does; the table also gives that cap (the
    runner's schedule replayed on the ``workers=1`` per-world times) and the speedup relative to it.

(c) Ray against the local pool (``--only ray``; needs the ``scale`` extra): worlds per hour of
    ``collect()`` with the local pool and with the Ray backend (a local Ray instance), each with
    1 and 2 workers, on the same worlds and seeds. The Ray instance is started (and timed) once
    before its runs, as a Dagster step starts one per partition; against a running cluster that
    start is not paid. Per run it also gives the sum of the in-world times (``wall_time_s``), so
    the per-world overhead of the backend (a fresh worker process per world) shows, and how many
    worlds ended exactly as in the local pool's 1-worker run (worlds here change under CPU
    contention whatever the backend, see ``docs/scale.md``).

Other load on the machine skews all figures, so the script waits (``--idle-wait``) for the
machine to go quiet before each timed run, samples from /proc how much CPU processes outside
the benchmark used during each run, prints it, and flags the runs where it exceeded
``NOISY_CORES`` ((a) also gives the ratio over the clean pairs only).

Run from the repository root, e.g.::

    python bench/collect.py                     # 4 worlds of 30-40 days, 3 repetitions
    python bench/collect.py --quick             # smoke run (a minute or two)
    python bench/collect.py --only ray          # (c): 6 worlds of 20-30 days, local pool vs Ray

Outputs (world parts, partitions and a ``results.json``) go under ``--out`` (default
``bench/out/``, git-ignored), one sub-directory per run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from hrlxf_core.sim import collect as runner
from hrlxf_core.sim.roster import DEFAULT_EXPERTS, FILLER_AGENTS, resolve_roster
from hrlxf_core.sim.world_spec import WorldSpec, draw_world_specs

TARGET_OVERHEAD = 1.05
TARGET_SPEEDUP = 1.8
#: A run during which other processes used more than this many cores counts as noisy.
NOISY_CORES = 0.15
RUN_ID = "bench"
QUICK = {"worlds": 2, "steps_min": 8, "steps_max": 10, "competitors": 3, "repeats": 1}
#: (c) defaults: enough worlds for 2 workers to stay busy, short enough for a ~10-minute run.
RAY_DEFAULTS = {"worlds": 6, "steps_min": 20, "steps_max": 30, "competitors": 4, "repeats": 1}


# --------------------------------------------------------------------------- worker side


def _timed_world(
    spec_json: str, run_id: str, out_dir: str, data_dir: str, tracked: bool, cpu_path: str
) -> None:
    """Worker body for (a): the runner's own worker body, plus this process's CPU time."""
    c0 = time.process_time()
    runner._world_entry(spec_json, run_id, out_dir, data_dir, tracked)
    Path(cpu_path).write_text(json.dumps({"cpu_s": time.process_time() - c0}))


def _noop() -> None:
    pass


def warm_forkserver() -> None:
    """Start the runner's fork server (preloading scml) so that no timed phase pays for it."""
    proc = runner._mp_context().Process(target=_noop, daemon=True)
    proc.start()
    proc.join()


# --------------------------------------------------------------------------- machine info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _git_rev() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _optional_versions(*dists: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for d in dists:
        try:
            out[f"{d.replace('-', '_')}_version"] = version(d)
        except PackageNotFoundError:
            out[f"{d.replace('-', '_')}_version"] = "not installed"
    return out


def machine_info() -> dict[str, Any]:
    from hrlxf_core.sim.world_run import package_versions

    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "mem_total_gib": _mem_total_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "polars_version": pl.__version__,
        **package_versions(),
        **_optional_versions("ray", "dagster-ray"),
        "git": _git_rev(),
        "loadavg_at_start": os.getloadavg(),
    }


class CpuMeter:
    """Machine-wide CPU use between start and stop, in cores busy (from /proc/stat)."""

    @staticmethod
    def _read() -> tuple[int, int] | None:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields) - idle, sum(fields)

    def __enter__(self) -> CpuMeter:
        self.t0, self.s0 = time.perf_counter(), self._read()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.t0
        s1 = self._read()
        ncpu = os.cpu_count() or 1
        if self.s0 is None or s1 is None or s1[1] == self.s0[1]:
            self.cores_busy = float("nan")
        else:
            self.cores_busy = ncpu * (s1[0] - self.s0[0]) / (s1[1] - self.s0[1])


class LoadSampler:
    """Background sampler of CPU use, split into this benchmark's processes (this process and its
    descendants: the fork server and the world workers) and every other process on the machine.

    ``other_cores`` is the mean number of cores other processes kept busy while it ran; it is an
    upper bound (a worker's CPU after its last sample before exiting counts as other load: at
    most ``interval_s`` per world)."""

    def __init__(self, interval_s: float = 0.2) -> None:
        import threading

        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._base: dict[int, int] = {}
        self._last: dict[int, int] = {}

    @staticmethod
    def _procs() -> dict[int, tuple[int, int]]:
        """pid -> (ppid, utime + stime ticks) of every process readable now."""
        out = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                text = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            rest = text[text.rfind(")") + 2 :].split()
            out[int(d)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
        return out

    def _sample(self, first: bool = False) -> None:
        procs = self._procs()
        me = os.getpid()
        ours: set[int] = {me}
        changed = True
        while changed:  # descendants of this process
            changed = False
            for pid, (ppid, _) in procs.items():
                if ppid in ours and pid not in ours:
                    ours.add(pid)
                    changed = True
        for pid in ours:
            ticks = procs[pid][1]
            if first:
                self._base[pid] = ticks
            self._last[pid] = ticks

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._sample()
            except Exception:  # a sampler must never break the benchmark
                pass

    def __enter__(self) -> LoadSampler:
        self._machine = CpuMeter().__enter__()
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self._machine.__exit__()
        self.elapsed = self._machine.elapsed
        self.cores_busy = self._machine.cores_busy
        ours_ticks = sum(v - self._base.get(pid, 0) for pid, v in self._last.items())
        self.ours_cores = ours_ticks / os.sysconf("SC_CLK_TCK") / self.elapsed
        self.other_cores = max(self.cores_busy - self.ours_cores, 0.0)


def wait_idle(max_wait_s: float, threshold: float = 0.3, window_s: float = 1.0) -> float:
    """Wait (up to ``max_wait_s``) until the machine is quiet: < ``threshold`` cores busy over
    two consecutive windows. Returns the busy cores of the last window (other load still there
    when the wait gave up)."""
    deadline = time.perf_counter() + max_wait_s
    quiet, busy = 0, float("nan")
    while True:
        with CpuMeter() as m:
            time.sleep(window_s)
        busy = m.cores_busy
        quiet = quiet + 1 if busy < threshold else 0
        if quiet >= 2 or time.perf_counter() >= deadline:
            return busy


# --------------------------------------------------------------------------- helpers


def _log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def _spread(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return "(1 rep)"
    return f"{min(xs):.3f}-{max(xs):.3f}"


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _in_order_makespan(durations: list[float], workers: int) -> float:
    """Replay the runner's schedule: worlds start in the given (the runner's) order on the first free worker."""
    free_at = [0.0] * workers
    for d in durations:
        i = min(range(workers), key=free_at.__getitem__)
        free_at[i] += d
    return max(free_at)


def _world_row(part: Path) -> dict[str, Any]:
    return pl.read_parquet(part / "worlds.parquet").row(0, named=True)


# --------------------------------------------------------------------------- (a) overhead


def bench_overhead(
    specs: list[WorldSpec], repeats: int, root: Path, timeout_s: float, idle_wait_s: float
) -> dict[str, Any]:
    ctx = runner._mp_context()
    data_dir = root / "data"
    runs: list[dict[str, Any]] = []
    with CpuMeter() as meter:
        for rep in range(repeats):
            for i, spec in enumerate(specs):
                order = (True, False) if (rep + i) % 2 == 0 else (False, True)
                for tracked in order:
                    mode = "tracked" if tracked else "untracked"
                    out_dir = root / "overhead" / f"r{rep}" / mode
                    part = runner.parts_dir(out_dir) / spec.world_id
                    cpu_path = root / "overhead" / f"r{rep}" / f"{spec.world_id}-{mode}.cpu.json"
                    cpu_path.parent.mkdir(parents=True, exist_ok=True)
                    busy_before = wait_idle(idle_wait_s) if idle_wait_s > 0 else float("nan")
                    run_meter = LoadSampler().__enter__()
                    t0 = time.perf_counter()
                    proc = ctx.Process(
                        target=_timed_world,
                        args=(spec.to_json(), RUN_ID, str(out_dir), str(data_dir), tracked, str(cpu_path)),
                        name=f"bench-{spec.world_id}-{mode}",
                        daemon=True,
                    )
                    proc.start()
                    proc.join(timeout_s)
                    if proc.is_alive():
                        proc.kill()
                        proc.join(10)
                        raise RuntimeError(f"{spec.world_id} ({mode}) exceeded {timeout_s:.0f}s")
                    elapsed = time.perf_counter() - t0
                    run_meter.__exit__()
                    if not part.exists():
                        raise RuntimeError(f"{spec.world_id} ({mode}): worker exit {proc.exitcode}, no part")
                    row = _world_row(part)
                    if row["status"] != "ok":
                        raise RuntimeError(f"{spec.world_id} ({mode}) {row['status']}: {row['error']}")
                    n_decisions = pl.read_parquet(part / "decisions.parquet").height
                    cpu = json.loads(cpu_path.read_text())["cpu_s"] if cpu_path.exists() else float("nan")
                    foreign = run_meter.other_cores  # other processes' CPU use during this run
                    runs.append(
                        {
                            "rep": rep,
                            "world_id": spec.world_id,
                            "n_steps": spec.n_steps,
                            "n_agents": len(spec.agent_paths),
                            "tracked": tracked,
                            "world_wall_s": float(row["wall_time_s"]),
                            "elapsed_s": elapsed,
                            "cpu_s": cpu,
                            "decisions": n_decisions,
                            "recorder_errors": int(row["recorder_errors"]),
                            "scores": row["scores"],
                            "n_contracts": row["n_contracts"],
                            "foreign_cores": foreign,
                            "busy_before": busy_before,
                        }
                    )
                    _log(
                        f"(a) rep {rep + 1}/{repeats} {spec.world_id} {mode:9s} world {row['wall_time_s']:6.1f}s "
                        f"elapsed {elapsed:6.1f}s cpu {cpu:6.1f}s decisions {n_decisions} other load {foreign:.2f} cores"
                    )

    df = pl.DataFrame(runs)
    ratios: dict[str, list[float]] = {}
    for col in ("world_wall_s", "elapsed_s", "cpu_s"):
        per_rep = []
        for rep in range(repeats):
            r = df.filter(pl.col("rep") == rep)
            t = r.filter(pl.col("tracked"))[col].sum()
            u = r.filter(~pl.col("tracked"))[col].sum()
            per_rep.append(t / u if u else float("nan"))
        ratios[col] = per_rep
    pair = df.group_by("world_id", "rep").agg(
        pl.col("foreign_cores").max().alias("foreign_cores"),
        (
            pl.col("elapsed_s").filter(pl.col("tracked")).first()
            / pl.col("elapsed_s").filter(~pl.col("tracked")).first()
        ).alias("ratio_elapsed"),
        (
            pl.col("cpu_s").filter(pl.col("tracked")).first()
            / pl.col("cpu_s").filter(~pl.col("tracked")).first()
        ).alias("ratio_cpu"),
        (
            pl.col("world_wall_s").filter(pl.col("tracked")).first()
            / pl.col("world_wall_s").filter(~pl.col("tracked")).first()
        ).alias("ratio"),
        (
            pl.col("scores").filter(pl.col("tracked")).first()
            == pl.col("scores").filter(~pl.col("tracked")).first()
        ).alias("same_scores"),
    )
    per_world = (
        df.group_by("world_id")
        .agg(
            pl.col("n_steps").first(),
            pl.col("n_agents").first(),
            pl.col("world_wall_s").filter(~pl.col("tracked")).median().alias("untracked_s"),
            pl.col("world_wall_s").filter(pl.col("tracked")).median().alias("tracked_s"),
            pl.col("decisions").filter(pl.col("tracked")).max().alias("decisions"),
            pl.col("recorder_errors").sum(),
        )
        .join(
            pair.group_by("world_id").agg(pl.col("ratio").median(), pl.col("same_scores").all()),
            on="world_id",
        )
        .sort("world_id")
    )
    clean = pair.filter(pl.col("foreign_cores") <= NOISY_CORES)
    clean_ratios = {
        "world_wall_s": clean["ratio"].to_list(),
        "elapsed_s": clean["ratio_elapsed"].to_list(),
        "cpu_s": clean["ratio_cpu"].to_list(),
    }
    return {
        "ratios_per_rep": ratios,
        "clean_pair_ratios": clean_ratios,
        "n_pairs": pair.height,
        "n_clean_pairs": clean.height,
        "max_foreign_cores": float(df["foreign_cores"].max()),
        "per_world": per_world.to_dicts(),
        "sum_tracked_elapsed_s": float(df.filter(pl.col("tracked"))["elapsed_s"].sum()),
        "sum_untracked_elapsed_s": float(df.filter(~pl.col("tracked"))["elapsed_s"].sum()),
        "phase_elapsed_s": meter.elapsed,
        "cores_busy": meter.cores_busy,
        "runs": runs,
    }


# --------------------------------------------------------------------------- (b) speedup


def bench_speedup(
    base_cfg: runner.CollectionConfig, repeats: int, root: Path, idle_wait_s: float
) -> dict[str, Any]:
    results: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for rep in range(repeats):
        for workers in (1, 2) if rep % 2 == 0 else (2, 1):
            cfg = runner.with_overrides(base_cfg, workers=workers)
            out_dir = root / "speedup" / f"r{rep}" / f"w{workers}"
            busy_before = wait_idle(idle_wait_s) if idle_wait_s > 0 else float("nan")
            with LoadSampler() as meter:
                res = runner.collect(
                    cfg, out_dir, RUN_ID, root / "data", progress=lambda m, w=workers: _log(f"(b) w{w} {m}")
                )
            if res.n_ok != res.n_worlds:
                raise RuntimeError(
                    f"(b) workers={workers}: {res.n_failed} failed, {res.n_timed_out} timed out"
                )
            worlds = pl.read_parquet(out_dir / "worlds.parquet").sort("world_index")
            results[workers].append(
                {
                    "elapsed_s": meter.elapsed,
                    "runner_wall_s": res.wall_time_s,
                    # in the order the runner starts them (longest estimated cost first)
                    "world_walls_s": [
                        w
                        for _, w in sorted(
                            zip(worlds["spec_json"].to_list(), worlds["wall_time_s"].to_list(), strict=True),
                            key=lambda t: (
                                -runner.estimated_cost(WorldSpec.from_json(t[0])),
                                WorldSpec.from_json(t[0]).index,
                            ),
                        )
                    ],
                    "cores_busy": meter.cores_busy,
                    "other_cores": meter.other_cores,
                    "busy_before": busy_before,
                }
            )
            _log(
                f"(b) rep {rep + 1}/{repeats} workers={workers}: {meter.elapsed:.1f}s elapsed, "
                f"other load {meter.other_cores:.2f} cores"
            )
    speedups = [w1["elapsed_s"] / w2["elapsed_s"] for w1, w2 in zip(results[1], results[2], strict=True)]
    caps = [sum(w1["world_walls_s"]) / _in_order_makespan(w1["world_walls_s"], 2) for w1 in results[1]]
    inflation = [
        sum(w2["world_walls_s"]) / sum(w1["world_walls_s"])
        for w1, w2 in zip(results[1], results[2], strict=True)
    ]
    return {
        "speedups": speedups,
        "schedule_caps": caps,
        "relative": [s / c for s, c in zip(speedups, caps, strict=True)],
        "per_world_wall_inflation": inflation,
        "runs": {str(k): v for k, v in results.items()},
    }


# --------------------------------------------------------------------------- (c) Ray vs local pool


def _run_summary(res: runner.CollectionResult, out_dir: Path, meter: LoadSampler, busy_before: float) -> dict:
    worlds = pl.read_parquet(out_dir / "worlds.parquet").sort("world_index")
    return {
        "elapsed_s": meter.elapsed,
        "n_ok": res.n_ok,
        "worlds_per_hour": res.n_worlds / meter.elapsed * 3600,
        "sum_world_walls_s": float(worlds["wall_time_s"].sum()),
        "outcomes": [
            [w, c, tuple(s)]
            for w, c, s in zip(
                worlds["world_id"].to_list(),
                worlds["n_contracts"].to_list(),
                worlds["scores"].to_list(),
                strict=True,
            )
        ],
        "cores_busy": meter.cores_busy,
        "other_cores": meter.other_cores,
        "busy_before": busy_before,
    }


def bench_ray(
    base_cfg: runner.CollectionConfig, repeats: int, root: Path, idle_wait_s: float, ray_cpus: int
) -> dict[str, Any]:
    """(c): the same worlds through the local pool and through Ray, 1 and 2 workers each."""
    from hrlxf_core.sim.ray_backend import ray_session

    runs: dict[str, list[dict[str, Any]]] = {f"{b}-w{w}": [] for b in ("local", "ray") for w in (1, 2)}
    ray_starts: list[float] = []

    def one(backend: str, workers: int, rep: int) -> None:
        key = f"{backend}-w{workers}"
        cfg = runner.with_overrides(base_cfg, workers=workers, backend=backend)
        out_dir = root / "ray-vs-local" / f"r{rep}" / key
        busy_before = wait_idle(idle_wait_s) if idle_wait_s > 0 else float("nan")
        with LoadSampler() as meter:
            res = runner.collect(
                cfg, out_dir, RUN_ID, root / "data", progress=lambda m: _log(f"(c) {key} {m}")
            )
        if res.n_ok != res.n_worlds:
            raise RuntimeError(f"(c) {key}: {res.n_failed} failed, {res.n_timed_out} timed out")
        runs[key].append(_run_summary(res, out_dir, meter, busy_before))
        _log(
            f"(c) rep {rep + 1}/{repeats} {key}: {meter.elapsed:.1f}s, other load {meter.other_cores:.2f} cores"
        )

    for rep in range(repeats):
        for side in ("local", "ray") if rep % 2 == 0 else ("ray", "local"):
            order = (1, 2) if rep % 2 == 0 else (2, 1)
            if side == "local":
                for w in order:
                    one("local", w, rep)
                continue
            t0 = time.perf_counter()
            with ray_session(num_cpus=ray_cpus):
                ray_starts.append(time.perf_counter() - t0)
                _log(f"(c) local Ray instance started in {ray_starts[-1]:.1f}s")
                for w in order:
                    one("ray", w, rep)
    reference = {w: (c, tuple(s)) for w, c, s in runs["local-w1"][0]["outcomes"]}
    for rs in runs.values():
        for r in rs:
            r["same_outcome_as_local_w1"] = sum(
                reference.get(w) == (c, tuple(s)) for w, c, s in r["outcomes"]
            )
    return {"runs": runs, "ray_start_s": ray_starts, "ray_cpus": ray_cpus}


# --------------------------------------------------------------------------- report


def _report(
    info: dict[str, Any],
    args: argparse.Namespace,
    specs: list[WorldSpec],
    a: dict[str, Any] | None,
    b: dict[str, Any] | None,
    c: dict[str, Any] | None = None,
) -> str:
    lines = []
    lines.append("=" * 96)
    lines.append("hrlxf collection runner benchmark")
    lines.append("=" * 96)
    lines.append(
        f"machine : nproc={info['nproc']} usable={info['usable_cpus']} cpu='{info['cpu_model']}' "
        f"mem={info['mem_total_gib']:.1f} GiB loadavg@start={tuple(round(x, 2) for x in info['loadavg_at_start'])}"
    )
    lines.append(f"platform: {info['platform']} python {info['python']} polars {info['polars_version']}")
    lines.append(
        f"versions: scml {info['scml_version']} negmas {info['negmas_version']} "
        f"scml-agents {info['scml_agents_version']} hrlxf {info['hrlxf_version']} ray {info['ray_version']} "
        f"dagster-ray {info['dagster_ray_version']} (git {info['git']})"
    )
    lines.append(
        f"settings: worlds={args.worlds} steps={args.steps_min}-{args.steps_max} competitors={args.competitors} "
        f"seed={args.seed} repeats={args.repeats if args.only not in ('b', 'ray') else '-'} "
        f"speedup-repeats={args.speedup_repeats if args.only not in ('a', 'ray') else '-'} "
        f"ray-repeats={args.ray_repeats if args.only == 'ray' else '-'} idle-wait={args.idle_wait:g}s"
    )
    lines.append(f"roster  : {', '.join(args.roster)}")
    lines.append(
        "worlds  : "
        + "; ".join(
            f"{s.world_id.split('-')[-1]} {s.n_steps}d {len(s.agent_paths)}ag {s.n_processes}lv"
            for s in specs
        )
    )
    lines.append("")
    if a is not None:
        lines.append(
            "(a) recorder overhead: tracked / untracked, same worlds and seeds (sum over worlds per repetition)"
        )
        lines.append(f"    {'clock':<44s} {'median':>8s} {'spread':>13s} {'target':>8s}  verdict")
        labels = {
            "world_wall_s": "in-world wall (worlds.parquet wall_time_s)",
            "elapsed_s": "worker end-to-end elapsed (+ tables, write)",
            "cpu_s": "worker CPU time",
        }
        for col, label in labels.items():
            xs = a["ratios_per_rep"][col]
            med = _median(xs)
            verdict = "PASS" if med <= TARGET_OVERHEAD else "FAIL"
            lines.append(
                f"    {label:<44s} {med:8.3f} {_spread(xs):>13s} {'<= ' + str(TARGET_OVERHEAD):>8s}  {verdict}"
            )
        lines.append(
            f"    pairs run while other processes used <= {NOISY_CORES} cores: "
            f"{a['n_clean_pairs']}/{a['n_pairs']} (max other load {a['max_foreign_cores']:.2f} cores); "
            "median of their per-world ratios:"
        )
        for col, label in labels.items():
            xs = a["clean_pair_ratios"][col]
            med = _median(xs)
            verdict = "PASS" if med <= TARGET_OVERHEAD else ("FAIL" if xs else "n/a")
            lines.append(
                f"    {'  ' + label:<44s} {med:8.3f} {_spread(xs):>13s} {'<= ' + str(TARGET_OVERHEAD):>8s}  {verdict}"
            )
        lines.append(
            f"    totals over all repetitions: tracked {a['sum_tracked_elapsed_s']:.1f}s, untracked "
            f"{a['sum_untracked_elapsed_s']:.1f}s elapsed; machine CPU use during (a): {a['cores_busy']:.2f} cores "
            "(~1.0 expected: one world at a time)"
        )
        lines.append(
            f"    {'world':<12s} {'days':>5s} {'agents':>6s} {'untracked s':>12s} {'tracked s':>10s} "
            f"{'ratio(med)':>10s} {'decisions':>10s} {'rec.err':>7s} {'same scores':>11s}"
        )
        for w in a["per_world"]:
            lines.append(
                f"    {w['world_id']:<12s} {w['n_steps']:>5d} {w['n_agents']:>6d} {w['untracked_s']:>12.2f} "
                f"{w['tracked_s']:>10.2f} {w['ratio']:>10.3f} {w['decisions']:>10d} {w['recorder_errors']:>7d} "
                f"{'yes' if w['same_scores'] else 'NO':>11s}"
            )
        lines.append("")
    if b is not None:
        lines.append(
            "(b) parallel speedup: collect() total elapsed, workers=1 / workers=2 (tracked, same worlds)"
        )
        w1 = [r["elapsed_s"] for r in b["runs"]["1"]]
        w2 = [r["elapsed_s"] for r in b["runs"]["2"]]
        med = _median(b["speedups"])
        lines.append(f"    {'figure':<52s} {'median':>8s} {'spread':>13s} {'target':>8s}  verdict")
        lines.append(
            f"    {'speedup = elapsed(w1) / elapsed(w2)':<52s} {med:8.3f} {_spread(b['speedups']):>13s} "
            f"{'>= ' + str(TARGET_SPEEDUP):>8s}  {'PASS' if med >= TARGET_SPEEDUP else 'FAIL'}"
        )
        lines.append(
            f"    {'cap of the in-order schedule on these worlds':<52s} {_median(b['schedule_caps']):8.3f} "
            f"{_spread(b['schedule_caps']):>13s}"
        )
        lines.append(
            f"    {'speedup / cap (parallel efficiency of the executor)':<52s} {_median(b['relative']):8.3f} "
            f"{_spread(b['relative']):>13s}"
        )
        lines.append(
            f"    {'per-world wall inflation under w2 (sum w2 / sum w1)':<52s} "
            f"{_median(b['per_world_wall_inflation']):8.3f} {_spread(b['per_world_wall_inflation']):>13s}"
        )
        lines.append(
            f"    {'rep':>5s} {'workers':>8s} {'elapsed s':>10s} {'sum world walls s':>18s} "
            f"{'machine busy':>13s} {'other load':>11s} {'idle before':>12s}  (cores)"
        )
        for rep in range(len(w1)):
            for k in "12":
                r = b["runs"][k][rep]
                lines.append(
                    f"    {rep + 1:>5d} {k:>8s} {r['elapsed_s']:>10.1f} {sum(r['world_walls_s']):>18.1f} "
                    f"{r['cores_busy']:>13.2f} {r['other_cores']:>11.2f} {r['busy_before']:>12.2f}"
                )
        noisy = [r for k in "12" for r in b["runs"][k] if r["other_cores"] > NOISY_CORES]
        if noisy:
            lines.append(
                f"    warning: other processes used > {NOISY_CORES} cores during {len(noisy)} of "
                f"{len(w1) + len(w2)} runs: the speedup is understated (rerun on a quiet machine)"
            )
        if med < TARGET_SPEEDUP and _median(b["schedule_caps"]) < TARGET_SPEEDUP:
            lines.append(
                "    note: the worlds' lengths alone cap the speedup below the target; use more worlds "
                "(or worlds of similar length) to measure the executor."
            )
        lines.append("")
    if c is not None:
        lines.extend(_report_ray(c, len(specs)))
    if args.idle_wait <= 0:
        lines.append("(no idle wait before runs: --idle-wait 0)")
    lines.append(f"end loadavg: {tuple(round(x, 2) for x in os.getloadavg())}")
    return "\n".join(lines)


def _report_ray(c: dict[str, Any], n_worlds: int) -> list[str]:
    lines = [
        "(c) Ray vs local pool: collect() on the same worlds and seeds, worlds per hour (higher is better)",
        f"    local Ray instance ({c['ray_cpus']} CPUs) start: "
        + ", ".join(f"{x:.1f}s" for x in c["ray_start_s"])
        + " (once per Dagster step with a local instance; not in the figures below; 0 on a running cluster)",
        f"    {'backend':<8s} {'workers':>7s} {'worlds/hour':>12s} {'elapsed s':>10s} {'sum world walls s':>18s} "
        f"{'same as local w1':>17s} {'machine busy':>13s} {'other load':>11s} {'idle before':>12s}",
    ]
    for key, rs in c["runs"].items():
        backend, w = key.split("-w")
        for r in rs:
            lines.append(
                f"    {backend:<8s} {w:>7s} {r['worlds_per_hour']:>12.1f} {r['elapsed_s']:>10.1f} "
                f"{r['sum_world_walls_s']:>18.1f} {r['same_outcome_as_local_w1']:>11d}/{n_worlds:<5d} "
                f"{r['cores_busy']:>13.2f} {r['other_cores']:>11.2f} {r['busy_before']:>12.2f}"
            )
    med = {k: _median([r["worlds_per_hour"] for r in rs]) for k, rs in c["runs"].items()}
    lines.append(
        f"    Ray / local, worlds per hour: 1 worker {med['ray-w1'] / med['local-w1']:.3f}, "
        f"2 workers {med['ray-w2'] / med['local-w2']:.3f}; 2-worker speedup: local "
        f"{med['local-w2'] / med['local-w1']:.3f}, Ray {med['ray-w2'] / med['ray-w1']:.3f}"
    )
    noisy = [r for rs in c["runs"].values() for r in rs if r["other_cores"] > NOISY_CORES]
    if noisy:
        lines.append(
            f"    warning: other processes used > {NOISY_CORES} cores during {len(noisy)} of "
            f"{sum(len(rs) for rs in c['runs'].values())} runs: those figures are understated"
        )
    lines.append("")
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--worlds", type=int, default=None, help="worlds per set (default 4; quick 2)")
    p.add_argument("--steps-min", type=int, default=None, help="min days per world (default 30; quick 8)")
    p.add_argument("--steps-max", type=int, default=None, help="max days per world (default 40; quick 10)")
    p.add_argument(
        "--competitors", type=int, default=None, help="roster agents per world (default 4; quick 3)"
    )
    p.add_argument("--seed", type=int, default=0, help="world draw seed (default 0)")
    p.add_argument("--repeats", type=int, default=None, help="repetitions of (a) (default 3; quick 1)")
    p.add_argument("--speedup-repeats", type=int, default=1, help="repetitions of (b) (default 1)")
    p.add_argument(
        "--roster",
        type=str,
        default=None,
        help="comma list of roster names (default: the 5 default experts + the fillers)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "out",
        help="output root (default bench/out/); each run writes a timestamped sub-directory",
    )
    p.add_argument("--timeout", type=float, default=1800.0, help="per-world wall-clock limit in seconds")
    p.add_argument(
        "--idle-wait",
        type=float,
        default=60.0,
        help="before each timed run, wait up to this many seconds for other load to stop (0: don't)",
    )
    p.add_argument(
        "--only",
        choices=("a", "b", "ray"),
        default=None,
        help="run only figure (a) or (b), or (c) Ray vs local pool (needs the scale extra; not run by default)",
    )
    p.add_argument("--ray-repeats", type=int, default=1, help="repetitions of (c) (default 1)")
    p.add_argument(
        "--ray-cpus",
        type=int,
        default=None,
        help="CPUs of the local Ray instance in (c) (default: all cores)",
    )
    p.add_argument("--quick", action="store_true", help="tiny settings for a smoke run")
    args = p.parse_args(argv)
    if args.quick:
        defaults = QUICK
    elif args.only == "ray":
        defaults = RAY_DEFAULTS
    else:
        defaults = {"worlds": 4, "steps_min": 30, "steps_max": 40, "competitors": 4, "repeats": 3}
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.roster = (
        [s.strip() for s in args.roster.split(",") if s.strip()]
        if args.roster
        else list(DEFAULT_EXPERTS) + list(FILLER_AGENTS)
    )
    if args.repeats < 1 or args.speedup_repeats < 1 or args.ray_repeats < 1:
        p.error("--repeats, --speedup-repeats and --ray-repeats must be >= 1")
    if args.only == "ray" and not runner.ray_installed():
        p.error(f"--only ray needs Ray: install the scale extra ({runner.SCALE_EXTRA_HINT})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = args.out / datetime.now().strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=False)
    info = machine_info()
    cfg = runner.make_config(
        "smoke",
        roster=args.roster,
        n_worlds=args.worlds,
        n_steps_min=args.steps_min,
        n_steps_max=args.steps_max,
        competitors_per_world=args.competitors,
        seed=args.seed,
        world_timeout_s=args.timeout,
        workers=1,
        tracked=True,
    )
    roster = resolve_roster(list(cfg.roster))
    specs = draw_world_specs(
        run_id=RUN_ID,
        roster_paths=[r.class_path for r in roster],
        n_worlds=cfg.n_worlds,
        n_steps_min=cfg.n_steps_min,
        n_steps_max=cfg.n_steps_max,
        competitors_per_world=cfg.competitors_per_world,
        seed=cfg.seed,
    )
    _log(f"output under {root}")
    warm_forkserver()
    t0 = time.perf_counter()
    a = b = c = None
    if args.only == "ray":
        c = bench_ray(cfg, args.ray_repeats, root, args.idle_wait, args.ray_cpus or os.cpu_count() or 1)
    else:
        a = (
            None
            if args.only == "b"
            else bench_overhead(specs, args.repeats, root, args.timeout, args.idle_wait)
        )
        b = None if args.only == "a" else bench_speedup(cfg, args.speedup_repeats, root, args.idle_wait)
    report = _report(info, args, specs, a, b, c)
    report += f"\ntotal benchmark time: {time.perf_counter() - t0:.0f}s; outputs in {root}"
    print(report, flush=True)
    (root / "report.txt").write_text(report + "\n")
    (root / "results.json").write_text(
        json.dumps(
            {
                "info": info,
                "args": {k: str(v) for k, v in vars(args).items()},
                "overhead": a,
                "speedup": b,
                "ray_vs_local": c,
            },
            indent=2,
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
