"""Which agent raised: exceptions a world caught, attributed to the agent object that raised them.

Why a ledger of our own: with the anac2024_std exception flags on (``world_run.EXCEPTION_POLICY``)
a negmas 0.16 world goes on after an agent's exception, but it attributes only the exceptions of
callbacks it calls itself (``World.call``). An exception inside a negotiator (an agent's
``propose``/``respond``, e.g. PriceTrendStdAgent's ``first_proposals`` bug) aborts that
negotiation as "Uncaught Exception" with no agent named: the mechanism drops its per-negotiator
record when it raises. Both kinds are announced as an ``entity-exception`` event carrying the
exception, so the ledger listens to that event and walks the exception's traceback to the
deepest frame whose ``self`` is one of the world's agents: identity, never a name.

Not announced, hence not seen here: an exception in ``before_step``, which scml calls outside its
accounting and files under the world's simulation exceptions (the recorder of a tracked agent
notes those itself).
"""

from __future__ import annotations

import traceback
from typing import Any

from negmas.events import Event, EventSink

EVENT = "entity-exception"


class AgentFaultLedger(EventSink):
    """Per agent id: (day, 'Type: message') of every exception the world caught from it."""

    def __init__(self, world: Any) -> None:
        self._world = world
        self._owner: dict[int, str] = {}
        for aid, adapter in world.agents.items():
            self._owner[id(adapter)] = aid
            obj = getattr(adapter, "_obj", None)
            if obj is not None:
                self._owner[id(obj)] = aid
        self.faults: dict[str, list[tuple[int, str]]] = {}
        self.unattributed: int = 0
        world.register_listener(EVENT, self)

    def on_event(self, event: Event, sender: Any) -> None:
        exc = (event.data or {}).get("exception")
        if not isinstance(exc, BaseException):
            return
        aid = self._culprit(exc)
        if aid is None:
            self.unattributed += 1
            return
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        self.faults.setdefault(aid, []).append((int(self._world.current_step), text))

    def _culprit(self, exc: BaseException) -> str | None:
        found = None
        tb = exc.__traceback__
        while tb is not None:
            owner = self._owner.get(id(tb.tb_frame.f_locals.get("self")))
            if owner is not None:
                found = owner
            tb = tb.tb_next
        return found
