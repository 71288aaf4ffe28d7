"""Online fine-tuning (issue 13) of the BC policy chosen by play, outside Dagster, resumable:
rerun the same command after a kill and it continues from the last finished iteration.

    python scripts/online_finetune.py [--data data] [--phase-a 3] [--phase-b 3] [--worlds 6]

The same function as the ``hrl_online_policy`` asset (``hrlxf_core.rl.train.fine_tune``), on the
checkpoints of ``<data>/policy_selection/current.json``; the run directory is
``<data>/hrl_online_policy/runs/<key>`` and the result is published as the asset does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from hrlxf_assets.online import bc_checkpoints, publish_online
    from hrlxf_core.rl.rollouts import RolloutConfig
    from hrlxf_core.rl.train import OnlineConfig, fine_tune

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data")
    ap.add_argument("--phase-a", type=int, default=3)
    ap.add_argument("--phase-b", type=int, default=3)
    ap.add_argument("--worlds", type=int, default=6, help="rollout worlds per iteration")
    ap.add_argument("--steps-min", type=int, default=20)
    ap.add_argument("--steps-max", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    data = Path(a.data)
    cfg = OnlineConfig(
        phase_a_iterations=a.phase_a,
        phase_b_iterations=a.phase_b,
        seed=a.seed,
        rollout=RolloutConfig(
            n_worlds=a.worlds, n_steps_min=a.steps_min, n_steps_max=a.steps_max, workers=a.workers
        ),
    )
    bc = bc_checkpoints(data)
    res = fine_tune(cfg, bc, data / "hrl_online_policy", data)
    publish_online(data, res, cfg, bc)
    print(f"[online] policy {res.policy_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
