"""``hrl_online_policy``: online fine-tuning in real SCML worlds (seed stage 4, issue 13).

It starts from the behaviour-cloned policy that ``policy_selection`` chose by play (else the
current L2 / L3 / L4 checkpoints), runs PPO iterations of rollout worlds (phase A: L4 only;
phase B: L2 / L3 / L4 at a small learning rate; ``hrlxf_core.rl``), and publishes the final
policy in ``hrl_online_policy/current.json`` after its blocking check, with lineage to the BC
checkpoints. ``agent_evaluation``'s contender ``LitaAgentHRL-online`` plays it.

Resumable: the run directory is keyed by the config and the BC checkpoints; a materialization
that was killed continues from its last finished iteration.
"""

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from hrlxf_assets.lineage import git_commit, png_markdown
from hrlxf_assets.models import l2_model, l3_model, l4_model
from hrlxf_assets.resources import DataStore
from hrlxf_assets.selection import policy_selection
from hrlxf_core.io import file_sha256, write_text_atomic

CODE_VERSION = "online-v1"
ONLINE_ASSET = "hrl_online_policy"
ONLINE_FILE = f"{ONLINE_ASSET}/current.json"


class OnlinePolicyConfig(dg.Config):
    phase_a_iterations: int = Field(default=1, description="PPO iterations on L4 alone (L2 / L3 frozen).")
    phase_b_iterations: int = Field(default=1, description="PPO iterations on L2 / L3 / L4 together.")
    worlds_per_iteration: int = Field(default=2, description="Rollout worlds of one iteration.")
    n_steps_min: int = Field(default=10, description="Shortest rollout world (days).")
    n_steps_max: int = Field(default=12, description="Longest rollout world (days).")
    n_processes_min: int = Field(default=2, description="Fewest production levels of a rollout world.")
    n_processes_max: int = Field(default=2, description="Most production levels of a rollout world.")
    opponents: list[str] = Field(
        default=["PenguinAgent", "HorizonAwareAgent"], description="Experts that play beside the policy."
    )
    seed: int = Field(default=0, description="Seed of the worlds, the sampling and the learner.")
    lr_a: float = Field(default=1e-4, description="Phase A learning rate (L4).")
    lr_b: float = Field(default=1e-5, description="Phase B learning rate (≤ 0.1 × BC's 1e-3).")
    kl_max: float = Field(default=0.05, description="Bound on each layer's KL to the BC policy.")
    epochs: int = Field(default=4, description="PPO epochs per iteration.")
    residual_std_scale: float = Field(
        default=0.5, description="Residual std = this × BC's std (with a floor)."
    )
    goal_std_scale: float = Field(default=0.25, description="Goal std = this × L2's std (with a floor).")
    workers: int = Field(default=2, description="Rollout worlds run in parallel.")


def online_config(c: OnlinePolicyConfig) -> Any:
    from hrlxf_core.rl.policy import Explore
    from hrlxf_core.rl.ppo import PPOConfig
    from hrlxf_core.rl.rollouts import RolloutConfig
    from hrlxf_core.rl.train import OnlineConfig

    return OnlineConfig(
        phase_a_iterations=c.phase_a_iterations,
        phase_b_iterations=c.phase_b_iterations,
        seed=c.seed,
        explore=Explore(residual_std_scale=c.residual_std_scale, goal_std_scale=c.goal_std_scale),
        rollout=RolloutConfig(
            n_worlds=c.worlds_per_iteration,
            n_steps_min=c.n_steps_min,
            n_steps_max=c.n_steps_max,
            n_processes_min=c.n_processes_min,
            n_processes_max=c.n_processes_max,
            opponents=tuple(c.opponents),
            workers=c.workers,
        ),
        ppo=PPOConfig(lr_a=c.lr_a, lr_b=c.lr_b, kl_max=c.kl_max, epochs=c.epochs),
    )


def bc_checkpoints(data_dir: Path) -> dict[str, str]:
    """The BC policy to fine-tune: the one chosen by play, else each model's current checkpoint."""
    from hrlxf_core.selection import selected_policy

    sel = selected_policy(data_dir)
    if sel is not None:
        return {k: str(sel[k]) for k in ("l2", "l3", "l4")}
    out = {}
    for k in ("l2", "l3", "l4"):
        cur = Path(data_dir) / f"{k}_model" / "current.json"
        if not cur.exists():
            raise FileNotFoundError(f"{cur}: no current {k} checkpoint (materialize {k}_model first)")
        out[k] = json.loads(cur.read_text())["path"]
    return out


def online_policy(data_dir: Path | str) -> dict[str, Any] | None:
    """The published online policy ({"l2", "l3", "l4": paths, "policy_dir", lineage}), or None."""
    f = Path(data_dir) / ONLINE_FILE
    return json.loads(f.read_text()) if f.exists() else None


