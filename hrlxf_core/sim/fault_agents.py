"""Fault-injection agents that check the collection runner's failure isolation.

They are real std agents (GreedyStdAgent underneath) that misbehave on a chosen day: one never
returns from ``before_step`` (a hang the runner must time out and kill), one raises (a crash the
runner must record with its error). Use them by full class path in a roster, e.g.
``hrlxf_core.sim.fault_agents.HangingAgent``; they live in the library so worker processes can
import them like any other agent.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import polars as pl
from scml.std import GreedyStdAgent

FAULT_DAY = 2
HANGING = f"{__name__}.HangingAgent"
RAISING = f"{__name__}.RaisingAgent"


class HangingAgent(GreedyStdAgent):
    """Blocks forever on day ``FAULT_DAY``, like an expert stuck in an endless loop."""

    def before_step(self) -> None:
        if self.awi.current_step >= FAULT_DAY:
            while True:
                time.sleep(1.0)
        super().before_step()


class RaisingAgent(GreedyStdAgent):
    """Raises on day ``FAULT_DAY``, like an expert with a bug."""

    def before_step(self) -> None:
        if self.awi.current_step >= FAULT_DAY:
            raise RuntimeError("RaisingAgent: injected failure")
        super().before_step()


def fault_status_mismatches(worlds: pl.DataFrame, roster: Iterable[str]) -> list[str]:
    """Worlds of a ``worlds`` table whose status is not what their fault agents cause: with a
    HangingAgent, ``timed_out`` with an error naming the wall-clock limit; with a RaisingAgent,
    ``failed`` with the injected error; otherwise ``ok`` without error. Every backend of the
    runner must give the same statuses, so its tests share this one statement of them."""
    roster = set(roster)
    bad: list[str] = []
    for row in worlds.iter_rows(named=True):
        comps = set(row["agent_types"]) & roster
        status, error = row["status"], row["error"]
        if HANGING in comps:
            ok = status == "timed_out" and "wall-clock limit" in error
        elif RAISING in comps:
            ok = status == "failed" and "RaisingAgent: injected failure" in error
        else:
            ok = status == "ok" and error == ""
        if not ok:
            bad.append(f"{row['world_id']}: status {status!r}, error {error[:200]!r}, agents {sorted(comps)}")
    return bad
