"""Model assets in the seed's order: l2_model → micro_samples_goal_hat → l3_model;
l4_distill_set → l4_model. Models read all materialized partitions (or a chosen set) and never
retrain by themselves when a new partition arrives (materialize them in the UI or on a cron).

torch is imported inside the asset bodies, so loading the code location stays fast.
"""

import json
import math
import time
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from hrlxf_assets.automation import follow_each_partition, follow_on_cron, retrain_on_cron_when_new_data
from hrlxf_assets.collect import tournament_logs
from hrlxf_assets.datasets import MACRO_FILE, MICRO_FILE, DatasetConfig, macro_samples, micro_samples
from hrlxf_assets.lineage import lineage_record, png_markdown, source_files
from hrlxf_assets.partitions import collection_runs
from hrlxf_assets.publish import blocking_failures, problems_check, publication_metadata, publish_frame
from hrlxf_assets.resources import DataStore
from hrlxf_core.datasets.checks import check_goal_hat, check_l4
from hrlxf_core.datasets.outcomes import TOP_TEACHERS
from hrlxf_core.datasets.partition import load_partition
from hrlxf_core.io import write_text_atomic

CODE_VERSION = "models-v1"
GOAL_HAT_FILE = "micro_goal_hat.parquet"
L4_FILE = "l4_distill.parquet"
ALL = dg.AllPartitionMapping()


class TrainingConfig(dg.Config):
    """Training knobs (defaults suit the smoke scale; raise epochs for full data)."""

    partitions: list[str] = Field(
        default=[], description="collection_runs partitions to train on; empty = all materialized."
    )
    max_epochs: int = Field(
        default=20, description="Upper bound on epochs (early stopping on validation loss)."
    )
    patience: int = Field(default=4, description="Epochs without validation improvement before stopping.")
    batch_size: int = Field(default=512, description="Mini-batch size.")
    lr: float = Field(default=1e-3, description="Learning rate (also applied when a run resumes).")
    seed: int = Field(default=0, description="Seed of initialisation, shuffling and dropout.")
    device: str = Field(default="auto", description="auto / cpu / cuda (bf16 autocast on CUDA).")
    teacher_weighting: str = Field(
        default="uniform",
        description="Outcome weighting of the BC samples: uniform (plain BC), top (only the "
        f"{TOP_TEACHERS} experts with the best mean score at each level) or score (exp of the "
        "agent-world's within-level z-score, capped). L4 distils a heuristic teacher: uniform only.",
    )
    max_train_worlds: int = Field(
        default=0,
        description="Train on at most this many training-split worlds (0 = all; nested subsets, the "
        "validation and test worlds unchanged): the x axis of a learning curve.",
    )


class L3TrainingConfig(TrainingConfig):
    awr_epochs: int = Field(
        default=4, description="Epochs of advantage-weighted regression after BC (0 = BC only)."
    )


def _train_cfg(c: TrainingConfig):
    from hrlxf_core.training.loop import TrainConfig

    return TrainConfig(
        lr=c.lr,
        batch_size=c.batch_size,
        max_epochs=c.max_epochs,
        patience=c.patience,
        seed=c.seed,
        device=c.device,
        teacher_weighting=c.teacher_weighting,
        max_train_worlds=c.max_train_worlds,
    )


def _model_dir(store: DataStore, asset: str, run_id: str) -> Path:
    return store.asset_dir(asset) / "runs" / run_id


def _publish_current(store: DataStore, asset: str, path: Path, sha: str) -> None:
    write_text_atomic(json.dumps({"path": str(path), "sha256": sha}), store.asset_dir(asset) / "current.json")


def current_checkpoint(store: DataStore, asset: str) -> Path:
    """The checkpoint file of the latest materialization of a model asset."""
    f = store.asset_dir(asset) / "current.json"
    if not f.exists():
        raise dg.Failure(f"{asset} has no checkpoint yet ({f} missing): materialize {asset} first")
    return Path(json.loads(f.read_text())["path"])


def _finite(path: Path) -> bool:
    import torch

    sd = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return all(bool(torch.isfinite(v).all()) for v in sd.values() if v.is_floating_point())


