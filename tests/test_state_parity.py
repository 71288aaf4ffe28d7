"""Parity: the state and L1 quantities computed live inside a real world at each decision of a
tracked expert equal what the offline pipeline rebuilds from the records (docs/design.md §2)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from hrlxf_core.datasets.micro import build_micro
from hrlxf_core.datasets.offline_obs import decision_threads
from hrlxf_core.datasets.partition import PartitionTables
from hrlxf_core.expert_inputs import EXPERT_FEATURE_NAMES, expert_features
from hrlxf_core.l1_safety import baseline, l1_limits, time_mask
from hrlxf_core.online import TableOffer, live_observation, thread_from_nmi
from hrlxf_core.sim.roster import KNOWN_AGENTS
from hrlxf_core.sim.tracked import tracked_class
from hrlxf_core.sim.world_run import apply_sandbox_env, run_world
from hrlxf_core.sim.world_spec import WorldSpec
from hrlxf_core.state import Observation, x_static, x_temporal

EXPERTS = ["PenguinAgent", "AS0", "UltraSuperMiracleSoraFinalAgentZ", "CautiousStdAgent", "GreedyStdAgent"]


def online_probe(agent: Any, negotiator_id: str, state: Any) -> dict[str, Any]:
    """What the live agent computes at a decision: its ledger of offers on the table + the AWI."""
    rec = agent.hrlxf_records()
    day = agent.awi.current_step
    latest: dict[str, TableOffer] = {}
    for d in rec.decisions:
        if d["day"] == day and d["recv_q"] is not None:
            latest[d["negotiation_id"]] = TableOffer(
                d["is_buyer"], d["recv_t"] - day, d["recv_q"], d["recv_p"]
            )
    open_offers = [o for nid, o in latest.items() if rec.negotiations[nid]["status"] == "running"]
    obs = live_observation(agent.awi, agent._hrlxf_initial_balance, open_offers)
    threads = thread_from_nmi(agent._hrlxf_nmi(negotiator_id), agent.awi.agent.id)
    limits = l1_limits(obs)
    mask = time_mask(obs, limits, threads)
    base = baseline(obs, limits, threads, mask)
    return {
        "obs": obs,
        "x_static": x_static(obs),
        "x_temporal": x_temporal(obs),
        "q_safe_buy": limits.q_safe_buy,
        "q_safe_sell": limits.q_safe_sell,
        "b_free": limits.b_free,
        "mask": mask,
        "base": np.array([base.q[0], base.delta[0], base.p[0]]),
        "x_expert": expert_features(obs, threads.is_buyer),
    }


@pytest.fixture(scope="module")
def probed_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, pl.DataFrame], dict]:
    tmp = tmp_path_factory.mktemp("parity")
    apply_sandbox_env(tmp)
    paths = [KNOWN_AGENTS[n] for n in EXPERTS]
    classes = [tracked_class(p) for p in paths]
    for c in classes:
        c.hrlxf_probe = staticmethod(online_probe)
    filler = KNOWN_AGENTS["RandomStdAgent"]
    spec = WorldSpec(
        world_id="parity-w0",
        index=0,
        seed=20261125,
        n_steps=12,
        n_processes=2,
        agent_paths=(paths[0], paths[1], paths[4], filler, paths[2], paths[3], filler, filler),
        agent_levels=(0, 0, 0, 0, 1, 1, 1, 1),
        competitor=(True, True, True, False, True, True, False, False),
    )
    try:
        out = run_world(spec, "parity", tmp / "log", tracked=True, keep_world=True)
    finally:
        for c in classes:
            c.hrlxf_probe = None
    probes = {}
    for aid, adapter in out.world.agents.items():
        obj = getattr(adapter, "_obj", None)
        if obj is not None and hasattr(obj, "hrlxf_records"):
            for (day, seq), value in obj.hrlxf_records().probes.items():
                probes[(aid, day, seq)] = value
    return out.tables, probes


def test_offline_state_equals_live_state_at_every_decision(probed_world) -> None:
    tables, probes = probed_world
    assert tables["worlds"]["recorder_errors"][0] == 0, tables["worlds"]["recorder_error"][0]
    pt = PartitionTables(path=Path("."), **tables)
    dec, obs, threads = decision_threads(pt)
    limits = l1_limits(obs)
    mask = time_mask(obs, limits, threads)
    base = baseline(obs, limits, threads, mask)
    xs, xt = x_static(obs), x_temporal(obs)
    # the inputs the experts decide on, as the micro samples store them (what L3 trains on)
    micro = build_micro(pt)
    xe = np.stack(micro["x_expert"].to_numpy())
    n_with_agreements = n_with_offers = 0
    for i, row in enumerate(dec.select("agent_id", "day", "seq", "n_agreements_before").iter_rows()):
        live = probes[(row[0], row[1], row[2])]
        for f in fields(Observation):
            np.testing.assert_allclose(
                getattr(obs, f.name)[i],
                getattr(live["obs"], f.name)[0],
                atol=1e-6,
                err_msg=f"{f.name} at {row}",
            )
        np.testing.assert_allclose(xs[i], live["x_static"][0], atol=1e-6, err_msg=f"x_static at {row}")
        np.testing.assert_allclose(xt[i], live["x_temporal"][0], atol=1e-6, err_msg=f"x_temporal at {row}")
        np.testing.assert_allclose(limits.q_safe_buy[i], live["q_safe_buy"][0], atol=1e-6)
        np.testing.assert_allclose(limits.q_safe_sell[i], live["q_safe_sell"][0], atol=1e-6)
        np.testing.assert_allclose(limits.b_free[i], live["b_free"][0], atol=1e-6)
        assert (mask[i] == live["mask"][0]).all()
        np.testing.assert_allclose([base.q[i], base.delta[i], base.p[i]], live["base"], atol=1e-6)
        np.testing.assert_allclose(xe[i], live["x_expert"][0], atol=1e-5, err_msg=f"x_expert at {row}")
        n_with_agreements += row[3] > 0
        n_with_offers += obs.offers_buy_q[i].sum() + obs.offers_sell_q[i].sum() > 0
    # the comparison exercised the intra-day parts of the state, not only day-start copies
    assert n_with_agreements > 20 and n_with_offers > 20
    # and the expert inputs vary (needs, commitments by δ, offers on the table are all exercised)
    moving = [n for n, sd in zip(EXPERT_FEATURE_NAMES, xe.std(0), strict=True) if sd > 0]
    assert {"penguin_buy_need", "role_need", "inbound_d1", "sellable_d0", "table_role_q"} <= set(moving)


def test_micro_samples_never_contain_their_own_counter_offer(probed_world) -> None:
    tables, _ = probed_world
    micro = build_micro(PartitionTables(path=Path("."), **tables))
    assert micro.height == tables["decisions"].height
    assert (micro["hist_last_event"] < micro["own_event"]).all()
    # the offer being answered is the newest history entry (sender = partner)
    answered = micro.filter(pl.col("has_offer"))
    hist = np.stack(answered["hist"].to_numpy()).reshape(answered.height, -1, 4)
    last = hist[np.arange(answered.height), -1]
    assert (last[:, 3] == 0).all()
    np.testing.assert_allclose(
        last[:, 0] * answered["n_lines"].to_numpy(), answered["recv_q"].to_numpy(), atol=1e-4
    )


OFFER_FIELDS = ("offers_buy_q", "offers_buy_value", "offers_sell_q", "offers_sell_value")
LITA = "hrlxf_core.agent.LitaAgentHRL"


@pytest.fixture(scope="module")
def lita_world(tmp_path_factory: pytest.TempPathFactory):
    """A tracked LitaAgentHRL (heuristic mode) at both levels of a tiny real world; at every
    round it plans, the table (the observation's offers) and each thread's encoded history it
    planned with are kept by (agent, day, partner, round)."""
    import hrlxf_core.agent as agent_mod
    from hrlxf_core.l1_safety import market_price

    tmp = tmp_path_factory.mktemp("lita-parity")
    apply_sandbox_env(tmp)
    live: dict[tuple[str, int, str, int], dict[str, Any]] = {}
    real = agent_mod.plan_round
    calls = [0]

    def recording(stack, obs, goal, my_id, inputs, ledger):
        day = int(obs.day[0])
        calls[0] += 1
        for x in inputs:
            market = float(market_price(obs, thread_from_nmi(x.nmi, my_id).is_buyer)[0])
            hist, n = ledger.get(x.nid, agent_mod.ThreadHistory()).features(
                float(obs.n_lines[0]), market, day
            )
            live[(my_id, day, x.nid, x.round)] = {
                "hist": hist,
                "hist_len": n,
                "call": calls[0],  # one planning call: the threads planned on one table
                **{f: getattr(obs, f)[0].copy() for f in OFFER_FIELDS},
            }
        return real(stack, obs, goal, my_id, inputs, ledger)

    agent_mod.plan_round = recording
    penguin, as0, filler = (KNOWN_AGENTS[n] for n in ("PenguinAgent", "AS0", "RandomStdAgent"))
    spec = WorldSpec(
        world_id="lita-parity-w0",
        index=0,
        seed=7,
        n_steps=10,
        n_processes=2,
        agent_paths=(LITA, penguin, filler, filler, LITA, as0, filler, filler),
        agent_levels=(0, 0, 0, 0, 1, 1, 1, 1),
        competitor=(True, True, False, False, True, True, False, False),
    )
    try:
        out = run_world(spec, "lita-parity", tmp / "log", tracked=True)
    finally:
        agent_mod.plan_round = real
    names = ("worlds", "day_states", "negotiations", "decisions", "contracts")
    return PartitionTables(path=Path("."), **{k: out.tables[k] for k in names}), live


def test_a_tracked_lita_agent_plans_with_the_history_the_offline_rebuild_gives(lita_world) -> None:
    """Every decision of the live agent: the encoded offer history it planned with equals the
    micro sample's (one encoder, l3_contract.encode_history; only offers that were sent)."""
    pt, live = lita_world
    assert pt.worlds["recorder_errors"][0] == 0, pt.worlds["recorder_error"][0]
    micro = build_micro(pt).with_row_index("i").filter(pl.col("agent_type") == LITA)
    dec = pt.decisions.filter(pl.col("agent_type") == LITA).sort("agent_id", "day", "seq")
    assert micro.height == dec.height > 100
    n_long = 0
    for row, m in zip(dec.iter_rows(named=True), micro.iter_rows(named=True), strict=True):
        got = live[(row["agent_id"], row["day"], row["partner_id"], row["round"])]
        where = f"{row['agent_id']} day {row['day']} seq {row['seq']}"
        assert got["hist_len"] == m["hist_len"], where
        np.testing.assert_allclose(got["hist"], np.asarray(m["hist"]), atol=1e-6, err_msg=where)
        n_long += m["hist_len"] >= 3
    assert n_long > 20  # the threads went several offers deep, own offers included


def _table_arrays(table: dict[str, dict[str, Any]], day: int) -> dict[str, np.ndarray]:
    from hrlxf_core.offer_table import TableOffer, offers_arrays

    offers = [TableOffer(r["is_buyer"], r["recv_t"] - day, r["recv_q"], r["recv_p"]) for r in table.values()]
    return {f: v[0] for f, v in offers_arrays(offers).items()}


def test_a_tracked_lita_agent_plans_with_the_table_the_offline_rebuild_gives(lita_world) -> None:
    """The offers on the table the live agent planned with equal the offline rebuild's at the
    first recorded decision of each of its planning calls (a round, or the part of it whose
    offers had arrived). At a later decision of the same call the offline table has moved on by
    exactly what was recorded since: the offers received at the call's earlier decisions, and the
    threads that ended meanwhile. The sync agent plans the whole call on one table, while the
    offline rule applies every earlier decision (right for the sequential experts); the check
    replays those events on the live table and requires the offline value exactly."""
    pt, live = lita_world
    dec, obs, _ = decision_threads(pt)
    dec = dec.with_row_index("i").filter(pl.col("agent_type") == LITA).sort("agent_id", "day", "seq")
    keys = dec.select("agent_id", "day", "partner_id", "round").iter_rows()
    dec = dec.with_columns(pl.Series("call", [live[k]["call"] for k in keys]))
    ended = {
        (a, n): e for a, n, e in pt.negotiations.select("agent_id", "negotiation_id", "ended_seq").iter_rows()
    }
    n_calls = n_moved = 0
    for (aid, day), rows in dec.group_by("agent_id", "day", maintain_order=True):
        rows = rows.sort("seq").to_dicts()
        table: dict[str, dict[str, Any]] = {}  # negotiation -> its latest offer received, replayed
        call, start, at_start = None, {}, {}
        for row in rows:
            seq = row["seq"]
            for nid in [n for n in table if ended.get((aid, n)) is not None and ended[(aid, n)] <= seq]:
                del table[nid]  # off the table from the decision at which it had ended
            if row["call"] != call:
                call, start = row["call"], _table_arrays(table, day)
                at_start = {f: live[(aid, day, row["partner_id"], row["round"])][f] for f in OFFER_FIELDS}
                n_calls += 1
            now = _table_arrays(table, day)
            for f in OFFER_FIELDS:
                np.testing.assert_allclose(
                    start[f], at_start[f], atol=1e-6, err_msg=f"{f}: {aid} day {day} seq {seq}"
                )
                np.testing.assert_allclose(
                    at_start[f] + now[f] - start[f], getattr(obs, f)[row["i"]], atol=1e-6,
                    err_msg=f"{f} at {aid} day {day} seq {seq}",
                )  # fmt: skip
            n_moved += any((now[f] != start[f]).any() for f in OFFER_FIELDS)
            if row["recv_q"] is not None:
                table[row["negotiation_id"]] = row
    assert n_calls > 50 and n_moved > 10
