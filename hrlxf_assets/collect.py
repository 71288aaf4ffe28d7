"""``tournament_logs``: expert tournaments collected into tracker tables, one partition per run."""

import hashlib
import os
import warnings
from importlib.metadata import version
from typing import Any

import dagster as dg
from pydantic import Field

from hrlxf_assets.partitions import collection_runs
from hrlxf_assets.resources import DataStore, ray_resource_defs
from hrlxf_assets.versioning import files_sha256
from hrlxf_core.sim.collect import (
    BACKENDS,
    DEFAULT_ROSTER,
    PROFILES,
    SCALE_EXTRA_HINT,
    collect,
    make_config,
    resolve_backend,
)
from hrlxf_core.sim.records import TABLES
from hrlxf_core.sim.world_run import apply_sandbox_env

#: Bump when the collection code changes what it writes: downstream assets become stale.
CODE_VERSION = "collect-v2"


class TournamentLogsConfig(dg.Config):
    """How a collection run draws and runs its worlds. Fields left empty take the profile's value."""

    profile: str = Field(
        default="smoke",
        description=f"Scale preset: one of {sorted(PROFILES)}. smoke = a handful of short worlds "
        "(~2 minutes on 2 cores); full = anac2024_std defaults (50-200 days).",
    )
    roster: list[str] = Field(
        default=list(DEFAULT_ROSTER),
        description="Contenders: roster names (PenguinAgent, AS0, ...) or full class paths of std agents. "
        "Each world draws its competitors from this list; every competitor is tracked.",
    )
    n_worlds: int | None = Field(default=None, description="Number of worlds (profile default if empty).")
    n_steps_min: int | None = Field(default=None, description="Shortest world, in days (>= 5).")
    n_steps_max: int | None = Field(default=None, description="Longest world, in days.")
    competitors_per_world: int | None = Field(
        default=None, description="Roster agents per world; other factories are std default agents."
    )
    seed: int | None = Field(
        default=None, description="Seed of the world draw; empty = derived from the partition key."
    )
    world_timeout_s: float | None = Field(
        default=None,
        description="Wall-clock limit per world; a world over it is killed and recorded as timed out.",
    )
    workers: int | None = Field(default=None, description="Worker processes running worlds in parallel.")
    retry_failed: bool = Field(
        default=False, description="On resume, run again the worlds recorded as failed or timed out."
    )
    backend: str = Field(
        default=os.environ.get("HRLXF_COLLECT_BACKEND", "auto"),
        description=f"Where worlds run: one of {list(BACKENDS)}. auto = Ray (through the ray_cluster "
        "resource: a local Ray instance, or the cluster at $RAY_ADDRESS) when the scale extra is "
        f"installed ({SCALE_EXTRA_HINT}), else the local process pool. Default from $HRLXF_COLLECT_BACKEND.",
    )


def seed_for_partition(partition_key: str) -> int:
    """A stable seed per partition, so each collection run draws different worlds."""
    return int(hashlib.sha256(partition_key.encode()).hexdigest()[:8], 16)


def _md_table(counts: dict[str, int]) -> str:
    lines = ["| agent type | decisions |", "|---|---:|"]
    lines += [f"| `{k}` | {v:,} |" for k, v in counts.items()]
    return "\n".join(lines)


def _pick_backend(config: TournamentLogsConfig, ray_cluster: Any) -> str:
    """``local`` or ``ray`` for this run; Ray needs both Ray and dagster-ray (the scale extra)."""
    field = "TournamentLogsConfig.backend"
    backend = resolve_backend(config.backend, field)
    if backend == "ray" and ray_cluster is None:
        if config.backend == "ray":
            raise RuntimeError(
                f"{field}='ray' needs dagster-ray, which is not installed: install the scale extra "
                f"({SCALE_EXTRA_HINT}) or use {field}='local'"
            )
        backend = "local"
    return backend