def _close(a: dict[str, Any], b: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    bad = []
    for k in keys:
        x, y = a.get(k), b.get(k)
        if (
            isinstance(x, float)
            and isinstance(y, float)
            and not (math.isnan(x) and math.isnan(y))
            and abs(x - y) > 1e-4 * max(1.0, abs(x))
        ):
            bad.append(f"{k}: checkpoint {x:.6g} vs reloaded {y:.6g}")
    return bad


def _model_checks(
    asset: str, path: Path, metrics: dict, reproduced: dict, keys: tuple[str, ...]
) -> list[dg.AssetCheckResult]:
    finite = _finite(path)
    diffs = _close(metrics, reproduced, keys)
    return [
        dg.AssetCheckResult(check_name="weights_finite", asset_key=asset, passed=finite),
        dg.AssetCheckResult(
            check_name="reload_reproduces_metrics",
            asset_key=asset,
            passed=not diffs,
            metadata={"differences": dg.MetadataValue.md("\n".join(diffs) or "none")},
        ),
        dg.AssetCheckResult(
            check_name="beats_naive_baseline",
            asset_key=asset,
            passed=bool(metrics.get("beats_baseline")),
            severity=dg.AssetCheckSeverity.WARN,
        ),
    ]


def _checks(asset: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec("weights_finite", asset=asset, blocking=True, description="every weight is finite"),
        dg.AssetCheckSpec(
            "reload_reproduces_metrics",
            asset=asset,
            blocking=True,
            description="the checkpoint reloads into a fresh model and reproduces its held-out metrics",
        ),
        dg.AssetCheckSpec(
            "beats_naive_baseline",
            asset=asset,
            description="held-out metrics beat the naive baseline (warning only: smoke data is small)",
        ),
    ]


def _model_metadata(trained, sources: dict[str, Path], lineage: dict[str, Any], title: str) -> dict[str, Any]:
    from hrlxf_core.training.plots import curve_png

    return {
        "checkpoint_path": dg.MetadataValue.path(str(trained.path)),
        "checkpoint_sha256": trained.sha256,
        "metrics": dg.MetadataValue.json(trained.metrics),
        "training_curve": png_markdown(curve_png(trained.history, title, trained.extra_history), title),
        "source_partitions": dg.MetadataValue.json(sorted(sources)),
        "source_sha256": dg.MetadataValue.json(lineage["source_sha256"]),
        "git_commit": lineage["git_commit"],
        "samples": dg.MetadataValue.json(
            {"train": trained.n_train, "val": trained.n_val, "test": trained.n_test}
        ),
        "prepared_data": dg.MetadataValue.path(trained.prepared_dir),
        "prepared_data_reused": trained.prepared_reused,
        "device": trained.device,
    }


def _train_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    data_store: DataStore,
    *,
    asset: str,
    source_asset: str,
    source_file: str,
    train: Any,
    reproduce: Any,
    metric_keys: tuple[str, ...],
    title: str,
    extra_lineage: dict[str, Any] | None = None,
    **train_kwargs: Any,
) -> tuple[Any, dict[str, Any], list[dg.AssetCheckResult]]:
    """Train one model asset: sources, lineage, checkpoint under runs/<run_id>, checks (finite,
    reload reproduces metrics, beats naive), then current.json only when every blocking check
    passed, and metadata, the same for L2/L3/L4."""
    sources = source_files(context, data_store.root(), source_asset, source_file, config.partitions)
    lineage = lineage_record(context, sources, CODE_VERSION, config, extra_lineage)
    out = _model_dir(data_store, asset, context.run_id) / f"{asset[:2]}.pt"
    work = data_store.root() / ".train"
    files = list(sources.values())
    trained = train(
        files, out, work, _train_cfg(config), lineage=lineage, log=context.log.info, **train_kwargs
    )
    checks = _model_checks(asset, out, trained.metrics, reproduce(out, files, work), metric_keys)
    failed = blocking_failures(checks)
    if not failed:
        _publish_current(data_store, asset, out, trained.sha256)
    else:
        context.log.error(f"{asset}: {out} not published as current: blocking check(s) {failed} failed")
    md = {**_model_metadata(trained, sources, lineage, title), **publication_metadata(failed, str(out))}
    return trained, md, checks


