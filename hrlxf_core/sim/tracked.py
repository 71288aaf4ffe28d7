"""Recorder subclasses of expert agents: every state and decision, without changing behaviour.

Design (docs/design.md §4):
- ``tracked_class(Expert)`` builds ``class PenguinAgent(RecorderMixin, Expert)`` whose
  ``__name__`` is the expert's own, so the world gives it the very same agent id as the
  untracked expert (std agent ids reveal the type name, and some experts read partner ids).
  Its ``__module__`` is this module and its ``__qualname__`` an alias that this module's
  ``__getattr__`` decodes, so worker processes and pickle rebuild it by full name.
- The mixin sits first in the MRO, so it wraps the most-derived ``propose``/``respond``
  (AX and UltraSuperMiracleSoraFinalAgentZ override those themselves) and always calls super().
- Recording never raises into the world: an error in the recorder is counted and its first
  message kept, and the runner reports both, so a tracker cannot silently record nothing.
- The world catches the agent's own exceptions (anac2024_std with exceptions ignored) and goes
  on; every day-state and decision row recorded after the agent's first exception carries
  ``after_exception=True``, so that datasets can skip what a broken agent did next.
"""

from __future__ import annotations

import re
import traceback
from typing import Any

from hrlxf_core.observation import day_start_record
from hrlxf_core.sim.roster import KNOWN_AGENTS, load_class

_ALIAS_PREFIX = "Tracked"
_REGISTRY: dict[str, type] = {}  # alias -> tracked class

ACTIONS = ("ACCEPT", "REJECT", "END", "PROPOSE")


def _alias_for(class_path: str) -> str:
    """``a.b_c.D`` -> ``Tracked_Da_Db_Uc_DD``: '_' is written '_U' and '.' '_D'.

    negmas' ``get_class`` passes the class name through ``stringcase.pascalcase``, which drops
    every '_' before a lower-case letter; in this encoding each '_' is followed by U or D, so the
    alias survives it unchanged (and decodes unambiguously)."""
    return _ALIAS_PREFIX + ("." + class_path).replace("_", "_U").replace(".", "_D")


def _path_from_alias(alias: str) -> str:
    return re.sub(r"_([UD])", lambda m: "_" if m.group(1) == "U" else ".", alias[len(_ALIAS_PREFIX) :])[1:]


def _offer_cols(prefix: str, offer: Any) -> dict[str, Any]:
    if offer is None:
        return {f"{prefix}_q": None, f"{prefix}_t": None, f"{prefix}_p": None}
    return {f"{prefix}_q": int(offer[0]), f"{prefix}_t": int(offer[1]), f"{prefix}_p": float(offer[2])}


def _response_name(resp: Any) -> str | None:
    """Map a negmas response to ACCEPT / REJECT / END, or None for WAIT (sync agents)."""
    from negmas import ResponseType

    r = getattr(resp, "response", resp)
    if r == ResponseType.ACCEPT_OFFER:
        return "ACCEPT"
    if r == ResponseType.REJECT_OFFER:
        return "REJECT"
    if r == ResponseType.WAIT:
        return None
    return "END"  # END_NEGOTIATION, NO_RESPONSE and anything else end the thread for this agent


class AgentRecords:
    """In-memory rows of one tracked agent in one world (plain lists: cheap to append)."""

    def __init__(self) -> None:
        self.day_states: list[dict[str, Any]] = []
        self.negotiations: dict[str, dict[str, Any]] = {}
        self.decisions: list[dict[str, Any]] = []
        self.contracts: list[dict[str, Any]] = []
        self.errors: int = 0
        self.first_error: str = ""
        #: (day, traceback) of the agent's own exceptions that the world files under simulation
        #: exceptions, unattributed (those raised in ``before_step``), seen on their way out.
        self.exceptions: list[tuple[int, str]] = []
        #: (day, seq) -> what ``hrlxf_probe`` returned just before that decision (tests only).
        self.probes: dict[tuple[int, int], Any] = {}


