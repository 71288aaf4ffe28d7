"""The verdict of issue 13: the fine-tuned policy against the BC policy it started from, on the
same new full-length worlds, beside PenguinAgent and the 2026 std finalists (every contender in
every world, balanced over the levels). Resumable: rerun the same command.

    python scripts/verdict_online.py [--seeds 3 4] [--n-worlds 20] [--data data]

Contenders: ``LitaAgentHRL-neural`` (the BC policy chosen by play), ``LitaAgentHRL-online`` (the
published fine-tuned policy) and, for the score against the number of rollout worlds,
with ``--with-phase-a``, ``LitaAgentHRL-neural:online_after_a`` (the policy at the end of phase A).
Writes ``<data>/agent_evaluation/runs/verdict13-<a|b>-s<seed>`` per seed; pool them with
``scripts/summarise_eval.py <runs> --paired LitaAgentHRL-online,LitaAgentHRL-neural``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: beside the two policies: PenguinAgent and the strongest 2026 finalist here (issue 12's verdict
#: has all six). Every LitaAgentHRL in a world costs more than an expert (its planning latency),
#: so the contenders are kept few enough for 40 full-length worlds on 2 cores.
EXPERTS = ("PenguinAgent", "HorizonAwareAgent")


def main(argv: list[str] | None = None) -> int:
    from hrlxf_core.evaluation import EvalConfig, run_evaluation
    from hrlxf_core.rl.policy import policy_paths

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data")
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 4])
    ap.add_argument("--n-worlds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--with-phase-a", action="store_true", help="also play the policy at the end of phase A")
    a = ap.parse_args(argv)
    data = Path(a.data).resolve()
    cur = json.loads((data / "hrl_online_policy" / "current.json").read_text())
    run = Path(cur["run_dir"])
    hist = json.loads((run / "history.json").read_text())
    last_a = max((h["iteration"] for h in hist if h["phase"] == "A"), default=None)
    variants, extra = {}, []
    if a.with_phase_a and last_a is not None and last_a != hist[-1]["iteration"]:
        pdir = run / f"iter_{last_a:04d}" / "policy"
        variants["online_after_a"] = policy_paths(pdir)
        extra.append("LitaAgentHRL-neural:online_after_a")
    contenders = ("LitaAgentHRL-neural", "LitaAgentHRL-online", *extra, *EXPERTS)
    for seed in a.seeds:
        cfg = EvalConfig(
            contenders=contenders,
            n_worlds=a.n_worlds,
            n_steps_min=50,
            n_steps_max=200,
            seed=seed,
            workers=a.workers,
            world_timeout_s=1800.0,
            checkpoints_dir=str(data),
            variants=variants,
        )
        run_id = f"verdict13-{'a' if extra else 'b'}-s{seed}"
        res = run_evaluation(cfg, data / "agent_evaluation" / "runs" / run_id, run_id, data)
        print(f"[verdict13] seed {seed}: {res.n_ok} ok, {res.n_failed} failed, {res.n_timed_out} timed out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
