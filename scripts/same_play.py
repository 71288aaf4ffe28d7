"""One evaluation world with LitaAgentHRL-neural on its play-time graphs from its first round.

    PYTHONHASHSEED=0 .venv/bin/python scripts/same_play.py --days 60 --seed 12 [--checkpoints-dir data]

Prints one JSON line: every agent's score, the contracts, and the agent's rounds and counters.
Run it from two checkouts to compare two play-time runtimes on the same world (``PYTHONPATH``
set to the other checkout, as in docs/results.md). ``trace_after`` is set to 0, so the graphs
play every round and not only the rounds after the 500th. The hash seed must be fixed: scml
worlds depend on it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

CONTENDERS = (
    "LitaAgentHRL-neural",
    "PenguinAgent",
    "AS0",
    "XenoSotaAgent",
    "UltraSuperMiracleSoraFinalAgentZ",
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--checkpoints-dir", default="data")
    args = ap.parse_args()
    if os.environ.get("PYTHONHASHSEED") is None:
        print("same_play: set PYTHONHASHSEED (e.g. 0): the world depends on it", file=sys.stderr)
        return 2
    import hrlxf_core
    from hrlxf_core.agent import lita_agents
    from hrlxf_core.agent_layers import NeuralStack
    from hrlxf_core.evaluation import one_world_spec
    from hrlxf_core.sim.world_run import apply_sandbox_env, run_world

    NeuralStack.trace_after = 0
    tmp = Path(tempfile.mkdtemp(prefix="hrlxf-same-play-"))
    apply_sandbox_env(tmp)
    spec = one_world_spec(
        CONTENDERS,
        args.days,
        args.seed,
        "same-play",
        checkpoints_dir=str(Path(args.checkpoints_dir).resolve()),
    )
    out = run_world(spec, "same-play", tmp / "log", tracked=False, keep_world=True)
    w = out.tables["worlds"].row(0, named=True)
    agents = lita_agents(out.world)
    print(
        json.dumps(
            {
                "code": str(Path(hrlxf_core.__file__).parent),
                "scores": dict(zip(w["agent_ids"], w["scores"], strict=True)),
                "n_contracts": w["n_contracts"],
                "rounds": [a.stats.rounds for a in agents],
                "clip_changed": [a.stats.clip_changed for a in agents],
                "fallbacks": [a.stats.fallbacks for a in agents],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