# The Ray resource is bound to the asset (not listed in Definitions) so that the asset runs
# wherever only `data_store` is provided, with or without the scale extra; the asset takes it as
# a parameter only when it exists (two signatures below: Dagster refuses an asset that mixes
# `required_resource_keys` with resource parameters). Dagster marks asset-bound resources as
# beta; that warning says nothing to the users of this code location.
RAY_RESOURCES = ray_resource_defs()  # {} or {"ray_cluster": ...}: the parameter below
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    _asset = dg.asset(
        partitions_def=collection_runs,
        group_name="collect",
        kinds={"python", "parquet"},
        code_version=CODE_VERSION,
        resource_defs=RAY_RESOURCES,
        description="Expert SCML std tournaments (2024 engine) with every competitor wrapped by the decision "
        "recorder: worlds, day-start states, negotiations, decisions and contracts as parquet tables under "
        "$HRLXF_DATA_DIR/tournament_logs/<partition>/. Rerunning a partition resumes it. With the scale "
        "extra installed the worlds run on Ray (ray_cluster resource), else on a local process pool.",
    )


def _collect_partition(
    context: dg.AssetExecutionContext,
    config: TournamentLogsConfig,
    data_store: DataStore,
    ray_cluster: Any | None,
) -> dg.MaterializeResult:
    partition = context.partition_key
    backend = _pick_backend(config, ray_cluster)
    workers = config.workers
    if backend == "ray":
        ray_cluster.ensure_connected(context)
        if workers is None:  # as many worlds at once as the cluster has CPUs
            workers = max(1, ray_cluster.cluster_cpus())
    cfg = make_config(
        config.profile,
        roster=config.roster,
        n_worlds=config.n_worlds,
        n_steps_min=config.n_steps_min,
        n_steps_max=config.n_steps_max,
        competitors_per_world=config.competitors_per_world,
        seed=config.seed if config.seed is not None else seed_for_partition(partition),
        world_timeout_s=config.world_timeout_s,
        workers=workers,
        retry_failed=config.retry_failed,
        backend=backend,
    )
    data_dir = data_store.root()
    apply_sandbox_env(data_dir)
    out_dir = data_store.asset_dir("tournament_logs", partition)
    result = collect(cfg, out_dir, partition, data_dir, progress=context.log.info)
    if result.n_ok == 0:
        raise dg.Failure(
            description=f"collection {partition!r}: no world finished ok "
            f"({result.n_failed} failed, {result.n_timed_out} timed out); see {out_dir / 'worlds.parquet'}",
        )
    table_files = [out_dir / f"{t}.parquet" for t in TABLES]
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out_dir)),
            "profile": cfg.profile,
            "backend": backend,
            "workers": cfg.workers,
            "seed": cfg.seed,
            "roster": dg.MetadataValue.json(list(cfg.roster)),
            "worlds_total": result.n_worlds,
            "worlds_ok": result.n_ok,
            "worlds_failed": result.n_failed,
            "worlds_timed_out": result.n_timed_out,
            "worlds_resumed_from_disk": result.n_skipped,
            "rows": dg.MetadataValue.json(result.rows),
            "decisions_per_agent_type": dg.MetadataValue.md(_md_table(result.decisions_per_agent_type)),
            "recorder_errors": result.recorder_errors,
            "wall_time_s": round(result.wall_time_s, 2),
            "scml_version": version("scml"),
            "negmas_version": version("negmas"),
            "scml_agents_version": version("scml-agents"),
        },
        data_version=dg.DataVersion(files_sha256(table_files)[:16]),
    )


if RAY_RESOURCES:

    @_asset
    def tournament_logs(
        context: dg.AssetExecutionContext,
        config: TournamentLogsConfig,
        data_store: DataStore,
        ray_cluster: dg.ResourceParam[Any],
    ) -> dg.MaterializeResult:
        return _collect_partition(context, config, data_store, ray_cluster)

else:

    @_asset
    def tournament_logs(
        context: dg.AssetExecutionContext, config: TournamentLogsConfig, data_store: DataStore
    ) -> dg.MaterializeResult:
        return _collect_partition(context, config, data_store, None)
