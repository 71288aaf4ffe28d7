"""The body of a collection worker, shared by both backends: run one world, return its tables.

Why a module of its own: the local pool (:mod:`hrlxf_core.sim.collect`) and Ray
(:mod:`hrlxf_core.sim.ray_backend`) both call it; keeping it here breaks their import cycle.
"""

from __future__ import annotations

import os
import shutil
import time
import traceback
from pathlib import Path

import polars as pl

from hrlxf_core.sim.world_spec import WorldSpec

#: The hash seed every worker runs with (fixed so that set/dict-order-dependent code in agents
#: behaves the same from run to run).
PYTHONHASHSEED = "0"

#: How to install what the Ray backend needs (quoted by both backends' errors).
SCALE_EXTRA_HINT = 'pip install -e ".[scale]"'


def world_tables(spec_json: str, run_id: str, data_dir: str, tracked: bool) -> dict[str, pl.DataFrame]:
    """Run one world in this (worker) process and return its tables; a crash of the world gives
    the tables of a ``failed`` world with the traceback. The body of every backend's worker."""
    from hrlxf_core.sim.world_run import apply_sandbox_env, failed_tables, run_world

    spec = WorldSpec.from_json(spec_json)
    apply_sandbox_env(Path(data_dir))
    scratch = Path(data_dir) / ".scratch" / spec.world_id
    t0 = time.perf_counter()
    try:
        if os.environ.get("PYTHONHASHSEED") != PYTHONHASHSEED:
            raise RuntimeError(
                f"worker runs with PYTHONHASHSEED={os.environ.get('PYTHONHASHSEED')!r}, expected "
                f"{PYTHONHASHSEED!r}: results would not be reproducible"
            )
        return run_world(spec, run_id, scratch, tracked=tracked).tables
    except BaseException:
        return failed_tables(spec, run_id, "failed", traceback.format_exc(limit=-8), time.perf_counter() - t0)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
