"""Pool several agent_evaluation runs (e.g. seeds) into one table and plot.

    .venv/bin/python scripts/summarise_eval.py data/agent_evaluation/runs/eval-* --png docs/results-scores.png

Prints the headline table (level-balanced mean ± 95 % CI first) and the per-level table, as in the
asset's metadata, over all the runs' worlds together.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hrlxf_core.evaluation import markdown_table, scores_png, summarise


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="agent_evaluation run folders (data/agent_evaluation/runs/<key>)")
    ap.add_argument("--png", default=None, help="write the scores plot here")
    ap.add_argument("--title", default=None, help="plot title")
    args = ap.parse_args()
    dirs = [Path(r) for r in args.runs]
    for d in dirs:
        if not (d / "worlds.parquet").exists():
            print(f"summarise_eval: {d / 'worlds.parquet'} not found: not an evaluation run folder")
            return 2
    summary, per_world = summarise(*dirs)
    print(markdown_table(summary))
    n = per_world.filter(per_world["status"] == "ok")["world_id"].n_unique()
    if args.png:
        Path(args.png).write_bytes(scores_png(summary, args.title or f"{n} worlds, {len(dirs)} runs"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