def publish_online(data_dir: Path, res: Any, cfg: Any, bc: dict[str, str]) -> dict[str, Any]:
    """Check that the final policy loads into the agent's neural stack, then write current.json."""
    from hrlxf_core.agent_layers import NeuralStack
    from hrlxf_core.rl.policy import policy_paths

    paths = policy_paths(Path(res.policy_dir).resolve())
    NeuralStack(Path(paths["l2"]), Path(paths["l3"]), Path(paths["l4"]))  # raises: nothing published
    current = {
        **paths,
        "policy_dir": str(Path(res.policy_dir).resolve()),
        "run_dir": str(Path(res.run_dir).resolve()),
        "iterations": len(res.history),
        "config": asdict(cfg),
        "bc": {k: {"path": p, "sha256": file_sha256(Path(p))} for k, p in bc.items()},
        "git_commit": git_commit(),
    }
    write_text_atomic(json.dumps(current, indent=1, default=str), Path(data_dir) / ONLINE_FILE)
    return current


@dg.asset(
    name=ONLINE_ASSET,
    deps=[l2_model, l3_model, l4_model, policy_selection],
    group_name="models",
    kinds={"python", "pytorch"},
    code_version=CODE_VERSION,
    check_specs=[
        dg.AssetCheckSpec(
            "online_policy_loads",
            asset=ONLINE_ASSET,
            blocking=True,
            description="the fine-tuned L2 / L3 / L4 load together into the agent's neural stack",
        ),
        dg.AssetCheckSpec(
            "kl_within_bound",
            asset=ONLINE_ASSET,
            blocking=True,
            description="every iteration's KL to the BC policy is within kl_max",
        ),
    ],
    description="Online fine-tuning (PPO) of the BC policy in real worlds among the experts: L4 first, then "
    "L2/L3/L4 together; resumable; publishes hrl_online_policy/current.json.",
)
def hrl_online_policy(
    context: dg.AssetExecutionContext, config: OnlinePolicyConfig, data_store: DataStore
) -> dg.MaterializeResult:
    from hrlxf_core.rl.train import fine_tune

    t0 = time.perf_counter()
    data = data_store.root()
    cfg = online_config(config)
    try:
        cfg.validate()
        bc = bc_checkpoints(data)
    except (ValueError, FileNotFoundError) as exc:
        raise dg.Failure(f"hrl_online_policy: {exc}") from exc
    res = fine_tune(cfg, bc, data_store.asset_dir(ONLINE_ASSET), data, log=context.log.info)
    over = [
        (h["iteration"], g, v)
        for h in res.history
        for g, v in h.get("kl_to_bc", {}).items()
        if v > cfg.ppo.kl_max + 1e-9
    ]
    loads, error = True, ""
    current: dict[str, Any] = {}
    if not over:
        try:
            current = publish_online(data, res, cfg, bc)
        except Exception as exc:  # reported by the blocking check; nothing published
            loads, error = False, f"{type(exc).__name__}: {exc}"
    from hrlxf_core.training.plots import online_curve_png

    png = online_curve_png(res.history)
    wall = sum(h["rollout_s"] for h in res.history)
    worlds = sum(h["worlds"] for h in res.history)
    table = (
        "| iteration | phase | worlds | mean score | KL to BC | steps |\n|---:|---|---:|---:|---|---:|\n"
        + "\n".join(
            f"| {h['iteration']} | {h['phase']} | {h['worlds']} | {h['mean_score']:.3f} | "
            f"{', '.join(f'{g} {v:.4f}' for g, v in h['kl_to_bc'].items())} | {h['policy_steps']} |"
            for h in res.history
        )
    )
    return dg.MaterializeResult(
        metadata={
            "policy_dir": dg.MetadataValue.path(str(res.policy_dir)),
            "iterations": len(res.history),
            "resumed_from_iteration": res.resumed_from,
            "curve": dg.MetadataValue.md(table),
            "curve_png": png_markdown(png, "mean score and KL to BC per iteration"),
            "worlds_per_hour": round(worlds * 3600.0 / wall, 1) if wall > 0 else 0.0,
            "lineage": dg.MetadataValue.json(
                {"bc": bc, "run_dir": str(res.run_dir), **({"published": current} if current else {})}
            ),
            "wall_time_s": round(time.perf_counter() - t0, 1),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="online_policy_loads",
                asset_key=ONLINE_ASSET,
                passed=loads and not over,
                metadata={"error": error or ("not checked: KL bound failed" if over else "none")},
            ),
            dg.AssetCheckResult(
                check_name="kl_within_bound",
                asset_key=ONLINE_ASSET,
                passed=not over,
                metadata={"over": dg.MetadataValue.json([list(o) for o in over]) if over else "none"},
            ),
        ],
    )
