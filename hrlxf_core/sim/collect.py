"""The hang-proof, resumable collection runner.

Why we own the executor (docs/design.md §5): negmas' parallel tournaments have hung forever when a
worker died. Here every world runs in its own worker process under a wall-clock timeout; the
worker writes its world's tables into ``parts/<world_id>/`` through one atomic directory
rename, so after any crash a world is either complete on disk or absent. Rerunning the same
partition skips the worlds already on disk; at the end the parts are concatenated into the
five partition tables (each written atomically).

Where the worlds run is a backend: ``local`` (a forkserver process pool on this machine) or
``ray`` (tasks on a Ray cluster, :mod:`hrlxf_core.sim.ray_backend`, the optional ``scale``
extra). Both share everything else here: the todo list, the world body, the part writers, the
progress lines and the consolidation; only the executor differs.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from hrlxf_core.constants import RECORD_SCHEMA_VERSION
from hrlxf_core.io import read_parquet_checked, write_text_atomic
from hrlxf_core.sim.parts import (
    consolidate,
    finished_world_status,
    finished_worlds,
    parts_dir,
    write_crash_part,
    write_part,
    write_timeout_part,
)
from hrlxf_core.sim.records import SCHEMAS
from hrlxf_core.sim.roster import KNOWN_AGENTS, resolve_roster
from hrlxf_core.sim.worker import PYTHONHASHSEED, SCALE_EXTRA_HINT, world_tables
from hrlxf_core.sim.world_spec import WorldSpec, draw_world_specs

__all__ = [
    "PYTHONHASHSEED",
    "SCALE_EXTRA_HINT",
    "collect",
    "consolidate",
    "make_config",
    "parts_dir",
    "run_specs",
    "world_tables",
]

PROFILES: dict[str, dict[str, Any]] = {
    # A handful of short worlds: about two minutes on two cores.
    "smoke": {
        "n_worlds": 8,
        "n_steps_min": 15,
        "n_steps_max": 25,
        "competitors_per_world": 4,
        "world_timeout_s": 300.0,
        "workers": 2,
    },
    # anac2024_std defaults: 50-200 days, 2-4 levels, >= 4 factories per level.
    "full": {
        "n_worlds": 50,
        "n_steps_min": 50,
        "n_steps_max": 200,
        "competitors_per_world": 4,
        "world_timeout_s": 3600.0,
        "workers": 2,
    },
}

#: The default collection roster: the 2024 and 2025 finalists, PenguinAgent and the fillers. The
#: 2026 finalists are on the roster (``KNOWN_AGENTS``) and tracked like the others, but joining
#: the default draw changes every new partition's draw key, so that waits for the teacher study.
DEFAULT_ROSTER: tuple[str, ...] = tuple(n for n in KNOWN_AGENTS if "scml2026" not in KNOWN_AGENTS[n])

#: Where worlds run: ``auto`` = Ray when the ``scale`` extra is installed, else the local pool.
BACKENDS: tuple[str, ...] = ("auto", "local", "ray")


def ray_installed() -> bool:
    """Whether the ``scale`` extra's Ray is importable (checked without importing it: ~2 s)."""
    return importlib.util.find_spec("ray") is not None


