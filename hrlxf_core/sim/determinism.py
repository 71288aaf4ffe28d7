"""Worlds whose outcome does not depend on how fast the machine runs them.

Why: the same world spec gave different contracts on a busy machine (``hrlxf demo`` rerun on
the same seeds gave PenguinAgent 1.008, then 1.041). Reading negmas 0.16.0 / scml 0.8.4, a std
world reads the wall clock in three places that can change what agents do:

1. ``negmas.mechanisms.Mechanism.step`` draws ``random.random()`` from the *global* ``random``
   stream once per step, and once more whenever the whole number of seconds since the
   negotiation started grows. The number of draws, and so every later draw of that stream,
   follows the CPU speed; the experts (and the std fillers) draw their offers and shuffles from
   the same global stream. The two draws only decide a random ending (``pend`` /
   ``pend_per_second``), which is 0 in std worlds, so the draws matter only by what they consume.
2. ``Mechanism._relative_time_for`` (the ``relative_time`` of every negotiation state an agent
   sees) is ``max(step-based, elapsed seconds / time_limit)``: with ``neg_time_limit=60`` a
   negotiation that runs past ~3 s of wall time shows a later relative time than its round
   says, and the experts concede by relative time.
3. ``negmas.situated.World.relative_time`` (``awi.relative_time``) is
   ``max(current_step / n_steps, elapsed seconds / time_limit)`` in the same way.

What :func:`deterministic_clock` changes while a world is built and run, and nothing else:

1. the ``random`` that ``negmas.mechanisms`` sees is a proxy whose ``random()`` draws from a
   private ``random.Random(seed)``; every other attribute is the real module. The global stream
   is no longer consumed by the mechanisms, so its draws are the same at any speed. (With
   ``pend_per_second > 0``, which std worlds never set, the ending would still follow the clock.)
2. a negotiation with a round limit (``n_steps``; std: 20) reports the step-based relative time
   only; one without a round limit keeps negmas' clock-based value, its only measure.
3. a world with a day count reports ``current_step / n_steps`` only.

What is kept: every time limit (world ``time_limit`` 900 s, ``neg_time_limit`` /
``neg_hidden_time_limit`` 60 s, ``neg_step_time_limit`` 20 s) still ends what runs past it, as
anac2024_std's rules say; such limits are safety limits here, and a world that finishes within
them has the same outcome at any speed. ``state.time`` (elapsed seconds) still reports the
clock: no roster agent reads it.
"""

from __future__ import annotations

import contextlib
import math
import random
import types
from collections.abc import Iterator
from typing import Any

_SEED_SALT = "hrlxf-mechanism-draws"


class _MechanismRandom(types.ModuleType):
    """The ``random`` module as negmas.mechanisms sees it: ``random()`` from a private stream."""

    def __init__(self, seed: int) -> None:
        super().__init__("random")
        self._rng = random.Random(f"{_SEED_SALT}-{seed}")

    def random(self) -> float:  # type: ignore[override]
        return self._rng.random()

    def __getattr__(self, name: str) -> Any:
        return getattr(random, name)


def _step_relative_time(original: Any) -> Any:
    def _relative_time_for(self: Any, nmi: Any) -> float:
        if nmi.n_steps is None:
            return original(self, nmi)
        return min(1.0, (self._current_state.step + 1) / (nmi.n_steps + 1))

    return _relative_time_for


def _step_expected_relative_time(original: Any) -> Any:
    def _expected_relative_time_for(self: Any, nmi: Any) -> float:
        if nmi.n_steps is None:
            return original(self, nmi)
        n_steps = nmi.n_steps
        if nmi.pend > 0:
            n_steps = min(int(math.ceil(1 / nmi.pend)), n_steps)
        return (self._current_state.step + 1) / (n_steps + 1)

    return _expected_relative_time_for


def _world_relative_time(original: property) -> property:
    def relative_time(self: Any) -> float:
        if self.n_steps is None:
            return original.fget(self)  # type: ignore[misc]
        return self.current_step / self.n_steps

    return property(relative_time, doc="current_step / n_steps (hrlxf: no wall-clock component)")


_depth = 0


@contextlib.contextmanager
def deterministic_clock(seed: int) -> Iterator[None]:
    """Apply the three changes of this module's docstring; undo them on exit.

    Re-entrant (an inner use keeps the outer stream); process-wide while active, which is right
    for the runner (one world per worker process) and for tests that run worlds one after the
    other in one process.
    """
    global _depth
    import negmas.mechanisms as nm
    from negmas.situated.world import World

    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    saved = (
        nm.random,
        nm.Mechanism.__dict__["_relative_time_for"],
        nm.Mechanism.__dict__["_expected_relative_time_for"],
        World.__dict__["relative_time"],
    )
    nm.random = _MechanismRandom(seed)  # type: ignore[assignment]
    nm.Mechanism._relative_time_for = _step_relative_time(saved[1])  # type: ignore[method-assign]
    nm.Mechanism._expected_relative_time_for = _step_expected_relative_time(saved[2])  # type: ignore[method-assign]
    World.relative_time = _world_relative_time(saved[3])  # type: ignore[method-assign]
    _depth = 1
    try:
        yield
    finally:
        _depth = 0
        nm.random = saved[0]  # type: ignore[assignment]
        nm.Mechanism._relative_time_for = saved[1]  # type: ignore[method-assign]
        nm.Mechanism._expected_relative_time_for = saved[2]  # type: ignore[method-assign]
        World.relative_time = saved[3]  # type: ignore[method-assign]
