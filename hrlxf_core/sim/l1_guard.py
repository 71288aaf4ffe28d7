"""An expert behind L1: the architecture's ceiling (``<Expert>+L1``) and the experts' safety monitor.

Why: LitaAgentHRL can never do better than what survives its safety layer. The ceiling contender
``PenguinAgent+L1`` plays PenguinAgent with every outgoing offer and every accept filtered online
through L1 (the same limits, clip() and dynamic reservation as the agent); if it scores far below
PenguinAgent, L1 and not learning is what holds the agent back. The same mixin in *watch* mode
leaves an expert's behaviour untouched and only counts what L1 would have changed and the
agreements that broke L1's invariant, so every contender of an evaluation reports comparable
safety counters.

Built like the recorder (``hrlxf_core.sim.tracked``): ``guarded_class(Expert, enforce)`` creates
``class PenguinAgent(L1GuardMixin, Expert)`` with the expert's own ``__name__`` (so agent ids are the
same), a module-level alias as ``__qualname__`` that this module's ``__getattr__`` decodes in any
worker process, and the mixin first in the MRO so it wraps the most-derived propose/respond.

Filtering (enforce):
- an offer the expert sends is replaced by ``clip()`` of it; when clip() finds no feasible action
  the expert sends nothing, which ends the thread;
- an accept of an offer that clip() would change becomes a rejection with the clipped offer as the
  counter-offer, or END when nothing is feasible;
- every offer of ours still on a partner's table stays reserved (dynamic reservation) until the
  partner answers or the thread ends; each action is clipped against the live AWI (which holds
  the agreements so far) minus those reservations.
"""

from __future__ import annotations

import re
import time
import traceback
from typing import Any

import numpy as np

from hrlxf_core.l1_safety import ReservedLimits, agreement_breaks_l1, clip_action, time_mask
from hrlxf_core.online import live_observation, thread_from_nmi
from hrlxf_core.sim.roster import KNOWN_AGENTS, load_class

_PREFIX = {True: "L1Filter", False: "L1Watch"}
#: Module of the watched classes (the filtered ones live here).
WATCH_MODULE = "hrlxf_core.sim.l1_watch"
_REGISTRY: dict[str, type] = {}
#: The suffix of a ceiling contender's name: ``PenguinAgent+L1``.
FILTER_SUFFIX = "+L1"


def _alias(class_path: str, enforce: bool) -> str:
    """Same encoding as the recorder's aliases ('_' -> '_U', '.' -> '_D'), which survive negmas'
    pascal-casing of class names."""
    return _PREFIX[enforce] + ("." + class_path).replace("_", "_U").replace(".", "_D")


def _decode(alias: str) -> tuple[str, bool] | None:
    for enforce, prefix in _PREFIX.items():
        if alias.startswith(prefix + "_D"):
            body = alias[len(prefix) :]
            return re.sub(r"_([UD])", lambda m: "_" if m.group(1) == "U" else ".", body)[1:], enforce
    return None


