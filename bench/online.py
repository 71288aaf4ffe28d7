"""Benchmark: throughput of online fine-tuning (issue 13), from a finished run.

    python bench/online.py                                  # the run of hrl_online_policy/current.json
    python bench/online.py --run data/hrl_online_policy/runs/<key> --iteration 3 --repeats 3

Prints, per iteration of the run: rollout worlds, wall seconds, worlds per hour on this machine,
and the mean core-seconds of a rollout world (the runner's in-world wall time); the projection on
a Ray cluster of N CPUs (one world per CPU, plus Ray's measured 3.7 core-seconds per world for
its fresh worker process, docs/scale.md); and the learner: one PPO update (critic included) of
that iteration's batch re-timed here on the CPU (``--threads`` torch threads), as seconds per
update, optimiser steps per second and decisions per second. No GPU path: the learner runs on
the CPU (its batches are ~10^4 rows; see bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import polars as pl

RAY_CORE_S_PER_WORLD = 3.7  # docs/scale.md: a fresh Ray worker per world


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data")
    ap.add_argument(
        "--run", default=None, help="run directory (default: that of hrl_online_policy/current.json)"
    )
    ap.add_argument(
        "--iteration",
        type=int,
        default=None,
        help="iteration whose batch the learner re-times (default: the last)",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ray-cpus", type=int, default=16)
    a = ap.parse_args()
    import torch

    from hrlxf_core.rl.policy import load_policy
    from hrlxf_core.rl.ppo import Learner, make_batch
    from hrlxf_core.rl.rollouts import load_trajectories
    from hrlxf_core.rl.train import _groups, _iter_dir, online_config_from_dict, rollout_explore

    torch.set_num_threads(a.threads)
    run = (
        Path(a.run)
        if a.run
        else Path(json.loads((Path(a.data) / "hrl_online_policy" / "current.json").read_text())["run_dir"])
    )
    history = json.loads((run / "history.json").read_text())
    cfg = online_config_from_dict(json.loads((run / "run.json").read_text())["config"])
    print(f"run {run}: {len(history)} iterations")
    print("| iteration | phase | worlds | rollout wall s | worlds/h | core-s per world | learner s |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    core = []
    for h in history:
        w = pl.read_parquet(_iter_dir(run, h["iteration"]) / "worlds" / "worlds.parquet")
        c = float(w["wall_time_s"].mean())
        core.append(c)
        print(
            f"| {h['iteration']} | {h['phase']} | {h['worlds']} | {h['rollout_s']:.0f} | {h['worlds_per_hour']:.0f} | {c:.1f} | {h['learn_s']:.1f} |"
        )
    total_w = sum(h["worlds"] for h in history)
    total_s = sum(h["rollout_s"] for h in history)
    mean_core = float(np.mean(core))
    print(
        f"\nthis machine: {total_w} rollout worlds in {total_s:.0f} s = {total_w * 3600 / total_s:.0f} worlds/h (2 workers)"
    )
    print(
        f"Ray, {a.ray_cpus} CPUs: {a.ray_cpus} × 3600 / ({mean_core:.1f} + {RAY_CORE_S_PER_WORLD}) = "
        f"{a.ray_cpus * 3600 / (mean_core + RAY_CORE_S_PER_WORLD):.0f} worlds/h (projected, same world sizes)"
    )
    i = history[-1]["iteration"] if a.iteration is None else a.iteration
    idir = _iter_dir(run, i)
    played = run / "initial" if i == 0 else _iter_dir(run, i - 1) / "policy"
    trajs, _ = load_trajectories(idir / "worlds", idir / "rollouts")
    batch = make_batch(trajs)
    explore = rollout_explore(idir / "worlds")
    from hrlxf_core.rl.policy import policy_from_checkpoints

    bc = json.loads((run / "run.json").read_text())["bc"]
    ref = policy_from_checkpoints(bc, explore)
    times, steps = [], []
    for _ in range(a.repeats):
        policy = load_policy(played, explore)
        learner = Learner(
            policy,
            ref,
            _groups(explore.phase),
            cfg.ppo,
            cfg.ppo.lr_a if explore.phase == "A" else cfg.ppo.lr_b,
        )
        t0 = time.perf_counter()
        m = learner.update(batch, 0, warmup=False)
        times.append(time.perf_counter() - t0)
        steps.append(m["policy_steps"])
    rows = sum(m["rows"].values())
    t = float(np.median(times))
    print(
        f"\nlearner, iteration {i} (phase {explore.phase}), {a.threads} torch threads, CPU: {rows} rows "
        f"({m['rows']}), one update {t:.2f} s (median of {a.repeats}), {np.median(steps):.0f} PPO steps "
        f"= {np.median(steps) / t:.1f} steps/s, {rows * cfg.ppo.epochs / t:,.0f} rows/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
