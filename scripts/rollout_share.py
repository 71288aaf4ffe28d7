"""The rollout agent's share of its rollout worlds' wall time, from an online run's tables.

    .venv/bin/python scripts/rollout_share.py data/hrl_online_policy/runs/<run>

Per rollout world: the agent's planning rounds × its p50 round latency ÷ the world's wall time
(``agent_stats`` records the latency percentiles, not their sum, so this is an estimate from the
median round). Prints the median and the range over the run's worlds, with the rounds, p50 / p99
and wall times behind it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl

LABEL = "LitaAgentHRL-rollout"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="an online run folder (data/hrl_online_policy/runs/<key>)")
    args = ap.parse_args()
    run = Path(args.run)
    stats_files = sorted(run.glob("iter_*/worlds/agent_stats.parquet"))
    world_files = sorted(run.glob("iter_*/worlds/worlds.parquet"))
    if not stats_files or not world_files:
        print(
            f"rollout_share: {run}: no iter_*/worlds/agent_stats.parquet and worlds.parquet", file=sys.stderr
        )
        return 2
    stats = pl.concat([pl.read_parquet(f) for f in stats_files], how="diagonal_relaxed")
    worlds = pl.concat([pl.read_parquet(f) for f in world_files], how="diagonal_relaxed")
    rows = stats.filter(pl.col("label") == LABEL).join(
        worlds.select("world_id", "wall_time_s"), on="world_id"
    )
    if rows.is_empty():
        print(f"rollout_share: {run}: no {LABEL} rows in agent_stats", file=sys.stderr)
        return 2
    x = []
    for sj, wall in zip(rows["stats_json"], rows["wall_time_s"], strict=True):
        s = json.loads(sj)
        x.append((s["rounds"], s["latency_p50_ms"], s["latency_p99_ms"], float(wall)))
    a = np.asarray(x, np.float64)
    share = a[:, 0] * a[:, 1] / 1000.0 / a[:, 3]
    print(
        f"{len(a)} rollout worlds: rounds median {np.median(a[:, 0]):.1f}, round p50 median "
        f"{np.median(a[:, 1]):.1f} ms (p99 median {np.median(a[:, 2]):.1f} ms), world wall median "
        f"{np.median(a[:, 3]):.1f} s; share (rounds x p50 / wall) median {100 * np.median(share):.1f} % "
        f"(range {100 * share.min():.1f}-{100 * share.max():.1f} %)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