class RecorderMixin:
    """Mixin placed before an expert class; records day-start states, negotiations, decisions
    and agreements of that agent."""

    _hrlxf_expert_path: str = ""
    #: Optional ``probe(agent, negotiator_id, state)`` called just before each decision; what
    #: it returns is kept by (day, seq). The parity test uses it to compute state live.
    hrlxf_probe: Any = None

    # -- bookkeeping ---------------------------------------------------------------------------
    def _hrlxf_fail(self, where: str) -> None:
        rec = self.__dict__.setdefault("_hrlxf_rec", AgentRecords())
        rec.errors += 1
        if not rec.first_error:
            rec.first_error = f"{where}: {traceback.format_exc(limit=3)}"

    def hrlxf_records(self) -> AgentRecords:
        """The rows recorded so far (the runner reads them after the world ends)."""
        return self.__dict__.setdefault("_hrlxf_rec", AgentRecords())

    def _hrlxf_after_exception(self) -> bool:
        """Whether this agent has raised before now: seen on its way out of one of the recorder's
        hooks (``before_step``, ``propose``, ``respond``), or caught by the world in a callback
        it calls itself (``agent_exceptions``, appended before the world goes on). Sticky."""
        if self.__dict__.get("_hrlxf_faulted"):
            return True
        world = getattr(self.awi, "_world", None)  # type: ignore[attr-defined]
        aid = self.awi.agent.id  # type: ignore[attr-defined]
        faulted = world is not None and bool(
            world.agent_exceptions.get(aid) or world.negotiator_exceptions.get(aid)
        )
        if faulted:
            self._hrlxf_faulted = True
        return faulted

    def _hrlxf_raised(self, where: str) -> None:
        """Note the agent's own exception leaving ``where`` (the caller re-raises it unchanged)."""
        self._hrlxf_faulted = True
        if where == "before_step":
            # scml calls before_step outside its per-agent accounting: keep whose it was
            self.hrlxf_records().exceptions.append((self._hrlxf_day(), traceback.format_exc(limit=-4)))

    def _hrlxf_day(self) -> int:
        return int(self.awi.current_step)  # type: ignore[attr-defined]

    def _hrlxf_reset_day(self, day: int) -> None:
        self._hrlxf_cur_day = day
        self._hrlxf_seq = 0
        self._hrlxf_n_agreements = 0
        self._hrlxf_pending: dict[str, int] = {}

    def _hrlxf_ensure_day(self) -> int:
        day = self._hrlxf_day()
        if getattr(self, "_hrlxf_cur_day", None) != day:
            self._hrlxf_reset_day(day)
        return day

    def _hrlxf_negotiation(self, partner: str, nmi: Any, day: int) -> dict[str, Any]:
        rec = self.hrlxf_records()
        nid = str(nmi.id)
        row = rec.negotiations.get(nid)
        if row is None:
            ann = nmi.annotation or {}
            is_buyer = ann.get("buyer") == self.awi.agent.id  # type: ignore[attr-defined]
            issues = {i.name: i for i in nmi.issues}
            q, t, p = issues["quantity"], issues["time"], issues["unit_price"]
            row = {
                "negotiation_id": nid,
                "day": day,
                "partner_id": str(partner),
                "is_buyer": bool(is_buyer),
                "product": int(ann.get("product", -1)),
                "q_min": int(q.min_value),
                "q_max": int(q.max_value),
                "t_min": int(t.min_value),
                "t_max": int(t.max_value),
                "p_min": float(p.min_value),
                "p_max": float(p.max_value),
                "status": "running",
                "agreement_q": None,
                "agreement_t": None,
                "agreement_p": None,
                "rounds": None,
                "contract_id": None,
                "ended_seq": None,
            }
            rec.negotiations[nid] = row
        return row

    def _hrlxf_nmi(self, negotiator_id: str) -> Any:
        neg = self.negotiators.get(negotiator_id)  # type: ignore[attr-defined]
        if neg is None:
            return None
        return neg[0].nmi

    def _hrlxf_effective_offer(self, negotiator_id: str, offer: Any) -> Any:
        """The offer as the mechanism takes it. SCML runs SAO with ``check_offers``: an offer outside
        the negotiation's outcome space (AX proposes delivery days past the time issue, DogAgent
        non-integer prices) counts as no offer, which ends the negotiation (``end_on_no_response``).
        Recording the raw offer would log an offer the partner never saw and a thread that went on."""
        if offer is None:
            return None
        nmi = self._hrlxf_nmi(negotiator_id)
        if nmi is not None and not nmi.outcome_space.is_valid(offer):
            return None
        return offer

    def _hrlxf_decision(self, negotiator_id: str, state: Any, action: str, received: Any, sent: Any) -> int:
        rec = self.hrlxf_records()
        day = self._hrlxf_ensure_day()
        nmi = self._hrlxf_nmi(negotiator_id)
        if nmi is None:
            raise RuntimeError(f"no negotiator {negotiator_id!r} on day {day}")
        neg = self._hrlxf_negotiation(negotiator_id, nmi, day)
        row = {
            "day": day,
            "seq": self._hrlxf_seq,
            "negotiation_id": neg["negotiation_id"],
            "partner_id": str(negotiator_id),
            "is_buyer": neg["is_buyer"],
            "round": int(state.step),
            "relative_time": float(state.relative_time),
            "n_agreements_before": self._hrlxf_n_agreements,
            **_offer_cols("recv", received),
            "action": action,
            **_offer_cols("sent", sent),
            "after_exception": self._hrlxf_after_exception(),
        }
        self._hrlxf_seq += 1
        rec.decisions.append(row)
        return len(rec.decisions) - 1

    # -- hooks -----------------------------------------------------------------------------------
    def init(self) -> None:
        try:
            self._hrlxf_initial_balance = float(self.awi.current_balance)  # type: ignore[attr-defined]
            self.hrlxf_records()
        except Exception:
            self._hrlxf_fail("init")
        super().init()  # type: ignore[misc]

    def before_step(self) -> None:
        try:
            day = self._hrlxf_day()
            self._hrlxf_reset_day(day)
            row = day_start_record(self.awi, self._hrlxf_initial_balance)  # type: ignore[attr-defined]
            row["after_exception"] = self._hrlxf_after_exception()
            self.hrlxf_records().day_states.append(row)
        except Exception:
            self._hrlxf_fail("before_step")
        try:
            super().before_step()  # type: ignore[misc]
        except Exception:
            self._hrlxf_raised("before_step")
            raise

    def _hrlxf_run_probe(self, negotiator_id: str, state: Any) -> Any:
        probe = type(self).hrlxf_probe
        if probe is None:
            return None
        try:
            self._hrlxf_ensure_day()
            return probe(self, negotiator_id, state)
        except Exception:
            self._hrlxf_fail("probe")
            return None

    def _hrlxf_keep_probe(self, idx: int, pre: Any) -> None:
        if pre is not None:
            row = self.hrlxf_records().decisions[idx]
            self.hrlxf_records().probes[(row["day"], row["seq"])] = pre

    def respond(self, negotiator_id: str, state: Any, *args: Any, **kwargs: Any) -> Any:
        pre = self._hrlxf_run_probe(negotiator_id, state)
        try:
            resp = super().respond(negotiator_id, state, *args, **kwargs)  # type: ignore[misc]
        except Exception as exc:
            # negmas retries a respond(..., source) that raised TypeError without ``source``:
            # only the last attempt's exception is the agent's
            if not (isinstance(exc, TypeError) and (args or "source" in kwargs)):
                self._hrlxf_raised("respond")
            raise
        try:
            action = _response_name(resp)
            if action is not None:
                idx = self._hrlxf_decision(negotiator_id, state, action, state.current_offer, None)
                self._hrlxf_keep_probe(idx, pre)
                if action == "REJECT":
                    self._hrlxf_pending[negotiator_id] = idx
                else:
                    self._hrlxf_pending.pop(negotiator_id, None)
        except Exception:
            self._hrlxf_fail("respond")
        return resp

    def propose(self, negotiator_id: str, state: Any, *args: Any, **kwargs: Any) -> Any:
        opening = negotiator_id not in getattr(self, "_hrlxf_pending", {})
        pre = self._hrlxf_run_probe(negotiator_id, state) if opening else None
        try:
            offer = super().propose(negotiator_id, state, *args, **kwargs)  # type: ignore[misc]
        except Exception:
            # negmas first calls propose(..., dest=...) and, on any exception, calls it again
            # without ``dest``: only that second call's exception is the agent's
            if "dest" not in kwargs:
                self._hrlxf_raised("propose")
            raise
        try:
            sent = self._hrlxf_effective_offer(negotiator_id, getattr(offer, "outcome", offer))
            self._hrlxf_ensure_day()
            idx = self._hrlxf_pending.pop(negotiator_id, None)
            if idx is not None:
                row = self.hrlxf_records().decisions[idx]
                row.update(_offer_cols("sent", sent))
                if sent is None:  # rejecting without a counter-offer ends the thread
                    row["action"] = "END"
            else:
                idx = self._hrlxf_decision(
                    negotiator_id, state, "PROPOSE" if sent is not None else "END", None, sent
                )
                self._hrlxf_keep_probe(idx, pre)
        except Exception:
            self._hrlxf_fail("propose")
        return offer

    def on_negotiation_success(self, contract: Any, mechanism: Any) -> None:
        try:
            day = self._hrlxf_ensure_day()
            me = self.awi.agent.id  # type: ignore[attr-defined]
            partner = next(p for p in contract.partners if p != me)
            neg = self._hrlxf_negotiation(partner, mechanism, day)
            ag = contract.agreement
            q, t, p = int(ag["quantity"]), int(ag["time"]), float(ag["unit_price"])
            state = getattr(contract, "mechanism_state", None)
            # The final mechanism state's step already counts the last round (the world's record
            # of the negotiation has the same step): it is the number of rounds played.
            rounds = int(state.step) if state is not None else None
            neg.update(
                ended_seq=self._hrlxf_seq,
                status="agreement",
                agreement_q=q,
                agreement_t=t,
                agreement_p=p,
                rounds=rounds,
                contract_id=str(contract.id),
            )
            self.hrlxf_records().contracts.append(
                {
                    "day": day,
                    "contract_id": str(contract.id),
                    "negotiation_id": neg["negotiation_id"],
                    "partner_id": str(partner),
                    "is_buyer": neg["is_buyer"],
                    "quantity": q,
                    "delivery_day": t,
                    "unit_price": p,
                    "agreement_seq": self._hrlxf_n_agreements,
                    "decisions_before": self._hrlxf_seq,
                }
            )
            self._hrlxf_n_agreements += 1
            self._hrlxf_pending.pop(partner, None)
        except Exception:
            self._hrlxf_fail("on_negotiation_success")
        super().on_negotiation_success(contract, mechanism)  # type: ignore[misc]

    def on_negotiation_failure(self, partners: Any, annotation: Any, mechanism: Any, state: Any) -> None:
        try:
            day = self._hrlxf_ensure_day()
            me = self.awi.agent.id  # type: ignore[attr-defined]
            partner = next((p for p in partners if p != me), "")
            neg = self._hrlxf_negotiation(partner, mechanism, day)
            neg.update(
                status="failed",
                ended_seq=self._hrlxf_seq,
                rounds=int(state.step) if state is not None else None,
            )
            self._hrlxf_pending.pop(partner, None)
        except Exception:
            self._hrlxf_fail("on_negotiation_failure")
        super().on_negotiation_failure(partners, annotation, mechanism, state)  # type: ignore[misc]