def _result(trained: Any, md: dict[str, Any], checks: list[dg.AssetCheckResult]) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata=md, data_version=dg.DataVersion(trained.sha256[:16]), check_results=checks
    )


@dg.asset(
    deps=[dg.AssetDep(macro_samples, partition_mapping=ALL)],
    automation_condition=retrain_on_cron_when_new_data(),
    group_name="models",
    kinds={"pytorch"},
    code_version=CODE_VERSION,
    check_specs=_checks("l2_model"),
    description="L2 daily goal (16-d, bucketed) by behaviour cloning on macro samples of all (or chosen) partitions.",
)
def l2_model(
    context: dg.AssetExecutionContext, config: TrainingConfig, data_store: DataStore
) -> dg.MaterializeResult:
    from hrlxf_core.training.l2_train import reproduce_l2_metrics, train_l2

    trained, md, checks = _train_model(
        context, config, data_store, asset="l2_model", source_asset="macro_samples", source_file=MACRO_FILE,
        train=train_l2, reproduce=reproduce_l2_metrics, metric_keys=("mae", "mae_train_mean"),
        title="L2 behaviour cloning (Gaussian NLL + L1)",
    )  # fmt: skip
    md["mae_vs_train_mean"] = f"{trained.metrics['mae']:.4f} vs {trained.metrics['mae_train_mean']:.4f}"
    return _result(trained, md, checks)


@dg.asset(
    partitions_def=collection_runs,
    deps=[micro_samples, macro_samples, l2_model],
    automation_condition=follow_each_partition(),
    group_name="datasets",
    kinds={"pytorch", "parquet"},
    code_version=CODE_VERSION,
    check_specs=[
        dg.AssetCheckSpec(
            "goal_hat_valid",
            asset="micro_samples_goal_hat",
            blocking=True,
            description="micro schema, finite, one row per micro sample, every goal_hat dim finite and sane",
        )
    ],
    description="Micro samples of a partition with goal = the trained L2's goal_hat for the agent-day "
    "(predicted from its day-start state). Re-derived for every partition when L2 changes.",
)
def micro_samples_goal_hat(context: dg.AssetExecutionContext, data_store: DataStore) -> dg.MaterializeResult:
    from hrlxf_core.training.checkpoint import file_sha256
    from hrlxf_core.training.l2_train import backfill_goal_hat

    p = context.partition_key
    l2_path = current_checkpoint(data_store, "l2_model")
    micro = pl.read_parquet(data_store.asset_dir("micro_samples", p) / MICRO_FILE)
    macro = pl.read_parquet(data_store.asset_dir("macro_samples", p) / MACRO_FILE)
    df = backfill_goal_hat(l2_path, micro, macro)
    problems = check_goal_hat(df, micro)
    out = publish_frame(df, data_store.asset_dir("micro_samples_goal_hat", p) / GOAL_HAT_FILE, problems)
    goal = np.stack(df["goal"].to_numpy()) if df.height else np.zeros((0, 16))
    finite = goal[np.isfinite(goal).all(1)] if len(goal) else goal
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out)),
            **publication_metadata(["goal_hat_valid"] if problems else [], out),
            "rows": df.height,
            "l2_checkpoint": str(l2_path),
            "l2_sha256": file_sha256(l2_path),
            "goal_hat_mean": dg.MetadataValue.json([round(float(x), 4) for x in finite.mean(0)])
            if len(finite)
            else [],
        },
        check_results=[problems_check("micro_samples_goal_hat", "goal_hat_valid", problems)],
    )


