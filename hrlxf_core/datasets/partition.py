"""Reading one ``tournament_logs`` partition, checked, for the dataset builders.

A missing column, a truncated file or an impossible value stops the build with an error that
names the file and the field (``DataFileError``); nothing downstream is written in that case.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from hrlxf_core.io import DataFileError, read_parquet_checked
from hrlxf_core.observation import DAY_STATE_SCALARS, DAY_STATE_VECTORS
from hrlxf_core.sim.records import SCHEMAS, TABLES, V3_DEFAULTS, upgrade_to_current
from hrlxf_core.sim.roster import DEFAULT_EXPERTS, resolve_roster
from hrlxf_core.sim.tracked import ACTIONS


@dataclass
class PartitionTables:
    """The tracker tables of one partition, restricted to ok worlds and the chosen experts."""

    path: Path
    worlds: pl.DataFrame
    day_states: pl.DataFrame
    negotiations: pl.DataFrame
    decisions: pl.DataFrame
    contracts: pl.DataFrame


def _check(path: Path, df: pl.DataFrame, field: str, bad: pl.Expr, what: str) -> None:
    n = df.select(bad.sum()).item()
    if n:
        row = df.filter(bad).head(1).to_dicts()[0]
        ctx = {k: row[k] for k in ("world_id", "agent_id", "day") if k in row}
        raise DataFileError(
            path, f"{n} row(s) with an impossible value: {what}; first: {ctx} {field}={row[field]!r}", field
        )


#: Columns a record can never leave empty (a null there is a broken writer or an edited file).
REQUIRED: dict[str, tuple[str, ...]] = {
    "worlds": ("world_id", "status"),
    "day_states": ("world_id", "agent_id", "agent_type", "day", *DAY_STATE_SCALARS),
    "negotiations": ("world_id", "agent_id", "agent_type", "negotiation_id", "day", "is_buyer"),
    "decisions": ("world_id", "agent_id", "agent_type", "day", "seq", "negotiation_id", "round", "action"),
    "contracts": ("world_id", "agent_id", "agent_type", "day", "quantity", "delivery_day", "unit_price"),
}
WORLD_STATUSES = ("ok", "failed", "timed_out")


def _unique(path: Path, df: pl.DataFrame, key: list[str], what: str) -> None:
    dup = df.select(key).is_duplicated()
    if dup.any():
        row = df.filter(dup).head(1).select(key).to_dicts()[0]
        raise DataFileError(path, f"{int(dup.sum())} row(s) share {what}; first: {row}", key[-1])


def _validate(path: Path, table: str, df: pl.DataFrame) -> None:
    c = pl.col
    for f in REQUIRED[table]:
        if f in df.columns:
            _check(path, df, f, c(f).is_null(), "missing value in a required column")
    if table == "worlds":
        _check(
            path, df, "status", ~c("status").is_in(list(WORLD_STATUSES)), f"status not in {WORLD_STATUSES}"
        )
        _unique(path, df, ["world_id"], "a world_id (one row per world)")
    if table == "day_states":
        for f, dtype in DAY_STATE_SCALARS.items():
            if dtype == "Float64":
                _check(path, df, f, c(f).is_nan() | c(f).is_infinite(), "NaN/inf in a day-state field")
        for f in DAY_STATE_VECTORS:
            bad = c(f).list.eval(pl.element().is_nan() | pl.element().is_infinite()).list.any()
            _check(path, df, f, bad.fill_null(False), "NaN/inf in a day-state vector")
        _unique(path, df, ["world_id", "agent_id", "day"], "an agent-day (one day-start state each)")
        _check(path, df, "day", (c("day") < 0) | (c("day") >= c("n_steps")), "day outside [0, n_steps)")
        _check(path, df, "n_lines", c("n_lines") <= 0, "n_lines must be > 0")
        _check(path, df, "initial_balance", c("initial_balance") <= 0, "initial balance must be > 0")
        for f in ("inventory_input", "inventory_output"):
            _check(path, df, f, c(f) < 0, "negative inventory")
        for f in ("supplies_by_offset", "sales_by_offset", "payables_by_offset", "receivables_by_offset"):
            _check(path, df, f, c(f).list.len() != 41, "commitment vector must have 41 offsets")
            _check(path, df, f, c(f).list.min() < 0, "negative commitment")
        for f in ("trading_price_input", "trading_price_output"):
            _check(path, df, f, ~(c(f) > 0) | c(f).is_infinite(), "price must be finite and > 0")
    elif table == "decisions":
        _check(path, df, "action", ~c("action").is_in(list(ACTIONS)), f"action not in {ACTIONS}")
        _check(path, df, "sent_q", c("sent_q") <= 0, "offered quantity must be > 0")
        _check(path, df, "recv_q", c("recv_q") <= 0, "received quantity must be > 0")
        _check(
            path,
            df,
            "relative_time",
            (c("relative_time") < 0) | (c("relative_time") > 1.0 + 1e-9),
            "relative time outside [0, 1]",
        )
        _check(path, df, "seq", c("seq") < 0, "negative sequence number")
        _check(path, df, "round", c("round") < 0, "negative round")
        for f in ("recv_p", "sent_p"):
            _check(path, df, f, (c(f).is_nan() | c(f).is_infinite()).fill_null(False), "NaN/inf price")
        _unique(path, df, ["world_id", "agent_id", "day", "seq"], "a sequence number of an agent-day")
        n = pl.len().over(["world_id", "agent_id", "day"])
        _check(path, df, "seq", c("seq") >= n, "seq must number an agent-day's decisions 0..n-1")
        # in seq order, a thread's rounds never go back: seq gives the order the decisions were made
        back = (
            c("round").diff().over(["world_id", "agent_id", "negotiation_id"], order_by="seq").fill_null(0)
            < 0
        )
        _check(path, df, "seq", back, "out of order: a negotiation's round decreases as seq increases")
    elif table == "contracts":
        _check(path, df, "quantity", c("quantity") <= 0, "contract quantity must be > 0")
        _check(path, df, "delivery_day", c("delivery_day") < c("day"), "delivery before the contract's day")
        _check(
            path,
            df,
            "unit_price",
            ~(c("unit_price") > 0) | c("unit_price").is_infinite(),
            "unit price must be finite and > 0",
        )
    elif table == "negotiations":
        _check(path, df, "q_max", c("q_max") < c("q_min"), "q_max < q_min")
        _check(path, df, "t_max", c("t_max") < c("t_min"), "t_max < t_min")
        _check(path, df, "p_max", c("p_max") < c("p_min"), "p_max < p_min")
        _check(path, df, "q_min", c("q_min") < 0, "negative quantity bound")
        _unique(path, df, ["world_id", "agent_id", "negotiation_id"], "a negotiation of an agent")


def _unknown(path: Path, df: pl.DataFrame, ref: pl.DataFrame, key: list[str], what: str) -> None:
    """Rows of ``df`` whose ``key`` is not in ``ref`` (a record naming something never recorded)."""
    missing = df.select(key).unique().join(ref.select(key).unique(), on=key, how="anti")
    if missing.height:
        row = missing.head(1).to_dicts()[0]
        raise DataFileError(path, f"{missing.height} {what}; first: {row}", key[-1])


def _validate_links(path: Path, frames: dict[str, pl.DataFrame]) -> None:
    """Cross-table links: every record names a world, an agent-day and a negotiation that exist."""
    worlds = frames["worlds"]
    for table in ("day_states", "negotiations", "decisions", "contracts"):
        _unknown(
            path / f"{table}.parquet",
            frames[table],
            worlds,
            ["world_id"],
            "world id(s) not in worlds.parquet",
        )
    neg_key = ["world_id", "agent_id", "negotiation_id"]
    _unknown(
        path / "decisions.parquet", frames["decisions"], frames["negotiations"], neg_key,
        "decision(s) naming a negotiation not in negotiations.parquet",
    )  # fmt: skip
    _unknown(
        path / "decisions.parquet", frames["decisions"], frames["day_states"], ["world_id", "agent_id", "day"],
        "decision(s) on an agent-day without a day-start state in day_states.parquet",
    )  # fmt: skip


def expert_paths(experts: list[str] | tuple[str, ...] | None) -> list[str]:
    """Exact class paths of the experts whose rows feed the datasets (default: DEFAULT_EXPERTS)."""
    return [a.class_path for a in resolve_roster(list(experts or DEFAULT_EXPERTS))]


def load_partition(path: Path, experts: list[str] | tuple[str, ...] | None = None) -> PartitionTables:
    """Load and check the five tables of ``path``; keep ok worlds and the chosen experts' rows."""
    keep = expert_paths(experts)
    frames = {}
    for table in TABLES:
        schema = SCHEMAS[table]
        f = path / f"{table}.parquet"
        df = read_parquet_checked(f, schema, optional=set(V3_DEFAULTS.get(table, {})))
        df = upgrade_to_current(table, df)  # v2 records (the shared datasets) read as v3
        _validate(f, table, df)
        frames[table] = df
    _validate_links(path, frames)
    ok = frames["worlds"].filter(pl.col("status") == "ok")["world_id"]
    for table in ("day_states", "negotiations", "decisions", "contracts"):
        frames[table] = frames[table].filter(pl.col("world_id").is_in(ok) & pl.col("agent_type").is_in(keep))
    return PartitionTables(path=path, **frames)
