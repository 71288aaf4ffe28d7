"""``agent_evaluation``: LitaAgentHRL (neural, heuristic, L1-only) against the experts, same worlds."""

import time

import dagster as dg
import polars as pl
from pydantic import Field

from hrlxf_assets.automation import follow_on_cron
from hrlxf_assets.lineage import png_markdown
from hrlxf_assets.online import online_policy
from hrlxf_assets.resources import DataStore
from hrlxf_assets.selection import policy_selection
from hrlxf_core.evaluation import (
    DEFAULT_CONTENDERS,
    HRL_PREFIX,
    EvalConfig,
    markdown_table,
    run_evaluation,
    scores_png,
    summarise,
)
from hrlxf_core.io import write_parquet_atomic, write_text_atomic
from hrlxf_core.selection import SELECTION_FILE, selected_policy
from hrlxf_core.sim.l1_guard import FILTER_SUFFIX

CODE_VERSION = "evaluation-v3"
ONLINE_CONTENDER = "LitaAgentHRL-online"


class EvaluationConfig(dg.Config):
    contenders: list[str] = Field(
        default=list(DEFAULT_CONTENDERS),
        description="LitaAgentHRL-<mode> (l1, heuristic, neural), roster names, and <Expert>+L1 "
        "(the expert filtered through L1: the ceiling); every contender plays in every world, "
        "rotated over the levels (balanced).",
    )
    n_worlds: int = Field(default=4, description="Worlds of the tournament.")
    n_steps_min: int = Field(default=15, description="Shortest world (days).")
    n_steps_max: int = Field(default=25, description="Longest world (days).")
    seed: int = Field(default=0, description="Seed of the world draw (use several seeds for a verdict).")
    n_processes_min: int = Field(default=2, description="Fewest production levels of a world.")
    n_processes_max: int = Field(default=3, description="Most production levels of a world.")
    world_timeout_s: float = Field(default=900.0, description="Wall-clock limit per world.")
    workers: int = Field(default=2, description="Worlds run in parallel.")


def _plain_experts(summary) -> set[str]:
    return {
        c
        for c in summary["contender"].to_list()
        if not c.startswith(HRL_PREFIX) and not c.endswith(FILTER_SUFFIX)
    }


def _per_world_md(per_world, out) -> str:
    if per_world.height > 300:
        return f"{per_world.height} rows: {out / 'per_world.parquet'}"
    lines = ["| world | contender | level | score | status |", "|---|---|---:|---:|---|"]
    for r in per_world.iter_rows(named=True):
        score = "" if r["score"] is None else f"{r['score']:.3f}"
        lines.append(f"| {r['world_id']} | {r['contender']} | {r['level']} | {score} | {r['status']} |")
    return "\n".join(lines)


@dg.asset(
    deps=[policy_selection],
    automation_condition=follow_on_cron(),
    group_name="evaluation",
    kinds={"python", "parquet"},
    code_version=CODE_VERSION,
    description="Tournament with anac2024_std scoring: LitaAgentHRL in each mode and the experts on the same "
    "worlds. Per contender: mean, truncated mean, 95% CI, unsafe actions, fallbacks, decision latency.",
)
def agent_evaluation(
    context: dg.AssetExecutionContext, config: EvaluationConfig, data_store: DataStore
) -> dg.MaterializeResult:
    t0 = time.perf_counter()
    chosen = selected_policy(data_store.root())
    if chosen is None:
        raise dg.Failure(
            f"agent_evaluation: no policy chosen by play ({data_store.root() / SELECTION_FILE} missing): "
            "materialize policy_selection first"
        )
    checkpoints = {k: chosen[k] for k in ("l2", "l3", "l4")}
    contenders, notes = list(config.contenders), []
    online = online_policy(data_store.root())
    if ONLINE_CONTENDER in contenders and online is None:
        if list(config.contenders) != list(DEFAULT_CONTENDERS):
            raise dg.Failure(
                f"agent_evaluation: contender {ONLINE_CONTENDER!r}: no online policy published "
                f"({data_store.root() / 'hrl_online_policy' / 'current.json'} missing): materialize "
                "hrl_online_policy first, or leave it out"
            )
        contenders.remove(ONLINE_CONTENDER)  # the default list: play without it, and say so
        notes.append(
            f"{ONLINE_CONTENDER} left out: no online policy published (materialize hrl_online_policy)"
        )
        context.log.warning(notes[-1])
    cfg = EvalConfig(
        contenders=tuple(contenders),
        n_worlds=config.n_worlds,
        n_steps_min=config.n_steps_min,
        n_steps_max=config.n_steps_max,
        seed=config.seed,
        n_processes_min=config.n_processes_min,
        n_processes_max=config.n_processes_max,
        world_timeout_s=config.world_timeout_s,
        workers=config.workers,
        checkpoints=checkpoints,
        checkpoints_dir=str(data_store.root()),
    )
    run_key = f"eval-{context.run_id[:8]}"
    out = data_store.asset_dir("agent_evaluation") / "runs" / run_key
    res = run_evaluation(cfg, out, run_key, data_store.root(), progress=context.log.info)
    summary, per_world = summarise(out)
    write_parquet_atomic(summary, out / "summary.parquet")
    write_parquet_atomic(per_world, out / "per_world.parquet")
    table = markdown_table(summary)
    write_text_atomic(table + "\n", out / "results.md")
    return dg.MaterializeResult(
        metadata={
            "results": dg.MetadataValue.md(table),
            "scores_plot": png_markdown(scores_png(summary, f"{res.n_ok} worlds, seed {cfg.seed}"), "scores"),
            "per_world": dg.MetadataValue.md(_per_world_md(per_world, out)),
            "worlds_ok": res.n_ok,
            "online_policy": dg.MetadataValue.json(
                {"policy_dir": online["policy_dir"], "bc": online["bc"]}
                if online and ONLINE_CONTENDER in contenders
                else {}
            ),
            "notes": "; ".join(notes) or "none",
            "worlds_failed": res.n_failed,
            "worlds_timed_out": res.n_timed_out,
            "checkpoints": dg.MetadataValue.json(checkpoints),
            "selected_by_play": chosen.get("winner", ""),
            # agreements that broke L1's invariant, of the contenders that play behind L1 (the HRL
            # agent and the <Expert>+L1 ceilings): must be 0; plain experts are only watched
            "unsafe_agreements_behind_l1": int(
                summary.filter(~pl.col("contender").is_in(list(_plain_experts(summary))))["unsafe_agreements"]
                .fill_null(0)
                .sum()
            ),
            "level_balanced_mean": dg.MetadataValue.json(
                {r["contender"]: round(r["balanced_mean"], 4) for r in summary.iter_rows(named=True)}
            ),
            "path": dg.MetadataValue.path(str(out)),
            "wall_time_s": round(time.perf_counter() - t0, 1),
        }
    )
