"""Rollout worlds: LitaAgentHRL (the stochastic online policy) among the experts, on the
hang-proof runner of the collection (local pool or Ray), and reading back their trajectories.

The worlds are drawn like the evaluation's (``evaluation.draw_eval_specs``): anac2024_std
configurations, the contenders rotated over the production levels in balanced blocks, the rest
filled with the std default agents. The rollout agent takes the place of one contender; its
sampling seed is derived from the world's seed, so a world re-run after a kill records exactly
the same trajectory (the worlds themselves are deterministic, ``sim.determinism``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from hrlxf_core.evaluation import EvalConfig, draw_eval_specs, level_name
from hrlxf_core.rl.policy import Explore
from hrlxf_core.rl.rollout_agent import ROLLOUT_AGENT_PATH
from hrlxf_core.sim.collect import CollectionResult, run_specs
from hrlxf_core.sim.world_spec import WorldSpec

ROLLOUT_LABEL = "LitaAgentHRL-rollout"
_PLACEHOLDER = "LitaAgentHRL-l1"  # the contender slot the rollout agent takes over


@dataclass
class RolloutConfig:
    """The rollout worlds of one iteration (shorter than full-length worlds, for time)."""

    n_worlds: int = 6
    n_steps_min: int = 20
    n_steps_max: int = 30
    n_processes_min: int = 2
    n_processes_max: int = 3
    opponents: tuple[str, ...] = ("PenguinAgent", "HorizonAwareAgent", "SBD", "TakaLinkAgent")
    min_factories_per_level: int = 4
    world_timeout_s: float = 600.0
    workers: int = 2
    backend: str = "local"


def rollout_specs(
    cfg: RolloutConfig, run_id: str, seed: int, policy_dir: Path, explore: Explore, out_dir: Path
) -> list[WorldSpec]:
    """The worlds of one iteration; the rollout agent writes ``out_dir/<world_id>.npz``."""
    ecfg = EvalConfig(
        contenders=(_PLACEHOLDER, *cfg.opponents),
        n_worlds=cfg.n_worlds,
        n_steps_min=cfg.n_steps_min,
        n_steps_max=cfg.n_steps_max,
        seed=seed,
        n_processes_min=cfg.n_processes_min,
        n_processes_max=cfg.n_processes_max,
        min_factories_per_level=cfg.min_factories_per_level,
    )
    specs = []
    for spec in draw_eval_specs(ecfg, run_id):
        labels = list(spec.agent_labels or ())
        slot = labels.index(_PLACEHOLDER)
        paths = list(spec.agent_paths)
        params = list(spec.agent_params or [None] * len(paths))
        paths[slot] = ROLLOUT_AGENT_PATH
        params[slot] = {
            "policy_dir": str(policy_dir),
            "out_path": str(out_dir / f"{spec.world_id}.npz"),
            "explore": dataclasses.asdict(explore),
            "sample_seed": int(spec.seed),
        }
        labels[slot] = ROLLOUT_LABEL
        specs.append(
            dataclasses.replace(
                spec, agent_paths=tuple(paths), agent_params=tuple(params), agent_labels=tuple(labels)
            )
        )
    return specs


def run_rollouts(
    cfg: RolloutConfig,
    specs: list[WorldSpec],
    worlds_dir: Path,
    run_id: str,
    data_dir: Path,
    progress: Any = print,
) -> CollectionResult:
    return run_specs(
        specs,
        worlds_dir,
        run_id,
        data_dir,
        workers=cfg.workers,
        world_timeout_s=cfg.world_timeout_s,
        tracked=False,
        label="rollouts",
        progress=progress,
        backend=cfg.backend,
    )


@dataclass
class Trajectory:
    """One rollout agent in one world: its arrays (``rollout_agent`` names) and the world's facts."""

    world_id: str
    score: float
    level: str
    opponent_scores: dict[str, float]
    arrays: dict[str, np.ndarray]

    @property
    def n_days(self) -> int:
        return len(self.arrays["day_reward"])


def world_scores(worlds_dir: Path) -> pl.DataFrame:
    """(world_id, label, level_name, score) of every labelled agent of the finished worlds."""
    from hrlxf_core.evaluation import per_world_scores

    return per_world_scores(worlds_dir).filter(pl.col("status") == "ok")


def load_trajectories(worlds_dir: Path, rollouts_dir: Path) -> tuple[list[Trajectory], dict[str, int]]:
    """The trajectories of the finished rollout worlds, in world order, and what was left out
    (failed / timed-out worlds, missing files)."""
    scores = world_scores(worlds_dir)
    worlds = pl.read_parquet(worlds_dir / "worlds.parquet").sort("world_id")
    out: list[Trajectory] = []
    skipped = {"not_ok": 0, "missing_file": 0}
    for w in worlds.iter_rows(named=True):
        if w["status"] != "ok":
            skipped["not_ok"] += 1
            continue
        path = rollouts_dir / f"{w['world_id']}.npz"
        if not path.exists():
            skipped["missing_file"] += 1
            continue
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        if len(arrays["day_reward"]) == 0:  # every day fell back: nothing of the policy to learn
            skipped["no_policy_days"] = skipped.get("no_policy_days", 0) + 1
            continue
        ws = scores.filter(pl.col("world_id") == w["world_id"])
        me = ws.filter(pl.col("contender") == ROLLOUT_LABEL)
        spec = WorldSpec.from_json(w["spec_json"])
        slot = list(spec.agent_labels or ()).index(ROLLOUT_LABEL)
        out.append(
            Trajectory(
                world_id=w["world_id"],
                score=float(me["score"][0]),
                level=level_name(spec.agent_levels[slot], spec.n_processes),
                opponent_scores={
                    r["contender"]: float(r["score"])
                    for r in ws.iter_rows(named=True)
                    if r["contender"] != ROLLOUT_LABEL
                },
                arrays=arrays,
            )
        )
    return out, skipped
