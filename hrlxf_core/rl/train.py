"""The online fine-tuning loop: iterations of (rollout worlds → PPO update → checkpoint),
phase A (L4 only) then phase B (L2 / L3 / L4), resumable after a kill.

Run layout (``run_dir``, keyed by the config and the BC checkpoints' sha256)::

    initial/            the BC policy with a fresh critic (what iteration 0 plays)
    iter_0000/worlds/   the rollout worlds (the runner's part files; resumable per world)
    iter_0000/rollouts/ one .npz per world (``rollout_agent``)
    iter_0000/policy/   the policy after the update (a policy directory, ``policy.save_policy``)
    iter_0000/state.pt  optimiser states, β, metrics: written last, it marks the iteration done
    history.json        one row per finished iteration

Exact resume: the worlds, the agents' sampling seeds and the learner's shuffles are functions of
(seed, iteration); the learner's state is restored from the last finished iteration's
``state.pt``. So a run killed at any point and restarted ends with the same weights as a run
that was never interrupted (tested).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrlxf_core.io import atomic_write, file_sha256, write_text_atomic
from hrlxf_core.models.schema import jsonable, schema_hash
from hrlxf_core.rl.policy import Explore, OnlinePolicy, load_policy, policy_from_checkpoints, save_policy
from hrlxf_core.rl.ppo import Learner, PPOConfig, make_batch, recompute_log_probs
from hrlxf_core.rl.rollouts import (
    ROLLOUT_LABEL,
    RolloutConfig,
    load_trajectories,
    rollout_specs,
    run_rollouts,
)

#: BC's learning rate (``training.loop.TrainConfig.lr``): phase B must stay at ≤ 0.1 × of it.
BC_LR = 1e-3


@dataclass
class OnlineConfig:
    phase_a_iterations: int = 4
    phase_b_iterations: int = 4
    seed: int = 0
    #: how the stochastic policy samples (its ``phase`` is set per iteration)
    explore: Explore = field(default_factory=Explore)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    #: 1: the batches are small (~10^3 rows), and OpenMP threads spin badly when the rollout
    #: workers keep the cores busy (measured: 240 s per update with 2 threads on a loaded machine)
    torch_threads: int = 1

    @property
    def n_iterations(self) -> int:
        return self.phase_a_iterations + self.phase_b_iterations

    def phase(self, iteration: int) -> str:
        return "A" if iteration < self.phase_a_iterations else "B"

    def validate(self) -> None:
        if self.phase_a_iterations < 0 or self.phase_b_iterations < 0 or self.n_iterations == 0:
            raise ValueError("OnlineConfig: phase_a_iterations + phase_b_iterations must be ≥ 1 (each ≥ 0)")
        if self.ppo.lr_b > 0.1 * BC_LR + 1e-12:
            raise ValueError(
                f"OnlineConfig ppo.lr_b {self.ppo.lr_b:g} is above 0.1 × BC's lr ({0.1 * BC_LR:g})"
            )
        if not 5 <= self.rollout.n_steps_min <= self.rollout.n_steps_max:
            raise ValueError("OnlineConfig rollout.n_steps_min/max: need 5 <= min <= max")
        if self.rollout.n_worlds < 1:
            raise ValueError("OnlineConfig rollout.n_worlds must be ≥ 1")
        e = self.explore
        if min(e.residual_std_scale, e.goal_std_scale) <= 0:
            raise ValueError("OnlineConfig explore.residual_std_scale / goal_std_scale must be > 0")
        if min(e.residual_std_floor_q, e.residual_std_floor_p, e.goal_std_floor) < 0:
            raise ValueError("OnlineConfig explore std floors must be ≥ 0")

    def explore_at(self, iteration: int) -> Explore:
        return dataclasses.replace(self.explore, phase=self.phase(iteration))

    def key(self) -> dict[str, Any]:
        d = asdict(self)
        d["rollout"].pop("workers")  # how many workers run the worlds does not change them
        d["rollout"].pop("backend")
        d.pop("torch_threads")
        return d


def online_config_from_dict(d: dict[str, Any]) -> OnlineConfig:
    d = dict(d)
    r = RolloutConfig(**{**d.pop("rollout", {})})
    r.opponents = tuple(r.opponents)
    e = Explore(**d.pop("explore", {}))
    return OnlineConfig(rollout=r, ppo=PPOConfig(**d.pop("ppo", {})), explore=e, **d)


def run_dir_for(work_dir: Path, cfg: OnlineConfig, bc: dict[str, str]) -> Path:
    key = schema_hash({"config": cfg.key(), "bc": {k: file_sha256(Path(p)) for k, p in sorted(bc.items())}})
    return Path(work_dir) / "runs" / key[:12]


def _iter_dir(run: Path, i: int) -> Path:
    return run / f"iter_{i:04d}"


def finished_iterations(run: Path) -> int:
    """How many iterations are finished (their state.pt exists, in sequence)."""
    i = 0
    while (_iter_dir(run, i) / "state.pt").exists():
        i += 1
    return i


@dataclass
class OnlineResult:
    run_dir: Path
    policy_dir: Path
    history: list[dict[str, Any]]
    resumed_from: int


def _groups(phase: str) -> tuple[str, ...]:
    return ("l4",) if phase == "A" else ("l2", "l3", "l4")


def _iteration_seed(cfg: OnlineConfig, i: int) -> int:
    return int(cfg.seed) * 100_003 + i


def fine_tune(
    cfg: OnlineConfig,
    bc: dict[str, str],
    work_dir: Path,
    data_dir: Path,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> OnlineResult:
    """Run (or resume) the fine-tuning; ``stop_after`` ends after that many finished iterations
    (the rest is done by a later call)."""
    cfg.validate()
    torch.set_num_threads(cfg.torch_threads)
    run = run_dir_for(work_dir, cfg, bc)
    run.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        json.dumps({"config": jsonable(cfg.key()), "bc": bc}, indent=2, sort_keys=True), run / "run.json"
    )
    if not (run / "initial" / "policy.json").exists():
        save_policy(
            policy_from_checkpoints(bc, cfg.explore_at(0), seed=cfg.seed),
            run / "initial",
            {"iteration": -1, "bc": bc},
        )
    done = finished_iterations(run)
    history: list[dict[str, Any]] = (
        json.loads((run / "history.json").read_text()) if done and (run / "history.json").exists() else []
    )
    history = history[:done]
    if done:
        log(f"[online] resuming {run} after {done} finished iteration(s)")
    ref = policy_from_checkpoints(bc, cfg.explore_at(0))
    last = cfg.n_iterations if stop_after is None else min(cfg.n_iterations, done + max(stop_after, 0))
    for i in range(done, last):
        phase = cfg.phase(i)
        explore = cfg.explore_at(i)
        played = run / "initial" if i == 0 else _iter_dir(run, i - 1) / "policy"
        idir = _iter_dir(run, i)
        specs = rollout_specs(
            cfg.rollout, f"{run.name}-i{i:04d}", _iteration_seed(cfg, i), played, explore, idir / "rollouts"
        )
        t0 = time.perf_counter()
        res = run_rollouts(
            cfg.rollout, specs, idir / "worlds", f"{run.name}-i{i:04d}", data_dir, progress=log
        )
        rollout_s = time.perf_counter() - t0
        trajs, skipped = load_trajectories(idir / "worlds", idir / "rollouts")
        if not trajs:
            raise RuntimeError(
                f"[online] iteration {i}: no rollout world finished ({skipped}); see {idir / 'worlds'}"
            )
        policy: OnlinePolicy = load_policy(played, explore)
        learner = Learner(
            policy, ref, _groups(phase), cfg.ppo, cfg.ppo.lr_a if phase == "A" else cfg.ppo.lr_b
        )
        if i > 0:  # the learner's state always comes from disk: a resumed run continues exactly
            s = torch.load(_iter_dir(run, i - 1) / "state.pt", weights_only=True)["learner"]
            if cfg.phase(i - 1) == phase:
                learner.load_state_dict(s)
            else:  # a new phase: new optimiser over the new layers; the critic's state and β go on
                learner.critic_opt.load_state_dict(s["critic_opt"])
                learner.kl_coef = float(s["kl_coef"])
        batch = make_batch(trajs)
        t1 = time.perf_counter()
        metrics = learner.update(batch, _iteration_seed(cfg, i), warmup=(i == 0))
        learn_s = time.perf_counter() - t1
        scores = np.array([t.score for t in trajs])
        row = {
            "iteration": i,
            "phase": phase,
            "worlds": len(trajs),
            "worlds_skipped": skipped,
            "mean_score": float(scores.mean()),
            "scores": scores.tolist(),
            "levels": [t.level for t in trajs],
            "opponent_mean": {
                name: float(np.mean([t.opponent_scores[name] for t in trajs if name in t.opponent_scores]))
                for name in cfg.rollout.opponents
            },
            "dropped_rounds": int(sum(int(t.arrays["dropped_rounds"]) for t in trajs)),
            "rollout_s": rollout_s,
            "worlds_per_hour": len(trajs) * 3600.0 / max(rollout_s, 1e-9) if res.n_ok else 0.0,
            "learn_s": learn_s,
            "days": batch.n_days,
            **metrics,
        }
        save_policy(policy, idir / "policy", {"iteration": i, "phase": phase, "bc": bc, "metrics": row})
        state = {"learner": learner.state_dict(), "row": jsonable(row)}
        atomic_write(idir / "state.pt", lambda p, s=state: torch.save(s, p))
        history.append(jsonable(row))
        write_text_atomic(json.dumps(history, indent=2), run / "history.json")
        log(
            f"[online] iteration {i} (phase {phase}): mean score {row['mean_score']:.3f} over {len(trajs)} worlds, "
            f"KL to BC {metrics['kl_to_bc']}, {metrics['policy_steps']} steps ({metrics['stop']}), "
            f"{row['worlds_per_hour']:.0f} worlds/h"
        )
    n = finished_iterations(run)
    policy_dir = _iter_dir(run, n - 1) / "policy" if n else run / "initial"
    return OnlineResult(run, policy_dir, history, done)


def rollout_explore(worlds_dir: Path) -> Explore:
    """How the rollout agent of these worlds sampled (its ``explore`` parameter in the specs)."""
    import polars as pl

    from hrlxf_core.sim.world_spec import WorldSpec

    spec = WorldSpec.from_json(pl.read_parquet(Path(worlds_dir) / "worlds.parquet")["spec_json"][0])
    slot = list(spec.agent_labels or ()).index(ROLLOUT_LABEL)
    return Explore(**(spec.agent_params or ())[slot]["explore"])


def check_log_probs(policy_dir: Path, worlds_dir: Path, rollouts_dir: Path) -> dict[str, float]:
    """Largest |recorded − recomputed| log-probability per head for the rollouts a policy
    directory played (a consistency check of the rollout against the learner)."""
    trajs, _ = load_trajectories(worlds_dir, rollouts_dir)
    batch = make_batch(trajs)
    policy = load_policy(policy_dir, rollout_explore(worlds_dir))
    rec = recompute_log_probs(policy, batch)
    out = {}
    if "l3_op" in rec:
        out["l3_op"] = float(np.abs(rec["l3_op"] - batch.l3["lp_op"]).max())
        out["l3_delta"] = float(np.abs(rec["l3_delta"] - batch.l3["lp_delta"]).max())
        out["l3_residual"] = float(np.abs(rec["l3_residual"] - batch.l3["lp_res"]).max())
    if "l4" in rec:
        out["l4"] = float(np.abs(rec["l4"] - batch.l4["lp"]).max())
    if "l2" in rec:
        out["l2"] = float(np.abs(rec["l2"] - batch.days["lp_l2"]).max())
    return out