@dg.asset(
    deps=[dg.AssetDep(micro_samples_goal_hat, partition_mapping=ALL)],
    automation_condition=follow_on_cron(),
    group_name="models",
    kinds={"pytorch"},
    code_version=CODE_VERSION,
    check_specs=_checks("l3_model"),
    description="L3 residual negotiator: decision transformer over the offer history, conditioned on goal_hat; "
    "behaviour cloning then advantage-weighted regression.",
)
def l3_model(
    context: dg.AssetExecutionContext, config: L3TrainingConfig, data_store: DataStore
) -> dg.MaterializeResult:
    from hrlxf_core.training.l3_train import reproduce_l3_metrics, train_l3

    l2_path = current_checkpoint(data_store, "l2_model")
    trained, md, checks = _train_model(
        context, config, data_store, asset="l3_model", source_asset="micro_samples_goal_hat",
        source_file=GOAL_HAT_FILE, train=train_l3, reproduce=reproduce_l3_metrics,
        metric_keys=("op_accuracy", "residual_mae_q", "residual_mae_p", "delta_accuracy"), title="L3 BC then AWR",
        extra_lineage={"l2_checkpoint": str(l2_path)}, awr_epochs=config.awr_epochs,
    )  # fmt: skip
    m = trained.metrics
    md["vs_naive"] = dg.MetadataValue.md(
        "| metric | L3 | naive |\n|---|---:|---:|\n"
        f"| op accuracy | {m['op_accuracy']:.3f} | {m['op_accuracy_majority']:.3f} (majority) |\n"
        f"| residual MAE q | {m.get('residual_mae_q', float('nan')):.3f} | {m.get('residual_mae_q_zero', float('nan')):.3f} (zero) |\n"
        f"| residual MAE p | {m.get('residual_mae_p', float('nan')):.4f} | {m.get('residual_mae_p_zero', float('nan')):.4f} (zero) |\n"
        f"| delivery δ accuracy | {m.get('delta_accuracy', float('nan')):.3f} | {m.get('delta_accuracy_baseline', float('nan')):.3f} (baseline δ) |"
    )
    return _result(trained, md, checks)


@dg.asset(
    partitions_def=collection_runs,
    deps=[tournament_logs, micro_samples_goal_hat],
    automation_condition=follow_each_partition(),
    group_name="datasets",
    kinds={"polars", "parquet"},
    code_version=CODE_VERSION,
    check_specs=[
        dg.AssetCheckSpec(
            "l4_valid",
            asset="l4_distill_set",
            blocking=True,
            description="schema, finite, α in [0, 1] summing to 1 per set, n_threads rows per set",
        )
    ],
    description="L4 distillation set of a partition: per round of an expert's day, the live threads' features, "
    "the global features and the heuristic teacher's α.",
)
def l4_distill_set(
    context: dg.AssetExecutionContext, config: DatasetConfig, data_store: DataStore
) -> dg.MaterializeResult:
    from hrlxf_core.datasets.l4_distill import build_l4_distill

    p = context.partition_key
    t0 = time.perf_counter()
    tables = load_partition(data_store.asset_dir("tournament_logs", p), config.experts)
    goal_hat = pl.read_parquet(data_store.asset_dir("micro_samples_goal_hat", p) / GOAL_HAT_FILE)
    df = build_l4_distill(tables, goal_hat)
    problems = check_l4(df)
    out = publish_frame(df, data_store.asset_dir("l4_distill_set", p) / L4_FILE, problems)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out)),
            **publication_metadata(["l4_valid"] if problems else [], out),
            "rows": df.height,
            "sets": df["set_id"].n_unique(),
            "mean_threads_per_set": float(df["n_threads"].mean()) if df.height else 0.0,
            "build_s": round(time.perf_counter() - t0, 3),
        },
        check_results=[problems_check("l4_distill_set", "l4_valid", problems)],
    )


@dg.asset(
    deps=[dg.AssetDep(l4_distill_set, partition_mapping=ALL)],
    automation_condition=follow_on_cron(),
    group_name="models",
    kinds={"pytorch"},
    code_version=CODE_VERSION,
    check_specs=_checks("l4_model"),
    description="L4 concurrency coordinator (attention over a variable number of threads → α) distilled from "
    "the heuristic teacher.",
)
def l4_model(
    context: dg.AssetExecutionContext, config: TrainingConfig, data_store: DataStore
) -> dg.MaterializeResult:
    from hrlxf_core.training.l4_train import reproduce_l4_metrics, train_l4

    return _result(*_train_model(
        context, config, data_store, asset="l4_model", source_asset="l4_distill_set", source_file=L4_FILE,
        train=train_l4, reproduce=reproduce_l4_metrics, metric_keys=("kl", "top1_agreement"),
        title="L4 distillation (KL to teacher)",
    ))  # fmt: skip
