"""The part writers of a collection: one directory per world under ``parts/``, written in one
atomic rename, and their consolidation into the partition tables.

Why a module of its own: both backends (the local pool in :mod:`hrlxf_core.sim.collect` and
:mod:`hrlxf_core.sim.ray_backend`) write parts the same way; with the writers here neither backend
imports the other's module, so the two no longer import each other.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl

from hrlxf_core.io import read_parquet_checked, write_dir_atomic, write_parquet_atomic
from hrlxf_core.sim.records import OPTIONAL_TABLES, SCHEMAS, TABLES, empty_frame
from hrlxf_core.sim.world_spec import WorldSpec


def parts_dir(out_dir: Path) -> Path:
    return out_dir / "parts"


def write_part(out_dir: Path, world_id: str, tables: dict[str, pl.DataFrame]) -> None:
    final = parts_dir(out_dir) / world_id
    if final.exists():
        return
    write_dir_atomic(
        final, {f"{t}.parquet": (lambda p, df=df: df.write_parquet(p)) for t, df in tables.items()}
    )


def finished_worlds(out_dir: Path) -> dict[str, str]:
    """world_id -> status of the worlds complete on disk (stale temp dirs are removed)."""
    pdir = parts_dir(out_dir)
    done: dict[str, str] = {}
    if not pdir.exists():
        return done
    for d in pdir.iterdir():
        if d.name.startswith("."):
            shutil.rmtree(d, ignore_errors=True)  # a temp dir of a killed worker
            continue
        wpath = d / "worlds.parquet"
        df = read_parquet_checked(wpath, {"world_id": pl.String, "status": pl.String})
        done[d.name] = df["status"][0]
    return done


def finished_world_status(out_dir: Path, world_id: str) -> str:
    df = read_parquet_checked(parts_dir(out_dir) / world_id / "worlds.parquet", {"status": pl.String})
    return str(df["status"][0])


def write_timeout_part(out_dir: Path, spec: WorldSpec, run_id: str, elapsed: float, limit: float) -> None:
    from hrlxf_core.sim.world_run import failed_tables

    msg = f"world exceeded its wall-clock limit of {limit:.0f}s and its worker process was killed"
    write_part(out_dir, spec.world_id, failed_tables(spec, run_id, "timed_out", msg, elapsed))


def write_crash_part(
    out_dir: Path,
    spec: WorldSpec,
    run_id: str,
    elapsed: float,
    exitcode: int | None,
    reason: str | None = None,
) -> None:
    """Record a world whose worker died without tables: ``reason`` from the backend when it has
    one (Ray's error), else the local pool's exit code and its usual cause."""
    from hrlxf_core.sim.world_run import failed_tables

    msg = reason or (
        f"worker process died with exit code {exitcode} before writing the world's tables "
        "(a script that calls the collection must guard its entry point with "
        "`if __name__ == '__main__':`: worker processes re-import the main module)"
    )
    write_part(out_dir, spec.world_id, failed_tables(spec, run_id, "failed", msg, elapsed))


def consolidate(out_dir: Path) -> dict[str, int]:
    """Concatenate every world part into the five partition tables (each written atomically)."""
    pdir = parts_dir(out_dir)
    world_dirs = sorted(d for d in pdir.iterdir() if not d.name.startswith(".")) if pdir.exists() else []
    rows: dict[str, int] = {}
    for table in TABLES:
        frames = [read_parquet_checked(d / f"{table}.parquet", SCHEMAS[table]) for d in world_dirs]
        df = pl.concat(frames, how="vertical") if frames else empty_frame(table)
        if table == "worlds":
            df = df.sort("world_index")
        write_parquet_atomic(df, out_dir / f"{table}.parquet")
        rows[table] = df.height
    for table in OPTIONAL_TABLES:
        present = [d / f"{table}.parquet" for d in world_dirs if (d / f"{table}.parquet").exists()]
        if present:
            df = pl.concat([read_parquet_checked(f, SCHEMAS[table]) for f in present], how="vertical")
            write_parquet_atomic(df, out_dir / f"{table}.parquet")
            rows[table] = df.height
    return rows
