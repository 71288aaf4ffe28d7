"""Fault-injection agents that check the collection runner's failure isolation.

They are real std agents (GreedyStdAgent underneath) that misbehave: one never returns from
``before_step`` on a chosen day (a hang the runner must time out and kill); one raises there (an
agent bug: the world catches it, counts it against that agent and goes on, as anac2024_std with
exceptions ignored does); one raises in its constructor (the world cannot even be built: the
runner must record it as failed, with the error). Use them by full class path in a roster, e.g.
``hrlxf_core.sim.fault_agents.HangingAgent``; they live in the library so worker processes can
import them like any other agent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

import polars as pl
from scml.std import GreedyStdAgent

FAULT_DAY = 2
HANGING = f"{__name__}.HangingAgent"
RAISING = f"{__name__}.RaisingAgent"
CRASHING = f"{__name__}.CrashingAgent"
PROPOSE_RAISING = f"{__name__}.ProposeRaisingAgent"
SLOW = f"{__name__}.SlowAgent"
#: Seconds SlowAgent sleeps in each ``propose`` (read at every call; default 0).
SLOW_DELAY_ENV = "HRLXF_SLOW_AGENT_DELAY_S"


class HangingAgent(GreedyStdAgent):
    """Blocks forever on day ``FAULT_DAY``, like an expert stuck in an endless loop."""

    def before_step(self) -> None:
        if self.awi.current_step >= FAULT_DAY:
            while True:
                time.sleep(1.0)
        super().before_step()


class RaisingAgent(GreedyStdAgent):
    """Raises on every day from ``FAULT_DAY`` on, like an expert with a bug."""

    def before_step(self) -> None:
        if self.awi.current_step >= FAULT_DAY:
            raise RuntimeError("RaisingAgent: injected failure")
        super().before_step()


class ProposeRaisingAgent(GreedyStdAgent):
    """Raises inside ``propose`` from day ``FAULT_DAY`` on, like PriceTrendStdAgent's bug (numpy
    ``choice`` on an empty range in its own ``first_proposals``): a negotiator exception, which
    aborts that negotiation only."""

    def propose(self, negotiator_id: str, state: Any, source: str | None = None) -> Any:
        if self.awi.current_step >= FAULT_DAY:
            raise ValueError("ProposeRaisingAgent: injected failure")
        return super().propose(negotiator_id, state, source)


class SlowAgent(GreedyStdAgent):
    """GreedyStdAgent that sleeps ``$HRLXF_SLOW_AGENT_DELAY_S`` seconds in each ``propose``: the
    same decisions, on a slower clock (the determinism test runs a world fast, then slow)."""

    def propose(self, negotiator_id: str, state: Any, source: str | None = None) -> Any:
        delay = float(os.environ.get(SLOW_DELAY_ENV, "0") or 0)
        if delay > 0:
            time.sleep(delay)
        return super().propose(negotiator_id, state, source)


class CrashingAgent(GreedyStdAgent):
    """Raises in its constructor: the world that holds it cannot be built."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("CrashingAgent: injected failure")


def fault_status_mismatches(worlds: pl.DataFrame, roster: Iterable[str]) -> list[str]:
    """Worlds of a ``worlds`` table whose status is not what their fault agents cause: with a
    HangingAgent, ``timed_out`` with an error naming the wall-clock limit; with a CrashingAgent,
    ``failed`` with the injected error; otherwise ``ok`` without error, and with a RaisingAgent
    the injected error counted against that agent (and no other). Every backend of the runner
    must give the same statuses, so its tests share this one statement of them."""
    roster = set(roster)
    bad: list[str] = []
    for row in worlds.iter_rows(named=True):
        comps = set(row["agent_types"]) & roster
        status, error = row["status"], row["error"]
        if HANGING in comps:
            ok = status == "timed_out" and "wall-clock limit" in error
        elif CRASHING in comps:
            ok = status == "failed" and "CrashingAgent: injected failure" in error
        else:
            ok = status == "ok" and error == ""
            for typ, n, first in zip(
                row["agent_types"],
                row["agent_exceptions"] or (),
                row["agent_first_exception"] or (),
                strict=False,
            ):
                if typ in (RAISING, PROPOSE_RAISING):
                    ok = ok and n >= 1 and f"{typ.rpartition('.')[2]}: injected failure" in first
                else:
                    ok = ok and n == 0
        if not ok:
            bad.append(f"{row['world_id']}: status {status!r}, error {error[:200]!r}, agents {sorted(comps)}")
    return bad
