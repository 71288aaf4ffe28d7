"""``macro_samples`` and ``micro_samples``: leak-free L2 / L3 training samples per collection run."""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from hrlxf_assets.automation import follow_each_partition
from hrlxf_assets.collect import tournament_logs
from hrlxf_assets.partitions import collection_runs
from hrlxf_assets.publish import problems_check, publication_metadata, publish_frame
from hrlxf_assets.resources import DataStore
from hrlxf_assets.versioning import files_sha256
from hrlxf_core.datasets.checks import check_macro, check_micro
from hrlxf_core.datasets.expert_clip import clip_rate_markdown, clip_rate_table
from hrlxf_core.datasets.macro import build_macro
from hrlxf_core.datasets.micro import build_micro
from hrlxf_core.datasets.partition import PartitionTables, expert_paths, load_partition
from hrlxf_core.l3_contract import OP_NAMES
from hrlxf_core.labels import BUCKET_EDGES, GOAL_NAMES
from hrlxf_core.sim.roster import DEFAULT_EXPERTS
from hrlxf_core.training.plots import macro_summary_png, micro_summary_png

CODE_VERSION = "datasets-v4"
MACRO_FILE = "macro.parquet"
MICRO_FILE = "micro.parquet"
#: Target of the expert clip rate, per level × role (docs/design.md §6.2).
CLIP_RATE_TARGET = 0.10


class DatasetConfig(dg.Config):
    """Which experts' decisions become training samples."""

    experts: list[str] = Field(
        default=list(DEFAULT_EXPERTS),
        description="Roster names or full class paths of the experts whose rows feed the dataset "
        "(matched exactly by class path). Default: PenguinAgent and the 2025 finalists.",
    )


def _summary_png(fn, *arrays) -> dg.MetadataValue:
    from hrlxf_assets.lineage import png_markdown

    if not len(arrays[0]):
        return dg.MetadataValue.md("no rows")
    return png_markdown(fn(*arrays), "labels")


def _per_type(df: pl.DataFrame) -> dict[str, int]:
    return {r[0]: int(r[1]) for r in df.group_by("agent_type").len().sort("agent_type").iter_rows()}


def _build_partition_dataset(
    context: dg.AssetExecutionContext,
    config: DatasetConfig,
    data_store: DataStore,
    asset: str,
    filename: str,
    build: Callable[[PartitionTables], pl.DataFrame],
    check: Callable[[pl.DataFrame, PartitionTables], list[str]],
) -> tuple[pl.DataFrame, PartitionTables, Path, list[str], dict[str, Any]]:
    """Load the partition's logs, build one dataset, run its blocking check, then publish: the
    canonical file is written only when the check found no problem (else the rejected build goes
    to ``<name>.rejected.parquet`` and a previous valid file stays). Returns the frame, the
    tables, the file written, the problems and the metadata every dataset asset records."""
    partition = context.partition_key
    t0 = time.perf_counter()
    tables = load_partition(data_store.asset_dir("tournament_logs", partition), config.experts)
    df = build(tables)
    problems = check(df, tables)
    out = publish_frame(df, data_store.asset_dir(asset, partition) / filename, problems)
    if problems:
        context.log.error(f"{asset}[{partition}]: not published, {len(problems)} problem(s); kept at {out}")
    metadata = {
        "path": dg.MetadataValue.path(str(out)),
        "rows": df.height,
        "rows_per_agent_type": dg.MetadataValue.json(_per_type(df)),
        "experts": dg.MetadataValue.json(expert_paths(config.experts)),
        "build_s": round(time.perf_counter() - t0, 3),
        **publication_metadata([f"{asset}_valid"] if problems else [], out),
    }
    return df, tables, out, problems, metadata