def resolve_backend(backend: str, field_name: str = "backend") -> str:
    """``local`` or ``ray`` for a configured backend; ``ray`` without Ray installed is an error
    that names the extra to install rather than an ImportError deep inside a run."""
    if backend not in BACKENDS:
        raise ValueError(f"{field_name}: unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    if backend == "local":
        return "local"
    if ray_installed():
        return "ray"
    if backend == "ray":
        raise RuntimeError(
            f"{field_name}='ray' needs Ray, which is not installed: install the scale extra "
            f"({SCALE_EXTRA_HINT}) or use {field_name}='local'"
        )
    return "local"


@dataclass(frozen=True)
class CollectionConfig:
    """What a collection run draws and how it runs it."""

    profile: str = "smoke"
    roster: tuple[str, ...] = DEFAULT_ROSTER
    n_worlds: int = PROFILES["smoke"]["n_worlds"]
    n_steps_min: int = PROFILES["smoke"]["n_steps_min"]
    n_steps_max: int = PROFILES["smoke"]["n_steps_max"]
    competitors_per_world: int = PROFILES["smoke"]["competitors_per_world"]
    seed: int = 0
    world_timeout_s: float = PROFILES["smoke"]["world_timeout_s"]
    workers: int = PROFILES["smoke"]["workers"]
    tracked: bool = True
    retry_failed: bool = False
    backend: str = "local"

    def draw_key(self) -> dict[str, Any]:
        """The fields that decide which worlds are drawn (a resumed run must match them)."""
        return {
            "roster": list(self.roster),
            "n_worlds": self.n_worlds,
            "n_steps_min": self.n_steps_min,
            "n_steps_max": self.n_steps_max,
            "competitors_per_world": self.competitors_per_world,
            "seed": self.seed,
            "tracked": self.tracked,
        }


def make_config(profile: str = "smoke", **overrides: Any) -> CollectionConfig:
    """A config from a named profile, with explicit overrides (``None`` means 'profile default')."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    values = {**PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None}}
    if "roster" in values:
        values["roster"] = tuple(values["roster"])
    unknown = set(values) - set(CollectionConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown collection config fields: {sorted(unknown)}")
    cfg = CollectionConfig(profile=profile, **values)
    if cfg.workers < 1:
        raise ValueError(f"workers must be >= 1, got {cfg.workers}")
    if cfg.world_timeout_s <= 0:
        raise ValueError(f"world_timeout_s must be > 0, got {cfg.world_timeout_s}")
    if cfg.n_worlds < 1:
        raise ValueError(f"n_worlds must be >= 1, got {cfg.n_worlds}")
    if cfg.backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {cfg.backend!r}")
    return cfg


@dataclass
class CollectionResult:
    """Summary of a collection run (the asset records it as metadata)."""

    run_id: str
    out_dir: Path
    n_worlds: int
    n_ok: int
    n_failed: int
    n_timed_out: int
    n_skipped: int  # already on disk when the run started (resume)
    wall_time_s: float
    rows: dict[str, int] = field(default_factory=dict)
    decisions_per_agent_type: dict[str, int] = field(default_factory=dict)
    recorder_errors: int = 0


def _world_entry(spec_json: str, run_id: str, out_dir: str, data_dir: str, tracked: bool) -> None:
    """Local-pool worker process body: run one world and write its part directory atomically."""
    tables = world_tables(spec_json, run_id, data_dir, tracked)
    write_part(Path(out_dir), WorldSpec.from_json(spec_json).world_id, tables)


def _check_manifest(out_dir: Path, cfg: CollectionConfig, run_id: str) -> None:
    """Refuse to resume a partition with a config that draws different worlds."""
    path = out_dir / "collection.json"
    key = cfg.draw_key()
    if path.exists():
        try:
            manifest = json.loads(path.read_text())
            old = manifest["draw_key"]
        except Exception as exc:
            raise ValueError(f"{path}: unreadable collection manifest ({exc})") from exc
        version = manifest.get("record_schema_version", RECORD_SCHEMA_VERSION)
        if version != RECORD_SCHEMA_VERSION:
            raise ValueError(
                f"{path} (field 'record_schema_version'): partition {run_id!r} holds tables of record schema "
                f"v{version}, this code writes v{RECORD_SCHEMA_VERSION}; collect into a new partition"
            )
        diff = sorted(k for k in key if old.get(k) != key[k])
        if diff:
            raise ValueError(
                f"{path}: partition {run_id!r} was collected with a different config "
                f"(fields {diff}: on disk {[old.get(k) for k in diff]}, now {[key[k] for k in diff]}); "
                "use a new partition or the same config to resume"
            )
    else:
        write_text_atomic(
            json.dumps(
                {
                    "run_id": run_id,
                    "record_schema_version": RECORD_SCHEMA_VERSION,
                    "draw_key": key,
                    "config": asdict(cfg),
                },
                indent=2,
            ),
            path,
        )


#: Modules the fork server imports before it forks any world process (see _mp_context).
PRELOAD = ["hrlxf_core.sim.world_run", "hrlxf_core.sim.collect", "scml.std", "torch"]


def _mp_context() -> mp.context.BaseContext:
    """A forkserver context with scml preloaded: cheap world processes, fixed hash seed."""
    os.environ["PYTHONHASHSEED"] = PYTHONHASHSEED  # inherited by the fork server when it starts
    ctx = mp.get_context("forkserver")
    # Everything a worker runs is imported once in the fork server: workers neither pay the
    # import again nor see files edited on disk while a long collection runs. world_run imports
    # scml lazily (its callers need not load it), so scml.std is named here: it is ~4 CPU-s per
    # world process otherwise, and torch (~2.5 CPU-s) for every world with a neural LitaAgentHRL.
    # Nothing of either is initialised before the fork (no threads, no RNG drawn).
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def _fmt_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def collect(
    cfg: CollectionConfig,
    out_dir: Path,
    run_id: str,
    data_dir: Path,
    progress: Callable[[str], None] = print,
    poll_s: float = 0.2,
) -> CollectionResult:
    """Run (or resume) the collection ``run_id`` into ``out_dir``; returns its summary."""
    t_start = time.perf_counter()
    resolve_backend(cfg.backend)  # a backend that cannot run fails before anything is written
    roster = resolve_roster(list(cfg.roster))
    specs = draw_world_specs(
        run_id=run_id,
        roster_paths=[a.class_path for a in roster],
        n_worlds=cfg.n_worlds,
        n_steps_min=cfg.n_steps_min,
        n_steps_max=cfg.n_steps_max,
        competitors_per_world=cfg.competitors_per_world,
        seed=cfg.seed,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_manifest(out_dir, cfg, run_id)
    return run_specs(
        specs,
        out_dir,
        run_id,
        data_dir,
        workers=cfg.workers,
        world_timeout_s=cfg.world_timeout_s,
        tracked=cfg.tracked,
        retry_failed=cfg.retry_failed,
        label=f"{cfg.profile} profile",
        progress=progress,
        poll_s=poll_s,
        t_start=t_start,
        backend=cfg.backend,
    )


def run_specs(
    specs: list[WorldSpec],
    out_dir: Path,
    run_id: str,
    data_dir: Path,
    workers: int,
    world_timeout_s: float,
    tracked: bool = True,
    retry_failed: bool = False,
    label: str = "",
    progress: Callable[[str], None] = print,
    poll_s: float = 0.2,
    t_start: float | None = None,
    backend: str = "local",
) -> CollectionResult:
    """Run (or resume) the given worlds into ``out_dir``, hang-proof, one process per world.

    ``backend`` picks the executor (``local``, ``ray`` or ``auto``, see :func:`resolve_backend`);
    the todo list, the part files and the consolidated tables do not depend on it."""
    t_start = time.perf_counter() if t_start is None else t_start
    backend = resolve_backend(backend)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = CollectionConfig(
        workers=workers, world_timeout_s=world_timeout_s, tracked=tracked, retry_failed=retry_failed
    )
    finished = finished_worlds(out_dir)
    if cfg.retry_failed:
        for wid, status in list(finished.items()):
            if status != "ok":
                shutil.rmtree(parts_dir(out_dir) / wid)
                del finished[wid]
    # longest worlds first: with few, uneven worlds, starting the longest last caps the speedup
    todo = sorted(
        (s for s in specs if s.world_id not in finished), key=lambda s: (-estimated_cost(s), s.index)
    )
    n_skipped = len(specs) - len(todo)
    executor = "Ray" if backend == "ray" else "the local pool"
    progress(
        f"[collect {run_id}] {len(specs)} worlds ({label}), {n_skipped} already on disk, "
        f"{len(todo)} to run on {cfg.workers} worker(s) of {executor}, "
        f"timeout {cfg.world_timeout_s:.0f}s per world"
    )
    tally = _Tally(run_id, out_dir, len(todo), cfg.workers, progress)
    if todo and backend == "ray":
        from hrlxf_core.sim.ray_backend import run_on_ray

        run_on_ray(
            todo, out_dir, run_id, data_dir, cfg.workers, cfg.world_timeout_s, cfg.tracked, tally.done, poll_s
        )
    elif todo:
        _run_local(todo, out_dir, run_id, data_dir, cfg, tally, poll_s)
    rows = consolidate(out_dir)
    result = _summarise(out_dir, run_id, len(specs), n_skipped, time.perf_counter() - t_start, rows)
    progress(
        f"[collect {run_id}] finished: {result.n_ok} ok, {result.n_failed} failed, {result.n_timed_out} timed out; "
        f"rows {rows}"
    )
    return result


class _Tally:
    """Counts finished worlds and prints one progress line (status, counts, ETA) per world; one
    instance per run, fed by whichever backend runs the worlds."""

    def __init__(
        self, run_id: str, out_dir: Path, n_todo: int, workers: int, progress: Callable[[str], None]
    ):
        self.run_id, self.out_dir, self.n_todo, self.workers = run_id, out_dir, n_todo, workers
        self.progress = progress
        self.counts = {"ok": 0, "failed": 0, "timed_out": 0}
        self.walls: list[float] = []

    def done(self, world_id: str, elapsed: float) -> None:
        """Record a world whose part is on disk (its status is read from the part)."""
        status = finished_world_status(self.out_dir, world_id)
        self.counts[status] = self.counts.get(status, 0) + 1
        self.walls.append(elapsed)
        n_done = sum(self.counts.values())
        remaining = self.n_todo - n_done
        eta = (sum(self.walls) / len(self.walls)) * remaining / max(1, min(self.workers, max(remaining, 1)))
        c = self.counts
        self.progress(
            f"[collect {self.run_id}] {world_id} {status} in {elapsed:.1f}s | {n_done}/{self.n_todo} done "
            f"({c['ok']} ok, {c['failed']} failed, {c['timed_out']} timed out) | ETA {_fmt_eta(eta)}"
        )


def _run_local(
    todo: list[WorldSpec],
    out_dir: Path,
    run_id: str,
    data_dir: Path,
    cfg: CollectionConfig,
    tally: _Tally,
    poll_s: float,
) -> None:
    """The local backend: one forkserver process per world, at most ``cfg.workers`` at a time."""
    ctx = _mp_context()
    running: dict[str, tuple[Any, float, WorldSpec]] = {}
    queue = list(todo)
    try:
        while queue or running:
            while queue and len(running) < cfg.workers:
                spec = queue.pop(0)
                proc = ctx.Process(
                    target=_world_entry,
                    args=(spec.to_json(), run_id, str(out_dir), str(data_dir), cfg.tracked),
                    name=f"hrlxf-world-{spec.world_id}",
                    daemon=True,
                )
                proc.start()
                running[spec.world_id] = (proc, time.perf_counter(), spec)
            time.sleep(poll_s)
            for wid, (proc, started, spec) in list(running.items()):
                elapsed = time.perf_counter() - started
                if proc.is_alive() and elapsed <= cfg.world_timeout_s:
                    continue
                if proc.is_alive():
                    proc.kill()
                    proc.join(10)
                    if not (parts_dir(out_dir) / wid).exists():
                        write_timeout_part(out_dir, spec, run_id, elapsed, cfg.world_timeout_s)
                else:
                    proc.join()
                    if not (parts_dir(out_dir) / wid).exists():
                        write_crash_part(out_dir, spec, run_id, elapsed, proc.exitcode)
                del running[wid]
                tally.done(wid, elapsed)
    finally:
        for proc, _, _ in running.values():
            if proc.is_alive():
                proc.kill()


def estimated_cost(spec: WorldSpec) -> int:
    """Relative cost of a world: days × negotiating pairs between adjacent levels."""
    per_level = [spec.agent_levels.count(level) for level in range(spec.n_processes)]
    return spec.n_steps * sum(a * b for a, b in zip(per_level, per_level[1:], strict=False))


def _summarise(
    out_dir: Path, run_id: str, n_worlds: int, n_skipped: int, wall: float, rows: dict[str, int]
) -> CollectionResult:
    worlds = read_parquet_checked(out_dir / "worlds.parquet", SCHEMAS["worlds"])
    decisions = read_parquet_checked(out_dir / "decisions.parquet", SCHEMAS["decisions"])
    per_type = {
        r["agent_type"]: int(r["len"]) for r in decisions.group_by("agent_type").len().iter_rows(named=True)
    }
    status = worlds["status"]
    return CollectionResult(
        run_id=run_id,
        out_dir=out_dir,
        n_worlds=n_worlds,
        n_ok=int((status == "ok").sum()),
        n_failed=int((status == "failed").sum()),
        n_timed_out=int((status == "timed_out").sum()),
        n_skipped=n_skipped,
        wall_time_s=wall,
        rows=rows,
        decisions_per_agent_type=dict(sorted(per_type.items())),
        recorder_errors=int(worlds["recorder_errors"].sum()),
    )


def with_overrides(cfg: CollectionConfig, **kw: Any) -> CollectionConfig:
    return replace(cfg, **kw)