def tracked_class(expert: type | str) -> type:
    """Return (building once) the recorder subclass of ``expert`` (a class or full class path)."""
    cls = load_class(expert) if isinstance(expert, str) else expert
    path = f"{cls.__module__}.{cls.__qualname__}"
    if issubclass(cls, RecorderMixin):
        return cls
    alias = _alias_for(path)
    existing = _REGISTRY.get(alias)
    if existing is not None:
        return existing
    tracked = type(cls.__name__, (RecorderMixin, cls), {"_hrlxf_expert_path": path})
    # A class built with type() on an ABC base gets module 'abc'; worker processes would then
    # fail to rebuild it (silently, inside negmas tournaments). Name it explicitly.
    tracked.__module__ = __name__
    tracked.__qualname__ = alias
    tracked.__doc__ = f"{path} wrapped by the hrlxf decision recorder."
    _REGISTRY[alias] = tracked
    return tracked


def tracked_class_path(expert_path: str) -> str:
    """Full importable name of the recorder subclass of ``expert_path``."""
    return f"{__name__}.{_alias_for(expert_path)}"


def expert_path_of(cls: type) -> str:
    """Exact class path of the expert an agent class plays (the tracked class reports its base)."""
    return getattr(cls, "_hrlxf_expert_path", "") or f"{cls.__module__}.{cls.__qualname__}"


def __getattr__(name: str) -> type:
    """Rebuild tracked classes by name in any process (PEP 562 module attribute hook)."""
    if name.startswith(_ALIAS_PREFIX + "_D"):
        return tracked_class(_path_from_alias(name))
    if name in KNOWN_AGENTS:  # get_full_type_name() gives module + __name__
        return tracked_class(KNOWN_AGENTS[name])
    for path in KNOWN_AGENTS.values():  # a roster class whose name is not its roster name (HeyStd)
        if path.rpartition(".")[2] == name:
            return tracked_class(path)
    for cls in _REGISTRY.values():
        if cls.__name__ == name:
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
