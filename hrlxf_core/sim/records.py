"""Schemas of the five ``tournament_logs`` tables and the conversion of recorder rows to frames.

Every table has a fixed polars schema so that an empty world, a failed world and a full world
concatenate without dtype surprises, and so readers can name the exact field that is wrong.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from hrlxf_core.observation import DAY_STATE_PRODUCT_VECTORS, DAY_STATE_SCALARS, DAY_STATE_VECTORS

TABLES: tuple[str, ...] = ("worlds", "day_states", "negotiations", "decisions", "contracts")
#: Tables a world writes only when it has something to put in them (evaluation runs).
OPTIONAL_TABLES: tuple[str, ...] = ("agent_stats",)

_KEY = {"world_id": pl.String, "agent_id": pl.String, "agent_type": pl.String}
_OFFER = lambda p: {f"{p}_q": pl.Int64, f"{p}_t": pl.Int64, f"{p}_p": pl.Float64}  # noqa: E731

SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "worlds": {
        "world_id": pl.String,
        "run_id": pl.String,
        "world_index": pl.Int64,
        "seed": pl.Int64,
        "status": pl.String,  # ok / failed / timed_out
        "error": pl.String,
        "wall_time_s": pl.Float64,
        "n_steps": pl.Int64,
        "n_processes": pl.Int64,
        "n_agents": pl.Int64,
        "agent_ids": pl.List(pl.String),
        "agent_types": pl.List(pl.String),
        "agent_levels": pl.List(pl.Int64),
        # factory slot of each agent id in the spec (agent_paths/agent_labels index), recorded
        # when the world was built, never parsed from the id
        "agent_slots": pl.List(pl.Int64),
        "tracked": pl.List(pl.Boolean),
        "initial_balances": pl.List(pl.Float64),
        "final_balances": pl.List(pl.Float64),
        "scores": pl.List(pl.Float64),
        "n_contracts": pl.Int64,
        "recorder_errors": pl.Int64,
        "recorder_error": pl.String,
        # exceptions the world caught and went on (anac2024_std with exceptions ignored): per
        # agent id (its callbacks and its negotiators), the first one's day and message, and
        # those of the simulation itself (simulation, contract execution, mechanism)
        "agent_exceptions": pl.List(pl.Int64),
        "agent_first_exception": pl.List(pl.String),
        "world_exceptions": pl.Int64,
        "spec_json": pl.String,
        "scml_version": pl.String,
        "negmas_version": pl.String,
        "scml_agents_version": pl.String,
        "hrlxf_version": pl.String,
        "record_schema_version": pl.Int64,
    },
    "day_states": {
        **_KEY,
        **{k: getattr(pl, v) for k, v in DAY_STATE_SCALARS.items()},
        **{k: pl.List(pl.Float64) for k in DAY_STATE_VECTORS},
        **{k: pl.List(pl.Float64) for k in DAY_STATE_PRODUCT_VECTORS},
        "after_exception": pl.Boolean,  # recorded after the agent's first caught exception
    },
    "negotiations": {
        **_KEY,
        "negotiation_id": pl.String,
        "day": pl.Int32,
        "partner_id": pl.String,
        "is_buyer": pl.Boolean,
        "product": pl.Int32,
        "q_min": pl.Int64,
        "q_max": pl.Int64,
        "t_min": pl.Int64,
        "t_max": pl.Int64,
        "p_min": pl.Float64,
        "p_max": pl.Float64,
        "status": pl.String,  # agreement / failed / running (world ended mid-negotiation)
        "agreement_q": pl.Int64,
        "agreement_t": pl.Int64,
        "agreement_p": pl.Float64,
        "rounds": pl.Int64,
        "contract_id": pl.String,
        "ended_seq": pl.Int64,  # decisions of the day made before the negotiation ended
    },
    "decisions": {
        **_KEY,
        "day": pl.Int32,
        "seq": pl.Int64,
        "negotiation_id": pl.String,
        "partner_id": pl.String,
        "is_buyer": pl.Boolean,
        "round": pl.Int64,
        "relative_time": pl.Float64,
        "n_agreements_before": pl.Int64,
        **_OFFER("recv"),
        "action": pl.String,  # ACCEPT / REJECT / END / PROPOSE
        **_OFFER("sent"),
        "after_exception": pl.Boolean,  # made after the agent's first caught exception
    },
    "contracts": {
        **_KEY,
        "day": pl.Int32,
        "contract_id": pl.String,
        "negotiation_id": pl.String,
        "partner_id": pl.String,
        "is_buyer": pl.Boolean,
        "quantity": pl.Int64,
        "delivery_day": pl.Int64,
        "unit_price": pl.Float64,
        "agreement_seq": pl.Int64,
        "decisions_before": pl.Int64,
        "signed_at": pl.Int64,
        "executed_at": pl.Int64,
        "nullified_at": pl.Int64,
    },
}


SCHEMAS["agent_stats"] = {
    "world_id": pl.String,
    "agent_id": pl.String,
    "agent_type": pl.String,
    "label": pl.String,
    "stats_json": pl.String,  # the agent's own counters (LitaAgentHRL.hrlxf_stats())
}


def empty_frame(table: str) -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMAS[table])


def frame(table: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows (dicts) to a frame with the table's exact schema and column order."""
    schema = SCHEMAS[table]
    if not rows:
        return empty_frame(table)
    return pl.DataFrame(rows, schema=schema, orient="row", strict=False).select(list(schema))


#: Record schema versions this code can read: v2 tables (the shared datasets, partitions
#: collected before v3) are read with the columns v3 added filled by ``V3_DEFAULTS``.
READABLE_RECORD_VERSIONS: tuple[int, ...] = (2, 3)
#: Columns added in record schema v3 and the value a v2 table is read with: no exception was
#: recorded (v2 did not count them), and no recorded slot (v2 consumers never needed one).
V3_DEFAULTS: dict[str, dict[str, Any]] = {
    "worlds": {
        "agent_slots": None,
        "agent_exceptions": None,
        "agent_first_exception": None,
        "world_exceptions": None,
    },
    "day_states": {"after_exception": False},
    "decisions": {"after_exception": False},
}


def upgrade_to_current(table: str, df: pl.DataFrame) -> pl.DataFrame:
    """A table read from disk with the columns of the current schema that an older (readable)
    version lacks added with their stated defaults; tables already current are returned as is."""
    missing = {c: v for c, v in V3_DEFAULTS.get(table, {}).items() if c not in df.columns}
    if not missing:
        return df
    schema = SCHEMAS[table]
    return df.with_columns([pl.lit(v, dtype=schema[c]).alias(c) for c, v in missing.items()])