class L1GuardMixin:
    """Placed before an expert class: filters (enforce) or watches its actions through L1."""

    _hrlxf_expert_path: str = ""
    _hrlxf_l1_enforce: bool = True

    # -- state ------------------------------------------------------------------------------------
    def _g(self) -> dict[str, Any]:
        g = self.__dict__.get("_hrlxf_guard")
        if g is None:
            g = {
                "key": None,
                "reserved": None,
                "obs": None,
                "stash": {},
                "outstanding": {},  # negotiator id -> (is_buyer, q, δ, p) of our offer on its table
                "agreements": 0,
                "initial_balance": 0.0,
                "stats": {"decisions": 0, "clip_changed": 0, "forbidden": 0, "violations": 0,
                          "fallbacks": 0, "agreements": 0, "errors": 0, "first_error": "",
                          "latency_ms": []},
            }  # fmt: skip
            self.__dict__["_hrlxf_guard"] = g
        return g

    def _guard_fail(self, where: str) -> None:
        st = self._g()["stats"]
        st["errors"] += 1
        if not st["first_error"]:
            st["first_error"] = f"{where}: {traceback.format_exc(limit=3)}"

    def _limits_for(self, state: Any, negotiator_id: str) -> tuple[Any, ReservedLimits]:
        """The live observation and the limits with every outstanding offer of ours reserved,
        except the one of this thread (which the new action replaces).

        Why a ledger and not only a per-round reservation: the expert acts thread by thread, and
        agreements land between its actions; an offer it sent earlier can still be accepted, so
        it must keep its reservation until the partner answers or the thread ends."""
        g = self._g()
        awi = self.awi  # type: ignore[attr-defined]
        key = (int(awi.current_step), g["agreements"])
        if g["key"] != key:
            g["obs"] = live_observation(awi, g["initial_balance"])
            g["key"] = key
        reserved = ReservedLimits(g["obs"])
        for nid, (buyer, q, d, p) in g["outstanding"].items():
            if nid != negotiator_id:
                reserved.reserve(buyer, q, d, p)
        return g["obs"], reserved

    def _guard(self, negotiator_id: str, state: Any, offer: Any) -> tuple[tuple[int, int, int] | None, bool]:
        """(clipped offer or None when nothing is feasible, whether clip changed it); reserves
        the clipped action."""
        neg = self.negotiators.get(negotiator_id)  # type: ignore[attr-defined]
        nmi = neg[0].nmi if neg is not None else None
        if nmi is None or offer is None:
            return (tuple(offer) if offer is not None else None), False
        obs, reserved = self._limits_for(state, negotiator_id)
        me = self.awi.agent.id  # type: ignore[attr-defined]
        th = thread_from_nmi(nmi, me)
        lim = reserved.limits()
        day = int(obs.day[0])
        q, t, p = float(offer[0]), float(offer[1]), float(offer[2])
        a = clip_action(
            obs, lim, th, np.array([q]), np.array([t - day]), np.array([p]), time_mask(obs, lim, th)
        )
        if not a.feasible[0]:
            return None, True
        out = (int(a.q[0]), day + int(a.delta[0]), int(a.p[0]))
        changed = out != (int(round(q)), int(round(t)), int(round(p))) or q != round(q) or p != round(p)
        return out, changed

    def _book(self, negotiator_id: str, offer: tuple[int, int, int] | None) -> None:
        """Record (or clear) our offer on this thread's table: it stays reserved until answered."""
        g = self._g()
        if offer is None:
            g["outstanding"].pop(negotiator_id, None)
            return
        neg = self.negotiators.get(negotiator_id)  # type: ignore[attr-defined]
        nmi = neg[0].nmi if neg is not None else None
        if nmi is None:
            return
        buyer = (nmi.annotation or {}).get("buyer") == self.awi.agent.id  # type: ignore[attr-defined]
        day = int(self.awi.current_step)  # type: ignore[attr-defined]
        g["outstanding"][negotiator_id] = (buyer, float(offer[0]), int(offer[1]) - day, float(offer[2]))

    def _check(self, negotiator_id: str, state: Any, offer: Any) -> tuple[tuple[int, int, int] | None, bool]:
        """Clip one action (``_guard``) and count it: (clipped offer or None, changed or forbidden)."""
        t0 = time.perf_counter()
        clipped, changed = self._guard(negotiator_id, state, offer)
        forbidden = clipped is None
        st = self._g()["stats"]
        st["decisions"] += 1
        st["clip_changed"] += int(changed and not forbidden)
        st["forbidden"] += int(forbidden)
        st["latency_ms"].append((time.perf_counter() - t0) * 1000.0)
        return clipped, changed or forbidden

    # -- hooks ------------------------------------------------------------------------------------
    def init(self) -> None:
        try:
            self._g()["initial_balance"] = float(self.awi.current_balance)  # type: ignore[attr-defined]
        except Exception:
            self._guard_fail("init")
        super().init()  # type: ignore[misc]

    def respond(self, negotiator_id: str, state: Any, *args: Any, **kwargs: Any) -> Any:
        from negmas import ResponseType

        resp = super().respond(negotiator_id, state, *args, **kwargs)  # type: ignore[misc]
        if getattr(resp, "response", resp) == ResponseType.WAIT:
            return resp
        self._book(negotiator_id, None)  # the partner answered our last offer with its own
        if getattr(resp, "response", resp) != ResponseType.ACCEPT_OFFER:
            return resp
        try:
            offer = state.current_offer
            clipped, altered = self._check(negotiator_id, state, offer)
            if not self._hrlxf_l1_enforce or not altered:
                # accepted: reserved until the agreement reaches the AWI (on_negotiation_success)
                self._book(negotiator_id, tuple(offer))
                return resp
            if clipped is None:
                return ResponseType.END_NEGOTIATION
            self._g()["stash"][negotiator_id] = clipped
            return ResponseType.REJECT_OFFER
        except Exception:
            self._guard_fail("respond")
            return resp

    def propose(self, negotiator_id: str, state: Any, *args: Any, **kwargs: Any) -> Any:
        stash = self._g()["stash"]
        if negotiator_id in stash:  # an unsafe accept turned into its clipped counter-offer
            clipped = stash.pop(negotiator_id)
            self._book(negotiator_id, clipped)
            return clipped
        offer = super().propose(negotiator_id, state, *args, **kwargs)  # type: ignore[misc]
        raw = getattr(offer, "outcome", offer)
        if raw is None:
            self._book(negotiator_id, None)
            return offer
        try:
            clipped, altered = self._check(negotiator_id, state, raw)
            if not self._hrlxf_l1_enforce or not altered:
                self._book(negotiator_id, tuple(raw))
                return offer
            self._book(negotiator_id, clipped)
            return clipped
        except Exception:
            self._guard_fail("propose")
            return offer

    def on_negotiation_success(self, contract: Any, mechanism: Any) -> None:
        g = self._g()
        try:
            partner = next((p for p in contract.partners if p != self.awi.agent.id), None)  # type: ignore[attr-defined]
            g["outstanding"].pop(partner, None)  # now a commitment in the AWI
            g["agreements"] += 1
            g["stats"]["agreements"] += 1
            awi = self.awi  # type: ignore[attr-defined]
            after = live_observation(awi, g["initial_balance"])
            if agreement_breaks_l1(after, contract, awi.agent.id):
                g["stats"]["violations"] += 1
        except Exception:
            self._guard_fail("on_negotiation_success")
        super().on_negotiation_success(contract, mechanism)  # type: ignore[misc]

    def on_negotiation_failure(self, partners: Any, annotation: Any, mechanism: Any, state: Any) -> None:
        for p in partners:
            self._g()["outstanding"].pop(p, None)
        super().on_negotiation_failure(partners, annotation, mechanism, state)  # type: ignore[misc]

    def before_step(self) -> None:
        g = self._g()
        g["stash"], g["key"], g["outstanding"] = {}, None, {}
        super().before_step()  # type: ignore[misc]

    def hrlxf_stats(self) -> dict[str, Any]:
        st = dict(self._g()["stats"])
        lat = np.asarray(st.pop("latency_ms") or [0.0])
        st["latency_p50_ms"] = float(np.percentile(lat, 50))
        st["latency_p99_ms"] = float(np.percentile(lat, 99))
        st["mode"] = "l1-filter" if self._hrlxf_l1_enforce else "l1-watch"
        return st


