"""The online side of the observation: built from a live AWI and the agent's own offer ledger.

The agent (and the parity probe) call :func:`live_observation`; it feeds the very same
:class:`~hrlxf_core.state.Observation` constructor as the offline pipeline, through the very
same day-start record function, so the state and L1 quantities cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from hrlxf_core.l1_safety import Threads
from hrlxf_core.observation import day_start_record
from hrlxf_core.offer_table import TableOffer, offers_arrays
from hrlxf_core.state import Observation, observation_from_records

__all__ = ["TableOffer", "live_observation", "offers_arrays", "thread_from_nmi"]


def live_observation(awi: Any, initial_balance: float, offers: Iterable[TableOffer] = ()) -> Observation:
    """Observation of one agent now: the AWI's live commitments (which already include the
    day's agreements) plus the offers on the table."""
    return observation_from_records([day_start_record(awi, initial_balance)], offers_arrays(offers))


def thread_from_nmi(nmi: Any, my_id: str) -> Threads:
    """A one-thread batch from a negotiation's NMI (issue ranges and our role)."""
    issues = {i.name: i for i in nmi.issues}
    q, t, p = issues["quantity"], issues["time"], issues["unit_price"]
    ann = nmi.annotation or {}
    return Threads(
        is_buyer=np.array([ann.get("buyer") == my_id]),
        q_min=np.array([float(q.min_value)]),
        q_max=np.array([float(q.max_value)]),
        t_min=np.array([float(t.min_value)]),
        t_max=np.array([float(t.max_value)]),
        p_min=np.array([float(p.min_value)]),
        p_max=np.array([float(p.max_value)]),
    )
