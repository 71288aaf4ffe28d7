"""Rows a dataset must skip: what a tracked expert recorded after its first caught exception.

Why: the world catches an agent's exception and goes on (anac2024_std with exceptions ignored),
but an agent whose ``before_step`` or negotiator raised plays the rest of the world from a broken
state; imitating it would teach the models its bug. The recorder flags such rows
(``after_exception``); the builders drop them here, in one place.
"""

from __future__ import annotations

import polars as pl

DAY_KEY = ["world_id", "agent_id", "day"]
DECISION_KEY = [*DAY_KEY, "seq"]


def tainted_days(day_states: pl.DataFrame, decisions: pl.DataFrame) -> pl.DataFrame:
    """Agent-days (``DAY_KEY``) whose day state or any decision was recorded after an exception:
    a macro label sums the whole day, so one flagged decision taints the day."""
    a = day_states.filter(pl.col("after_exception")).select(DAY_KEY)
    b = decisions.filter(pl.col("after_exception")).select(DAY_KEY)
    return pl.concat([a, b]).unique()


def drop_tainted_days(
    samples: pl.DataFrame, day_states: pl.DataFrame, decisions: pl.DataFrame
) -> pl.DataFrame:
    """``samples`` (one row per agent-day) without the tainted agent-days, order kept."""
    return samples.join(tainted_days(day_states, decisions), on=DAY_KEY, how="anti", maintain_order="left")


def drop_flagged_decisions(samples: pl.DataFrame, decisions: pl.DataFrame) -> pl.DataFrame:
    """``samples`` (one row per decision) without the decisions made after an exception."""
    flagged = decisions.filter(pl.col("after_exception")).select(DECISION_KEY)
    return samples.join(flagged, on=DECISION_KEY, how="anti", maintain_order="left")
