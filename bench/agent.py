"""Benchmark: LitaAgentHRL's per-round planning latency (the body of ``counter_all``) in neural mode.

    python bench/agent.py                              # default-size untrained networks
    python bench/agent.py --checkpoints-dir data       # the trained checkpoints (<asset>/current.json)

Rounds are captured from a real world (threads with real negotiation mechanisms), replicated to
exactly ``--threads`` live threads, and planned ``--iters`` times on one core (torch and BLAS
single-threaded). Targets (issue 5): p50 ≤ 2 ms, p99 ≤ 20 ms for 10 live threads.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def _default_checkpoints(tmp: Path) -> dict[str, str]:
    """Untrained default-size networks (latency depends on the architecture, not the weights)."""
    from hrlxf_core.models.l2 import L2Config, L2Net
    from hrlxf_core.models.l3 import L3Config, L3Net
    from hrlxf_core.models.l4 import L4Config, L4Net
    from hrlxf_core.training.checkpoint import CHECKPOINT_FORMAT, feature_schema, save_checkpoint

    out = {}
    for kind, model, cfg in (
        ("l2", L2Net(L2Config()), L2Config()),
        ("l3", L3Net(L3Config()), L3Config()),
        ("l4", L4Net(L4Config()), L4Config()),
    ):
        path = tmp / f"{kind}.pt"
        save_checkpoint(
            path,
            {
                "format": CHECKPOINT_FORMAT,
                "state_dict": model.state_dict(),
                "config": dataclasses.asdict(cfg),
                "schema": feature_schema(kind),
            },
        )
        out[f"{kind}_path"] = str(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints-dir", default=None)
    ap.add_argument("--threads", type=int, default=10)
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=20, help="distinct captured rounds to cycle through")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    import hrlxf_core.agent as agent_mod
    from hrlxf_core.agent_layers import make_stack
    from hrlxf_core.sim.roster import KNOWN_AGENTS
    from hrlxf_core.sim.world_run import apply_sandbox_env, run_world
    from hrlxf_core.sim.world_spec import WorldSpec

    tmp = Path(tempfile.mkdtemp(prefix="hrlxf-bench-agent-"))
    apply_sandbox_env(tmp)
    ck = {"checkpoints_dir": args.checkpoints_dir} if args.checkpoints_dir else _default_checkpoints(tmp)
    stack = make_stack("neural", **ck)
    captured = []
    real = agent_mod.plan_round

    def recording(st, obs, goal, my_id, inputs, ledger):
        if len(captured) < args.rounds and len(inputs) >= 2:
            captured.append(
                (obs.copy(), goal.copy(), my_id, list(inputs), {k: list(v) for k, v in ledger.items()})
            )
        return real(st, obs, goal, my_id, inputs, ledger)

    agent_mod.plan_round = recording
    a, p, g = "hrlxf_core.agent.LitaAgentHRL", KNOWN_AGENTS["PenguinAgent"], KNOWN_AGENTS["GreedyStdAgent"]
    spec = WorldSpec(
        world_id="bench-agent",
        index=0,
        seed=1,
        n_steps=12,
        n_processes=2,
        agent_paths=(a, p, g, g) + (p, g, g, g, g, g),
        agent_levels=(0, 0, 0, 0) + (1,) * 6,
        competitor=(False,) * 10,
        agent_params=({"mode": "heuristic"},) + (None,) * 9,
    )
    run_world(spec, "bench", tmp / "log", tracked=False)
    agent_mod.plan_round = real
    if not captured:
        raise SystemExit("no multi-thread round captured")
    rounds = []
    for obs, goal, my_id, inputs, ledger in captured:
        many = [
            dataclasses.replace(inputs[i % len(inputs)], nid=f"{inputs[i % len(inputs)].nid}#{i}")
            for i in range(args.threads)
        ]
        rounds.append((obs, goal, my_id, many, ledger))
    for r in rounds[:3]:  # warm-up
        real(stack, *r[:3], r[3], r[4])
    lat = []
    for i in range(args.iters):
        obs, goal, my_id, inputs, ledger = rounds[i % len(rounds)]
        t0 = time.perf_counter()
        real(stack, obs, goal, my_id, inputs, ledger)
        lat.append((time.perf_counter() - t0) * 1000)
    lat = np.asarray(lat)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    print(f"checkpoints: {args.checkpoints_dir or 'default-size untrained networks'}")
    print(f"{args.threads} live threads, {args.iters} rounds ({len(rounds)} distinct captured rounds)")
    print(
        f"counter_all planning latency: p50 {np.percentile(lat, 50):.2f} ms (target <= 2), "
        f"p99 {np.percentile(lat, 99):.2f} ms (target <= 20), mean {lat.mean():.2f} ms"
    )


if __name__ == "__main__":
    main()
