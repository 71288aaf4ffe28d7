"""LitaAgentHRL (HRL-XF): L1 safety + L2 daily goal + L3 residual negotiator + L4 coordinator.

A ``StdSyncAgent``: every round, the whole batch of live threads is planned at once
(``first_proposals`` / ``counter_all``), so the result does not depend on the order in which
the world presents threads. Per round:

1. observation → state (the same functions as the offline pipeline) and L1 limits/baselines;
2. L4 gives α over the threads; threads are ordered by α (ties by partner id);
3. in that order, L3 gives op / residual / δ for each thread, and
   ``a_final = clip(baseline + residual, mask)`` is taken against the budget and safe quantities
   left by the threads before it, which are then reserved (dynamic reservation);
4. an exception inside a layer gives that thread the L1 action and is counted; a world never
   crashes because of a layer.

Counters (``hrlxf_stats()``): decisions, actions clip changed, fallbacks, realised safety
violations (agreements that broke L1's invariant at their delivery offset, which held before: must stay
0), and decision latency.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from negmas import ResponseType, SAOResponse
from scml.std import StdSyncAgent

from hrlxf_core.agent_layers import make_stack
from hrlxf_core.expert_inputs import expert_features
from hrlxf_core.l1_safety import (
    ReservedLimits,
    agreement_breaks_l1,
    baseline,
    clip_inputs,
    clip_prepared,
    limit_parts,
    market_price,
    role_safe,
    time_mask,
    time_range,
)
from hrlxf_core.l3_contract import OP_ACCEPT, OP_OFFER, ThreadHistory, histories_features
from hrlxf_core.l4_features import global_features, thread_features
from hrlxf_core.models.l3_inputs import residual_to_offer
from hrlxf_core.numeric import finite
from hrlxf_core.offer_table import OfferTable, TableOffer
from hrlxf_core.online import live_observation, threads_from_nmis
from hrlxf_core.state import Observation, production_plan, x_role_thread, x_static, x_temporal


@dataclass
class ThreadInput:
    """One live thread of a round."""

    nid: str
    nmi: Any
    offer: tuple[int, int, float] | None  # the partner's offer being answered (q, t, p)
    round: int
    relative_time: float


@dataclass
class Planned:
    response: str  # ACCEPT / OFFER / END
    offer: tuple[int, int, int] | None
    clip_changed: bool = False
    fallback: bool = False


@dataclass
class AgentStats:
    decisions: int = 0
    rounds: int = 0
    clip_changed: int = 0
    fallbacks: int = 0
    violations: int = 0
    agreements: int = 0
    latency_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latency_ms) if self.latency_ms else np.zeros(1)
        return {
            "decisions": self.decisions,
            "rounds": self.rounds,
            "clip_changed": self.clip_changed,
            "fallbacks": self.fallbacks,
            "violations": self.violations,
            "agreements": self.agreements,
            "latency_p50_ms": float(np.percentile(lat, 50)),
            "latency_p99_ms": float(np.percentile(lat, 99)),
            "first_error": self.errors[0] if self.errors else "",
        }


def plan_round(
    stack: Any,
    obs: Observation,
    goal: np.ndarray,
    my_id: str,
    inputs: list[ThreadInput],
    ledger: dict[str, ThreadHistory],
) -> dict[str, Planned]:
    """Plan every live thread of a round at once (order-free; see the module doc). ``ledger``:
    each thread's offers so far, the one being answered last (encoded as the micro samples).

    ``obs`` is one observation row that every thread shares: the per-observation quantities
    (limits, temporal and static features, the expert inputs of the two roles) are computed once
    on it and given to each thread; the per-thread functions are the offline ones, which take a
    shared row as well as one row per thread (the same values)."""
    t = len(inputs)
    day = int(obs.day[0])
    inputs = sorted(inputs, key=lambda x: x.nid)  # presentation order never matters
    th = threads_from_nmis([x.nmi for x in inputs], my_id)
    one = np.zeros(t, dtype=np.int64)  # every thread reads row 0 of obs
    parts = limit_parts(obs)
    # reservations accumulate in `reserved` (the loop below; it copies `parts`); the features and
    # the offer's safety use the unreserved limits
    reserved = ReservedLimits(obs, parts=parts)
    limits = reserved.limits().take(one)  # l1_limits of the shared row, one row per thread
    in_range = time_range(obs, th)  # the part of the time mask that no reservation changes
    mask = time_mask(obs, limits, th, in_range)
    production = production_plan(obs)
    static = x_static(obs)
    base = baseline(obs, limits, th, mask)
    market = market_price(obs, th.is_buyer)
    has = np.array([x.offer is not None for x in inputs])
    recv = np.array(
        [x.offer if x.offer is not None else (np.nan, np.nan, np.nan) for x in inputs], dtype=np.float64
    )
    hist, hist_len = histories_features(
        [ledger.get(x.nid) for x in inputs], np.full(t, float(obs.n_lines[0])), market, np.full(t, day)
    )
    goal_rows = np.repeat(np.asarray(goal, np.float64).reshape(1, -1), t, axis=0)
    cols = {
        "has_offer": has,
        "recv_q": finite(recv[:, 0]),
        "recv_delta": finite(recv[:, 1] - day),
        "recv_p": finite(recv[:, 2]),
        "x_role": x_role_thread(th.is_buyer),
        "x_static": static[one],
        "relative_time": np.array([x.relative_time for x in inputs]),
        "round": np.array([x.round for x in inputs], dtype=np.float64),
        "n_lines": obs.n_lines[one],
        "market_price": market,
        "base_q": base.q,
        "base_delta": base.delta,
        "base_p": base.p,
        "base_feasible": base.feasible,
        "q_safe": role_safe(limits, th.is_buyer),
        "b_free": limits.b_free,
        "time_mask": mask,
        "goal": goal_rows,
        "hist": hist,
        "hist_len": hist_len,
        "x_expert": expert_features(obs, th.is_buyer, production, parts),
    }
    # is the partner's offer safe as it stands (clip would not change it)?
    # (the limit-free part of clipping the received offers is the same in the loop below)
    recv_clip = clip_inputs(obs, th, cols["recv_q"], cols["recv_delta"], cols["recv_p"])
    offer_clip = clip_prepared(limits, recv_clip, mask)  # = clip_action of the received offers
    offer_safe = (
        has
        & offer_clip.feasible
        & (offer_clip.q == cols["recv_q"])
        & (offer_clip.delta == cols["recv_delta"])
        & (offer_clip.p == cols["recv_p"])
    )
    l1 = make_stack("l1")
    fallback = np.zeros(t, bool)
    try:
        feats = thread_features(
            obs,
            limits,
            th,
            base,
            cols["round"],
            cols["relative_time"],
            recv[:, 0],
            recv[:, 1] - day,
            recv[:, 2],
            goal_rows,
            expert=cols["x_expert"],
            temporal=x_temporal(obs, production),
        )
        n_buy = int(th.is_buyer.sum())
        glob = global_features(
            obs, np.array([n_buy]), np.array([t - n_buy]), np.asarray(goal).reshape(1, -1), static
        )[0]
        alpha = np.asarray(stack.alpha(feats, glob), np.float64)
        if alpha.shape != (t,) or not np.isfinite(alpha).all():
            raise ValueError(f"L4 returned alpha of shape {alpha.shape} / non-finite")
    except Exception:
        alpha = l1.alpha(np.zeros((t, 1)), np.zeros(1))
        fallback[:] = True
    try:
        op, residual, delta = stack.decide(cols, offer_safe)
        if op.shape != (t,) or residual.shape != (t, 2) or not np.isfinite(residual).all():
            raise ValueError("L3 returned outputs of the wrong shape / non-finite")
    except Exception:
        op, residual, delta = l1.decide(cols, offer_safe)
        fallback[:] = True
    q_prop, p_prop = residual_to_offer(residual, base.q, base.p, cols["n_lines"], market)
    order = sorted(range(t), key=lambda k: (-round(float(alpha[k]), 12), inputs[k].nid))
    # the part of clip that no reservation changes, for every thread at once
    prop_clip = clip_inputs(obs, th, q_prop, delta, p_prop)
    out: dict[str, Planned] = {}
    for k in order:
        nid, fb = inputs[k].nid, bool(fallback[k])
        if op[k] == OP_ACCEPT and has[k]:
            op_k = OP_ACCEPT
        else:
            op_k = int(op[k])
            if op_k != OP_OFFER:
                out[nid] = Planned("END", None, fallback=fb)
                continue
        row = slice(k, k + 1)
        lim_k = reserved.limits()
        mask_k = time_mask(obs, lim_k, th.take(row), in_range[row])
        buyer = bool(th.is_buyer[k])
        if op_k == OP_ACCEPT:
            c = clip_prepared(lim_k, recv_clip.take(row), mask_k)
            if (
                c.feasible[0]
                and c.q[0] == recv[k, 0]
                and c.delta[0] == recv[k, 1] - day
                and c.p[0] == recv[k, 2]
            ):
                reserved.reserve(buyer, float(recv[k, 0]), int(recv[k, 1] - day), float(recv[k, 2]))
                out[nid] = Planned("ACCEPT", None, fallback=fb)
                continue
            # the offer is no longer safe after the reservations before it: counter-offer
        a = clip_prepared(lim_k, prop_clip.take(row), mask_k)
        if not a.feasible[0]:
            out[nid] = Planned("END", None, fallback=fb)
            continue
        changed = bool(
            abs(a.q[0] - q_prop[k]) > 0.5 or a.delta[0] != delta[k] or abs(a.p[0] - p_prop[k]) > 0.5
        )
        reserved.reserve(buyer, float(a.q[0]), int(a.delta[0]), float(a.p[0]))
        out[nid] = Planned("OFFER", (int(a.q[0]), day + int(a.delta[0]), int(a.p[0])), changed, fb)
    return out


def lita_agents(world: Any) -> list[LitaAgentHRL]:
    """The LitaAgentHRL objects of a finished world (behind negmas's adapters), for reading their
    ``stats`` after a run."""
    objs = (getattr(a, "_obj", None) for a in world.agents.values())
    return [o for o in objs if isinstance(o, LitaAgentHRL)]


class LitaAgentHRL(StdSyncAgent):
    """HRL-XF negotiating agent. ``mode``: ``l1`` (residual 0), ``heuristic`` or ``neural``
    (checkpoints by path, or ``checkpoints_dir`` = an hrlxf data directory)."""

    def __init__(
        self,
        *args: Any,
        mode: str = "heuristic",
        l2_path: str | None = None,
        l3_path: str | None = None,
        l4_path: str | None = None,
        checkpoints_dir: str | None = None,
        device: str = "cpu",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.mode = mode
        self.stack = make_stack(
            mode, l2_path, l3_path, l4_path, checkpoints_dir, device
        )  # fails here, not mid-world
        self.stats = AgentStats()
        self._initial_balance = 0.0
        self._goal = np.zeros(16)
        self._ledger: dict[str, ThreadHistory] = {}
        self._table = OfferTable()

    # -- life cycle ---------------------------------------------------------------------------------
    def init(self) -> None:
        self._initial_balance = float(self.awi.current_balance)
        super().init()

    def before_step(self) -> None:
        self._ledger = {}
        self._table.clear()
        try:
            obs = live_observation(self.awi, self._initial_balance)
            self._goal = np.asarray(self.stack.goal(obs), np.float64).reshape(-1)
            if self._goal.shape != (16,) or not np.isfinite(self._goal).all():
                raise ValueError("L2 goal of the wrong shape / non-finite")
        except Exception as exc:
            self._goal = np.zeros(16)
            self.stats.fallbacks += 1
            self.stats.errors.append(f"L2: {type(exc).__name__}: {exc}")
        super().before_step()

    def hrlxf_stats(self) -> dict[str, Any]:
        return {"mode": self.mode, **self.stats.summary()}

    # -- planning ----------------------------------------------------------------------------------
    def _plan(self, offers: dict[str, Any], states: dict[str, Any], nids: list[str]) -> dict[str, Planned]:
        t0 = time.perf_counter()
        inputs = []
        for nid in nids:
            neg = self.negotiators.get(nid)
            nmi = neg[0].nmi if neg is not None else None
            if nmi is None:  # not started yet: nothing to plan for it this round
                continue
            st = states.get(nid) or nmi.state
            o = offers.get(nid)
            inputs.append(
                ThreadInput(
                    nid, nmi, tuple(o) if o is not None else None, int(st.step), float(st.relative_time)
                )
            )
        for x in inputs:
            if x.offer is not None:
                self._ledger.setdefault(x.nid, ThreadHistory()).add(*x.offer, own=False)
        if not inputs:
            return {}
        obs = live_observation(self.awi, self._initial_balance, self._table.offers())
        try:
            plan = plan_round(self.stack, obs, self._goal, self.awi.agent.id, inputs, self._ledger)
        except Exception as exc:  # last resort: the L1 stack, which must not fail
            self.stats.errors.append(f"plan: {type(exc).__name__}: {exc}")
            plan = plan_round(make_stack("l1"), obs, np.zeros(16), self.awi.agent.id, inputs, self._ledger)
            for p in plan.values():
                p.fallback = True
        for x in inputs:
            if x.offer is not None:
                self._table.receive(
                    x.nid,
                    TableOffer(
                        x.nmi.annotation.get("buyer") == self.awi.agent.id,
                        int(x.offer[1]) - self.awi.current_step,
                        float(x.offer[0]),
                        float(x.offer[2]),
                    ),
                )
        self.stats.rounds += 1
        self.stats.decisions += len(plan)
        self.stats.clip_changed += sum(p.clip_changed for p in plan.values())
        self.stats.fallbacks += sum(p.fallback for p in plan.values())
        self.stats.latency_ms.append((time.perf_counter() - t0) * 1000.0)
        return plan

    def propose(self, negotiator_id: str, state: Any, *args: Any, **kwargs: Any) -> Any:
        """The offer the mechanism takes from us enters the thread's history here, not when it
        is planned: a sync agent plans first proposals for threads its partner opens, and those
        are never sent (the micro samples hold only offers that were made)."""
        offer = super().propose(negotiator_id, state, *args, **kwargs)
        sent = getattr(offer, "outcome", offer)
        neg = self.negotiators.get(negotiator_id)
        nmi = neg[0].nmi if neg is not None else None
        if sent is not None and nmi is not None and nmi.outcome_space.is_valid(sent):
            self._ledger.setdefault(negotiator_id, ThreadHistory()).add(*sent, own=True)
        return offer

    def first_proposals(self) -> dict[str, Any]:
        nids = list(self.negotiators.keys())
        if not nids:
            return {}
        plan = self._plan({}, {}, nids)
        return {nid: (p.offer if p.response == "OFFER" else None) for nid, p in plan.items()}

    def counter_all(self, offers: dict[str, Any], states: dict[str, Any]) -> dict[str, SAOResponse]:
        if not offers:
            return {}
        plan = self._plan(offers, states, list(offers.keys()))
        out = {nid: SAOResponse(ResponseType.END_NEGOTIATION, None) for nid in offers if nid not in plan}
        for nid, p in plan.items():
            if p.response == "ACCEPT":
                out[nid] = SAOResponse(ResponseType.ACCEPT_OFFER, offers[nid])
            elif p.response == "OFFER":
                out[nid] = SAOResponse(ResponseType.REJECT_OFFER, p.offer)
            else:
                out[nid] = SAOResponse(ResponseType.END_NEGOTIATION, None)
        return out

    # -- outcomes ----------------------------------------------------------------------------------
    def on_negotiation_success(self, contract: Any, mechanism: Any) -> None:
        try:
            self.stats.agreements += 1
            self._check_realised_safety(contract)
        except Exception as exc:
            self.stats.errors.append(f"safety check: {type(exc).__name__}: {exc}")
        partner = next((p for p in contract.partners if p != self.awi.agent.id), None)
        if partner is not None:
            self._table.end(partner)
        super().on_negotiation_success(contract, mechanism)

    def on_negotiation_failure(self, partners: Any, annotation: Any, mechanism: Any, state: Any) -> None:
        for p in partners:
            self._table.end(p)
        super().on_negotiation_failure(partners, annotation, mechanism, state)

    def _check_realised_safety(self, contract: Any) -> None:
        """Count an agreement that broke L1's invariant at its delivery offset (it held before)."""
        after = live_observation(self.awi, self._initial_balance)
        if agreement_breaks_l1(after, contract, self.awi.agent.id):
            self.stats.violations += 1
