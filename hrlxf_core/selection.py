"""Model selection by play: candidate checkpoint sets compete in the same short worlds.

Why: a held-out loss says how closely a policy copies its teachers, not how well it plays; two
checkpoints with the same loss can score very differently once L1, the opponents and the
market react to them. So the policy the agent ships is the candidate with the best
level-balanced mean score in a tournament where every candidate plays in every world, rotated
over the levels like any evaluation (``evaluation.draw_eval_specs``), beside fixed opponents.
Ties keep the earlier candidate (the order given), so the choice is deterministic.

The choice and every candidate's score go into the selected checkpoint's lineage
(``selected_checkpoint``), so "why this checkpoint?" has an answer in the file itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from hrlxf_core.evaluation import HRL_PREFIX, EvalConfig, run_evaluation, summarise

PREFIX = HRL_PREFIX + "neural:"
#: Where the published selection lives, relative to a data directory.
SELECTION_FILE = Path("policy_selection") / "current.json"


def selected_policy(data_dir: Path | str) -> dict[str, Any] | None:
    """The published selection of a data directory ({"l2", "l3", "l4": paths, "winner",
    "scores", ...}), or None when no selection has been materialized."""
    import json

    f = Path(data_dir) / SELECTION_FILE
    return json.loads(f.read_text()) if f.exists() else None


@dataclass(frozen=True)
class Candidate:
    """One checkpoint set: a name (unique, no spaces) and its L2 / L3 / L4 checkpoint paths."""

    name: str
    l2: str
    l3: str
    l4: str

    def paths(self) -> dict[str, str]:
        return {"l2": self.l2, "l3": self.l3, "l4": self.l4}


@dataclass
class Selection:
    winner: Candidate
    scores: dict[str, float]  # candidate -> level-balanced mean
    summary: pl.DataFrame
    worlds_ok: int
    config: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """What the selected checkpoint's lineage keeps of this selection."""
        return {
            "winner": self.winner.name,
            "criterion": "level-balanced mean score in the same worlds (ties: earlier candidate)",
            "scores": self.scores,
            "candidates": {c: p for c, p in self.config.get("candidates", {}).items()},
            "worlds_ok": self.worlds_ok,
            "worlds": {k: v for k, v in self.config.items() if k != "candidates"},
        }


def select_by_play(
    candidates: list[Candidate],
    out_dir: Path,
    run_id: str,
    data_dir: Path,
    *,
    opponents: tuple[str, ...] = ("PenguinAgent",),
    n_worlds: int = 6,
    n_steps_min: int = 15,
    n_steps_max: int = 25,
    seed: int = 0,
    n_processes_min: int = 2,
    n_processes_max: int = 3,
    workers: int = 2,
    world_timeout_s: float = 900.0,
    progress=print,
) -> Selection:
    """Play every candidate in the same worlds and return the best by level-balanced mean."""
    if not candidates:
        raise ValueError("model selection needs at least one candidate")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names) or any(not n or " " in n or ":" in n for n in names):
        raise ValueError(f"candidate names must be unique, non-empty, without spaces or ':': {names}")
    for c in candidates:
        for layer, p in c.paths().items():
            if not Path(p).is_file():
                raise FileNotFoundError(f"candidate {c.name!r}: {layer} checkpoint {p} does not exist")
    cfg = EvalConfig(
        contenders=tuple(PREFIX + n for n in names) + tuple(opponents),
        n_worlds=n_worlds,
        n_steps_min=n_steps_min,
        n_steps_max=n_steps_max,
        seed=seed,
        n_processes_min=n_processes_min,
        n_processes_max=n_processes_max,
        workers=workers,
        world_timeout_s=world_timeout_s,
        variants={c.name: c.paths() for c in candidates},
    )
    res = run_evaluation(cfg, out_dir, run_id, data_dir, progress=progress)
    summary, _ = summarise(out_dir)
    by_name = {r["contender"]: r["balanced_mean"] for r in summary.iter_rows(named=True)}
    scores = {n: float(by_name.get(PREFIX + n, math.nan)) for n in names}
    best = max(range(len(names)), key=lambda i: (_key(scores[names[i]]), -i))
    config = {
        "candidates": {c.name: c.paths() for c in candidates},
        "opponents": list(opponents),
        "n_worlds": n_worlds,
        "n_steps": [n_steps_min, n_steps_max],
        "n_processes": [n_processes_min, n_processes_max],
        "seed": seed,
    }
    return Selection(candidates[best], scores, summary, res.n_ok, config)


def _key(x: float) -> float:
    return -math.inf if math.isnan(x) else x


def selected_checkpoint(selection: Selection, out_path: Path) -> str:
    """Copy the winner's L3 checkpoint to ``out_path`` with the selection in its lineage (the
    weights are unchanged); returns the copy's sha256."""
    from hrlxf_core.training.checkpoint import load_checkpoint, save_checkpoint

    ck = load_checkpoint(Path(selection.winner.l3), "l3")
    ck["lineage"] = {**ck.get("lineage", {}), "selection": selection.record()}
    return save_checkpoint(out_path, ck)
