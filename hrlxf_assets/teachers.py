"""``teacher_table``: how well each expert played, by production level, in the collected worlds.

Why an asset: which experts are worth imitating is a fact about the data, not a guess; this table
is what outcome-weighted BC (``TrainingConfig.teacher_weighting``) acts on, and a researcher
reads it in the UI next to the models trained from it. It is computed by the same function the
training uses (``hrlxf_core.datasets.outcomes``).
"""

import dagster as dg
import polars as pl
from pydantic import Field

from hrlxf_assets.automation import follow_on_cron
from hrlxf_assets.collect import tournament_logs
from hrlxf_assets.lineage import source_files
from hrlxf_assets.resources import DataStore
from hrlxf_core.datasets.outcomes import agent_world_scores, teacher_markdown, teacher_table
from hrlxf_core.io import write_parquet_atomic, write_text_atomic
from hrlxf_core.sim.roster import FILLER_AGENTS

CODE_VERSION = "teachers-v1"
TABLE_FILE = "teacher_table.parquet"
SCORES_FILE = "agent_world_scores.parquet"


class TeacherTableConfig(dg.Config):
    partitions: list[str] = Field(
        default=[], description="collection_runs partitions to pool; empty = every materialized one."
    )


@dg.asset(
    name="teacher_table",
    deps=[dg.AssetDep(tournament_logs, partition_mapping=dg.AllPartitionMapping())],
    automation_condition=follow_on_cron(),
    group_name="datasets",
    kinds={"polars", "parquet"},
    code_version=CODE_VERSION,
    description="Score (balance / initial balance) of every tracked expert by level in the collected worlds: "
    "n, mean ± 95% CI per level and the level-balanced mean. Outcome-weighted BC acts on it.",
)
def teacher_table_asset(
    context: dg.AssetExecutionContext, config: TeacherTableConfig, data_store: DataStore
) -> dg.MaterializeResult:
    sources = source_files(context, data_store.root(), "tournament_logs", "worlds.parquet", config.partitions)
    scores = pl.concat(
        [agent_world_scores(pl.read_parquet(f)) for f in sources.values()], how="vertical"
    ).filter(pl.col("tracked") & ~pl.col("expert").is_in(list(FILLER_AGENTS)))
    table = teacher_table(scores)
    out = data_store.asset_dir("teacher_table")
    write_parquet_atomic(scores, out / SCORES_FILE)
    write_parquet_atomic(table, out / TABLE_FILE)
    md = teacher_markdown(table) if table.height else "no tracked expert in the chosen partitions"
    write_text_atomic(md + "\n", out / "teacher_table.md")
    return dg.MaterializeResult(
        metadata={
            "teacher_table": dg.MetadataValue.md(md),
            "agent_worlds": scores.height,
            "worlds": scores["world_id"].n_unique(),
            "source_partitions": dg.MetadataValue.json(sorted(sources)),
            "path": dg.MetadataValue.path(str(out / TABLE_FILE)),
        }
    )