@dg.asset(
    partitions_def=collection_runs,
    deps=[tournament_logs],
    group_name="datasets",
    kinds={"polars", "parquet"},
    code_version=CODE_VERSION,
    automation_condition=follow_each_partition(),
    check_specs=[
        dg.AssetCheckSpec(
            "macro_valid",
            asset="macro_samples",
            blocking=True,
            description="schema, no NaN/inf, label ranges, day-start leakage guard",
        )
    ],
    description="L2 samples, one per tracked expert agent-day: x_static (12), X_temporal (41×10), "
    "x_role (2) from the day-start snapshot; label = v2 goal (16 = 4 buckets × [Q_buy, P_buy, Q_sell, P_sell]).",
)
def macro_samples(
    context: dg.AssetExecutionContext, config: DatasetConfig, data_store: DataStore
) -> dg.MaterializeResult:
    df, _, out, problems, metadata = _build_partition_dataset(
        context, config, data_store, "macro_samples", MACRO_FILE, build_macro,
        lambda df, tables: check_macro(df, tables.day_states),
    )  # fmt: skip
    goal = np.stack(df["goal"].to_numpy()) if df.height else np.zeros((0, len(GOAL_NAMES)))
    stats = "| label | mean | max |\n|---|---:|---:|\n" + "\n".join(
        f"| {n} | {goal[:, i].mean():.3f} | {goal[:, i].max():.3f} |"
        for i, n in enumerate(GOAL_NAMES)
        if len(goal)
    )
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "bucket_edges": dg.MetadataValue.json([list(e) for e in BUCKET_EDGES]),
            "label_summary": dg.MetadataValue.md(stats),
            "label_plot": _summary_png(
                macro_summary_png, goal, np.stack(df["goal_mask"].to_numpy()) if df.height else goal
            ),
        },
        data_version=dg.DataVersion(files_sha256([out])[:16]),
        check_results=[problems_check("macro_samples", "macro_valid", problems)],
    )


@dg.asset(
    partitions_def=collection_runs,
    deps=[tournament_logs],
    group_name="datasets",
    kinds={"polars", "parquet"},
    code_version=CODE_VERSION,
    automation_condition=follow_each_partition(),
    check_specs=[
        dg.AssetCheckSpec(
            "micro_valid",
            asset="micro_samples",
            blocking=True,
            description="schema, no NaN/inf, label ranges, own counter-offer never in its input",
        ),
        dg.AssetCheckSpec(
            "expert_clip_rate",
            asset="micro_samples",
            blocking=False,
            description=f"L1 changes or forbids at most {CLIP_RATE_TARGET:.0%} of the experts' actions "
            "at every level × role (warning: an imitator behind L1 cannot do what L1 forbids)",
        ),
    ],
    description="L3 samples, one per decision point of a tracked expert: offer history strictly before the "
    "answer, state after the day's earlier agreements, L1 baseline/limits/time mask, op label, "
    "residual = expert counter-offer − baseline, delivery offset label.",
)
def micro_samples(
    context: dg.AssetExecutionContext, config: DatasetConfig, data_store: DataStore
) -> dg.MaterializeResult:
    df, _, out, problems, metadata = _build_partition_dataset(
        context, config, data_store, "micro_samples", MICRO_FILE, build_micro,
        lambda df, _tables: check_micro(df),
    )  # fmt: skip
    clip = clip_rate_table(df)
    over = clip.filter((pl.col("kind") == "all") & (pl.col("clip_rate") > CLIP_RATE_TARGET))
    clip_check = dg.AssetCheckResult(
        check_name="expert_clip_rate",
        asset_key="micro_samples",
        passed=over.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "over_target": dg.MetadataValue.md(
                "\n".join(
                    f"- {r['level']} {r['role']}: {100 * r['clip_rate']:.1f} %"
                    for r in over.iter_rows(named=True)
                )
                or "none"
            ),
            "max_clip_rate": float(clip.filter(pl.col("kind") == "all")["clip_rate"].max() or 0.0),
        },
    )
    ops = {OP_NAMES[int(k)]: int(v) for k, v in df.group_by("op_label").len().sort("op_label").iter_rows()}
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "op_labels": dg.MetadataValue.json(ops),
            "expert_clip_rate": dg.MetadataValue.md(clip_rate_markdown(clip)),
            "expert_clip_rate_by_level_role": dg.MetadataValue.json(
                {
                    f"{r['level']}/{r['role']}": round(r["clip_rate"], 4)
                    for r in clip.filter(pl.col("kind") == "all").iter_rows(named=True)
                }
            ),
            "label_plot": _summary_png(
                micro_summary_png,
                df["op_label"].to_numpy(),
                df["res_q"].to_numpy(),
                df["res_p"].to_numpy(),
                df["has_counter"].to_numpy(),
            ),
        },
        data_version=dg.DataVersion(files_sha256([out])[:16]),
        check_results=[problems_check("micro_samples", "micro_valid", problems), clip_check],
    )
