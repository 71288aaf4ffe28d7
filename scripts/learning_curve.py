"""Neural score against the number of training worlds, from a policy_selection tournament.

    .venv/bin/python scripts/learning_curve.py data/policy_selection/runs/<run> \
        --point w25=<l3.pt> --point w75=<l3.pt> --point uniform=<l3.pt> --png docs/learning-curve.png

Each point is a candidate of the tournament (``LitaAgentHRL-neural:<name>``); its x value is the
number of training worlds recorded in the checkpoint's metrics (``weighting.train_worlds``). The
y value is the candidate's level-balanced mean ± 95 % CI in the tournament's worlds (all
candidates played the same worlds).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from hrlxf_core.evaluation import summarise
from hrlxf_core.selection import PREFIX
from hrlxf_core.training.checkpoint import load_checkpoint


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a policy_selection run folder (data/policy_selection/runs/<key>)")
    ap.add_argument("--point", action="append", default=[], help="NAME=L3_CHECKPOINT (repeat)")
    ap.add_argument(
        "--extra", action="append", default=[],
        help="NAME=L3_CHECKPOINT shown as a lone marker, not on the curve (e.g. a checkpoint of another data pool)",
    )  # fmt: skip
    ap.add_argument("--label", default="LitaAgentHRL-neural (plain BC L3)", help="legend of the curve")
    ap.add_argument("--png", default=None)
    args = ap.parse_args()
    summary, _ = summarise(Path(args.run))
    rows = {r["contender"]: r for r in summary.iter_rows(named=True)}

    def point(item: str) -> tuple[int, str, float, float, int]:
        name, _, path = item.partition("=")
        worlds = load_checkpoint(Path(path), "l3")["metrics"]["weighting"]["train_worlds"]
        r = rows[PREFIX + name]
        return worlds, name, r["balanced_mean"], r["balanced_ci95"], r["worlds"]

    pts = [point(item) for item in args.point]
    extra = [point(item) for item in args.extra]
    pts.sort()
    print("| training worlds | candidate | level-balanced mean ± 95% CI | evaluation worlds |")
    print("|---:|---|---:|---:|")
    for w, n, m, ci, ev in pts:
        print(f"| {w} | {n} | {m:.3f} ± {ci:.3f} | {ev} |")
    for w, n, m, ci, ev in extra:
        print(f"| {w} (not on the curve) | {n} | {m:.3f} ± {ci:.3f} | {ev} |")
    for ref in ("PenguinAgent",):
        if ref in rows:
            r = rows[ref]
            print(
                f"| (reference) | {ref} | {r['balanced_mean']:.3f} ± {r['balanced_ci95']:.3f} | {r['worlds']} |"
            )
    if args.png:
        os.environ.setdefault("MPLCONFIGDIR", "data/.mpl")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=100)
        ax.errorbar([p[0] for p in pts], [p[2] for p in pts], yerr=[p[3] for p in pts], marker="o", capsize=3,
                    label=args.label)  # fmt: skip
        for w, n, m, ci, _ev in extra:
            ax.errorbar([w], [m], yerr=[ci], marker="s", capsize=3, ls="none", color="tab:orange", label=n)
        if "PenguinAgent" in rows:
            ax.axhline(rows["PenguinAgent"]["balanced_mean"], color="grey", ls="--", label="PenguinAgent")
        ax.set_xlabel("training worlds (L3)")
        ax.set_ylabel("level-balanced mean score")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
