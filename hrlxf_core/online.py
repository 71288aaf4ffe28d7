"""The online side of the observation: built from a live AWI and the agent's own offer ledger.

The agent (and the parity probe) call :func:`live_observation`; it feeds the very same
:class:`~hrlxf_core.state.Observation` constructor as the offline pipeline, through the very
same day-start record function, so the state and L1 quantities cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from hrlxf_core.l1_safety import Threads
from hrlxf_core.observation import day_start_record
from hrlxf_core.offer_table import TableOffer, offers_arrays
from hrlxf_core.state import Observation, observation_from_records

__all__ = ["TableOffer", "live_observation", "offers_arrays", "thread_from_nmi", "threads_from_nmis"]


def live_observation(awi: Any, initial_balance: float, offers: Iterable[TableOffer] = ()) -> Observation:
    """Observation of one agent now: the AWI's live commitments (which already include the
    day's agreements) plus the offers on the table."""
    return observation_from_records([day_start_record(awi, initial_balance)], offers_arrays(offers))


def thread_from_nmi(nmi: Any, my_id: str) -> Threads:
    """A one-thread batch from a negotiation's NMI (issue ranges and our role)."""
    return threads_from_nmis([nmi], my_id)


def threads_from_nmis(nmis: Sequence[Any], my_id: str) -> Threads:
    """The batch of threads of several negotiations, in order (issue ranges and our role)."""
    buyer, ranges = [], []
    for nmi in nmis:
        issues = {i.name: i for i in nmi.issues}
        q, t, p = issues["quantity"], issues["time"], issues["unit_price"]
        buyer.append((nmi.annotation or {}).get("buyer") == my_id)
        ranges.append((q.min_value, q.max_value, t.min_value, t.max_value, p.min_value, p.max_value))
    r = np.array(ranges, dtype=np.float64).reshape(len(ranges), 6).T.copy()  # one row per field
    return Threads(
        is_buyer=np.array(buyer, dtype=bool),
        q_min=r[0],
        q_max=r[1],
        t_min=r[2],
        t_max=r[3],
        p_min=r[4],
        p_max=r[5],
    )
