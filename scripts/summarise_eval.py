"""Pool several agent_evaluation runs (e.g. seeds) into one table and plot.

    .venv/bin/python scripts/summarise_eval.py data/agent_evaluation/runs/eval-* --png docs/results-scores.png

Prints the headline table (level-balanced mean ± 95 % CI first) and the per-level table, as in the
asset's metadata, over all the runs' worlds together.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hrlxf_core.evaluation import markdown_table, scores_png, summarise


def paired_table(per_world, a: str, b: str) -> str:
    """A − B per world (the same worlds): mean ± 95 % t CI, and A's wins; overall, and by level
    over the worlds where A and B held the same level. Evaluations rotate the contenders over
    the levels, so two contenders of one world usually sit at different levels, and a pair
    "by A's level" would compare A at that level with B at another: such rows are not printed."""
    import polars as pl

    from hrlxf_core.evaluation import t_ci95

    ok = per_world.filter(pl.col("status") == "ok")
    wa = ok.filter(pl.col("contender") == a).select("world_id", "level_name", pl.col("score").alias("a"))
    wb = ok.filter(pl.col("contender") == b).select(
        "world_id", pl.col("level_name").alias("level_b"), pl.col("score").alias("b")
    )
    j = wa.join(wb, on="world_id")
    if j.height == 0:
        return f"paired {a} − {b}: no world where both played"
    lines = [
        f"\n| paired {a} − {b} | worlds | mean difference ± 95 % CI | {a} ahead |",
        "|---|---:|---:|---:|",
    ]
    same = j.filter(pl.col("level_name") == pl.col("level_b"))
    for name, part in [
        ("all", j),
        *[
            (f"{lv} (both there)", same.filter(pl.col("level_name") == lv))
            for lv in ("first", "middle", "last")
        ],
    ]:
        if part.height == 0:
            continue
        d = (part["a"] - part["b"]).to_numpy()
        ci = f"{t_ci95(d):.3f}" if len(d) > 1 else "n/a (1 world)"
        lines.append(f"| {name} | {len(d)} | {d.mean():+.3f} ± {ci} | {int((d > 0).sum())} |")
    if same.height == 0:
        lines.append(f"\n(no world had {a} and {b} at the same level: no pairs by level)")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="agent_evaluation run folders (data/agent_evaluation/runs/<key>)")
    ap.add_argument("--png", default=None, help="write the scores plot here")
    ap.add_argument("--title", default=None, help="plot title")
    ap.add_argument(
        "--paired",
        default=None,
        metavar="A,B",
        help="also print the paired difference A − B over the worlds both played (mean ± 95 %% CI, "
        "wins of A), overall and by level where both held the same level",
    )
    args = ap.parse_args()
    dirs = [Path(r) for r in args.runs]
    for d in dirs:
        if not (d / "worlds.parquet").exists():
            print(f"summarise_eval: {d / 'worlds.parquet'} not found: not an evaluation run folder")
            return 2
    summary, per_world = summarise(*dirs)
    print(markdown_table(summary))
    n = per_world.filter(per_world["status"] == "ok")["world_id"].n_unique()
    if args.paired:
        a, _, b = args.paired.partition(",")
        print(paired_table(per_world, a, b))
    if args.png:
        Path(args.png).write_bytes(scores_png(summary, args.title or f"{n} worlds, {len(dirs)} runs"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
