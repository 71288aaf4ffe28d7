"""Fault-injection agents that check the collection runner's failure isolation.

They are real std agents (GreedyStdAgent underneath) that misbehave on a chosen day: one never
returns from ``before_step`` (a hang the runner must time out and kill), one raises (a crash the
runner must record with its error). Use them by full class path in a roster, e.g.
``hrlxf_core.sim.fault_agents.HangingAgent``; they live in the library so worker processes can
import them like any other agent.
"""

from __future__ import annotations

import time

from scml.std import GreedyStdAgent

FAULT_DAY = 2


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
