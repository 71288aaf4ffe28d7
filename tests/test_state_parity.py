"""Parity: the state and L1 quantities computed live inside a real world at each decision of a
tracked expert equal what the offline pipeline rebuilds from the records (DESIGN §2)."""

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
