"""Benchmark: macro and micro samples built per second per core from a tournament_logs partition.

    python bench/datasets.py --logs data/tournament_logs/<partition>      # an existing partition
    python bench/datasets.py --collect 4 --steps 100                       # collect full-length worlds first

Targets (issue 3): >= 50,000 macro and >= 20,000 micro samples/s/core. The build runs with
POLARS_MAX_THREADS=1 and single-threaded BLAS, so wall time is one core's time; CPU time of the
process is printed as well. Import time is reported separately and not counted.
"""

from __future__ import annotations

import os

for _v in ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

T_IMPORT0 = time.perf_counter()
import polars as pl  # noqa: E402

from hrlxf_core.datasets.macro import build_macro  # noqa: E402
from hrlxf_core.datasets.micro import build_micro  # noqa: E402
from hrlxf_core.datasets.partition import load_partition  # noqa: E402
from hrlxf_core.sim.roster import DEFAULT_EXPERTS  # noqa: E402

IMPORT_S = time.perf_counter() - T_IMPORT0


def _collect(out: Path, n_worlds: int, steps: int, seed: int) -> Path:
    from hrlxf_core.sim.collect import collect, make_config

    cfg = make_config(
        "full",
        roster=list(DEFAULT_EXPERTS) + ["GreedyStdAgent"],
        n_worlds=n_worlds,
        n_steps_min=steps,
        n_steps_max=steps,
        competitors_per_world=5,
        seed=seed,
        workers=2,
    )
    part = out / "tournament_logs" / f"bench-{n_worlds}x{steps}-s{seed}"
    collect(cfg, part, part.name, out, progress=lambda s: print("  " + s, flush=True))
    return part


def _timed(fn, *args, repeats: int):
    best_wall, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn(*args)
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return result, best_wall, best_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logs", type=Path, help="a tournament_logs partition directory")
    ap.add_argument("--collect", type=int, default=0, help="collect this many full-length worlds first")
    ap.add_argument("--steps", type=int, default=100, help="days per collected world")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--experts", default=",".join(DEFAULT_EXPERTS))
    args = ap.parse_args()
    logs = args.logs or _collect(args.out, args.collect or 4, args.steps, args.seed)
    experts = args.experts.split(",")
    tables, load_wall, load_cpu = _timed(load_partition, logs, experts, repeats=args.repeats)
    macro, macro_wall, macro_cpu = _timed(build_macro, tables, repeats=args.repeats)
    micro, micro_wall, micro_cpu = _timed(build_micro, tables, repeats=args.repeats)
    worlds = pl.read_parquet(logs / "worlds.parquet")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; polars {pl.__version__}"
    )
    print(
        f"partition: {logs} ({worlds.height} worlds, days {worlds['n_steps'].min()}-{worlds['n_steps'].max()})"
    )
    print(f"experts: {experts}")
    print(f"import (not counted): {IMPORT_S:.2f}s; load+check tables: {load_wall:.3f}s (counted below)")
    print(f"{'dataset':8} {'samples':>9} {'build s':>8} {'samples/s/core':>15} {'target':>8}")
    for name, n, wall, target in (
        ("macro", macro.height, macro_wall + load_wall, 50_000),
        ("micro", micro.height, micro_wall + load_wall, 20_000),
    ):
        rate = n / wall if wall else float("nan")
        flag = "ok" if rate >= target else "BELOW"
        print(f"{name:8} {n:9,d} {wall:8.3f} {rate:15,.0f} {target:8,d} {flag}")
    print(f"cpu time (process): load {load_cpu:.3f}s, macro {macro_cpu:.3f}s, micro {micro_cpu:.3f}s")


if __name__ == "__main__":
    main()
