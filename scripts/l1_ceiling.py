"""The L1 ceiling in paired worlds: an expert against itself behind L1 (``<Expert>+L1``).

    .venv/bin/python scripts/l1_ceiling.py --expert PenguinAgent --n-worlds 20 --seed 11

Each world of a level-balanced draw is run twice with the same seed, slots and partners: once
with the expert (behind the L1 watch, which changes nothing), once with the expert filtered
through L1. The per-world difference of the expert's score is what L1 costs it. Resumable: the
worlds are written under ``--out`` by the hang-proof runner and skipped when rerun.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hrlxf_core.evaluation import EvalConfig, ceiling_twin_specs, paired_ceiling
from hrlxf_core.sim.collect import run_specs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--expert", default="PenguinAgent", help="roster name of the expert (default PenguinAgent)"
    )
    ap.add_argument(
        "--partners",
        default="AS0,XenoSotaAgent,UltraSuperMiracleSoraFinalAgentZ",
        help="other contenders in every world (comma-separated; default the 2025 finalists)",
    )
    ap.add_argument("--n-worlds", type=int, default=20, help="world pairs (default 20)")
    ap.add_argument("--steps-min", type=int, default=50, help="shortest world, days (default 50)")
    ap.add_argument("--steps-max", type=int, default=200, help="longest world, days (default 200)")
    ap.add_argument("--processes", default="3-3", help="levels per world MIN-MAX (default 3-3)")
    ap.add_argument("--seed", type=int, default=11, help="seed of the draw (default 11)")
    ap.add_argument("--workers", type=int, default=2, help="worlds in parallel (default 2)")
    ap.add_argument("--out", default="data/l1_ceiling", help="output folder (default data/l1_ceiling)")
    args = ap.parse_args()
    lo, hi = (int(x) for x in args.processes.split("-"))
    cfg = EvalConfig(
        contenders=(args.expert, *[p for p in args.partners.split(",") if p]),
        n_worlds=args.n_worlds, n_steps_min=args.steps_min, n_steps_max=args.steps_max, seed=args.seed,
        n_processes_min=lo, n_processes_max=hi, workers=args.workers,
    )  # fmt: skip
    out = Path(args.out) / f"{args.expert}-seed{args.seed}"
    run_id = f"ceil{args.seed}"
    plain, twins = ceiling_twin_specs(cfg, run_id, args.expert)
    for name, specs in (("plain", plain), ("l1", twins)):
        run_specs(specs, out / name, f"{run_id}-{name}", Path("data"), workers=args.workers,
                  world_timeout_s=3600.0, tracked=False, label=f"ceiling {name}")  # fmt: skip
    table = paired_ceiling(out / "plain", out / "l1", args.expert)
    lines = ["| level | pairs | expert | expert+L1 | difference ± 95% CI |", "|---|---:|---:|---:|---:|"]
    for r in table.iter_rows(named=True):
        lines.append(f"| {r['level']} | {r['pairs']} | {r['expert']:.3f} | {r['expert_l1']:.3f} | "
                     f"{r['difference']:+.3f} ± {r['ci95']:.3f} |")  # fmt: skip
    md = "\n".join(lines)
    (out / "ceiling.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