def guarded_class(expert: type | str, enforce: bool = True) -> type:
    """The L1-filtered (enforce) or L1-watched subclass of ``expert`` (built once per process)."""
    cls = load_class(expert) if isinstance(expert, str) else expert
    path = f"{cls.__module__}.{cls.__qualname__}"
    alias = _alias(path, enforce)
    if alias in _REGISTRY:
        return _REGISTRY[alias]
    guarded = type(
        cls.__name__, (L1GuardMixin, cls), {"_hrlxf_expert_path": path, "_hrlxf_l1_enforce": enforce}
    )
    # A type() on an ABC base would get module 'abc' (docs/design.md §4). Filtered and watched classes
    # live in two modules, so negmas' module + __name__ (get_full_type_name) tells them apart.
    guarded.__module__ = __name__ if enforce else WATCH_MODULE
    guarded.__qualname__ = alias
    guarded.__doc__ = f"{path} with its actions {'filtered' if enforce else 'watched'} through L1."
    _REGISTRY[alias] = guarded
    return guarded


def guarded_class_path(expert_path: str, enforce: bool = True) -> str:
    return f"{__name__ if enforce else WATCH_MODULE}.{_alias(expert_path, enforce)}"


def resolve_guarded(name: str, enforce: bool) -> type:
    """A guarded class from its alias, its expert's roster name, or its ``__name__`` (negmas
    rebuilds agent types from module + ``__name__``)."""
    decoded = _decode(name)
    if decoded is not None:
        return guarded_class(*decoded)
    if name in KNOWN_AGENTS:
        return guarded_class(KNOWN_AGENTS[name], enforce)
    for cls in _REGISTRY.values():
        if cls.__name__ == name and cls._hrlxf_l1_enforce is enforce:
            return cls
    raise AttributeError(f"no L1-{'filtered' if enforce else 'watched'} agent class {name!r}")


def __getattr__(name: str) -> type:
    """Rebuild filtered classes by name in any process (PEP 562)."""
    if name.startswith("__"):
        raise AttributeError(name)
    return resolve_guarded(name, enforce=True)
