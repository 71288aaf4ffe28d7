"""The decision recorder against the world's own records, on real tiny SCML std worlds.

One module-scoped set of tracked worlds puts every roster agent at every production level once
(first level: seller only, middle: both roles, last: buyer only). The recorded tables are then
compared with what the world itself kept (``saved_contracts``, ``saved_negotiations``): exact
contract sets and ids, the exact offer sequence of every negotiation, agreements and round
counts, and the day-start commitment vectors. Same-seed runs with and without tracking are
compared in fresh interpreters (PYTHONHASHSEED fixed) so the recorder provably changes nothing.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from negmas.helpers import get_class, get_full_type_name
from negmas.helpers import types as negmas_types

from hrlxf_core.constants import N_OFFSETS
from hrlxf_core.sim.roster import (
    FILLER_AGENTS,
    KNOWN_AGENTS,
    REFUSED_AGENTS,
    AgentSpec,
    RosterError,
    load_class,
    resolve_agent,
    resolve_roster,
)
from hrlxf_core.sim.tracked import (
    ACTIONS,
    RecorderMixin,
    _path_from_alias,
    expert_path_of,
    tracked_class,
    tracked_class_path,
)
from hrlxf_core.sim.world_run import apply_sandbox_env, run_world, sandbox_env
from hrlxf_core.sim.world_spec import WorldSpec

N_STEPS = 8
N_LEVELS = 3
N_ROUNDS = 20  # neg_n_steps of anac2024_std worlds (ANAC_STD_WORLD_PARAMS)
ROSTER = list(KNOWN_AGENTS)  # 18 agents: 2024-2026 finalists, PenguinAgent, the fillers
FILLERS = [KNOWN_AGENTS[n] for n in FILLER_AGENTS]
SYSTEM_AGENTS = ("SELLER", "BUYER")


def _rotation_specs(prefix: str, rotations: range) -> list[WorldSpec]:
    """Worlds of 3 levels x 4 factories; each world tracks 6 roster agents, two per level, beside
    two untracked fillers per level.

    Rotation ``r`` shifts the agents one level, so over rotations 0..2 every roster agent plays
    the first level (seller only), the middle one (buyer and seller) and the last (buyer only).
    """
    specs = []
    per_world = 2 * N_LEVELS
    for r in rotations:
        for w in range(len(ROSTER) // per_world):
            group = ROSTER[per_world * w : per_world * (w + 1)]
            pairs = [group[:N_LEVELS], group[N_LEVELS:]]  # one agent of each per level
            by_level = [p[-r:] + p[:-r] if r else p for p in pairs]
            paths, levels, comp = [], [], []
            for level in range(N_LEVELS):
                for half in by_level:
                    paths.append(KNOWN_AGENTS[half[level]])
                    levels.append(level)
                    comp.append(True)
                for j in range(2):
                    paths.append(FILLERS[(w + j + level) % len(FILLERS)])
                    levels.append(level)
                    comp.append(False)
            specs.append(
                WorldSpec(
                    world_id=f"{prefix}-r{r}-w{w}",
                    index=len(specs),
                    seed=7919 * (r + 1) + 104729 * w,
                    n_steps=N_STEPS,
                    n_processes=N_LEVELS,
                    agent_paths=tuple(paths),
                    agent_levels=tuple(levels),
                    competitor=tuple(comp),
                )
            )
    return specs


@dataclass
class TrackedWorld:
    spec: WorldSpec
    tables: dict[str, pl.DataFrame]
    world: Any

    def rows(self, table: str, agent_id: str) -> list[dict[str, Any]]:
        return self.tables[table].filter(pl.col("agent_id") == agent_id).to_dicts()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """scml/negmas/matplotlib writes go under a temp dir (restored afterwards for other modules)."""
    base = tmp_path_factory.mktemp("tracking_sandbox")
    saved = {k: os.environ.get(k) for k in sandbox_env(base)}
    apply_sandbox_env(base)
    yield base
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def tracked_worlds(sandbox: Path) -> list[TrackedWorld]:
    """Nine tracked worlds: every roster agent tracked once at each of the three levels."""
    out = []
    for spec in _rotation_specs("trk", range(N_LEVELS)):
        res = run_world(
            spec, "tracking-test", log_dir=sandbox / "logs" / spec.world_id, tracked=True, keep_world=True
        )
        out.append(TrackedWorld(spec=spec, tables=res.tables, world=res.world))
    return out


def _agents_of(worlds: list[TrackedWorld]) -> Iterator[tuple[TrackedWorld, str, str]]:
    """(world, agent id, expert class path) of every tracked agent of every world."""
    for tw in worlds:
        row = tw.tables["worlds"].row(0, named=True)
        for aid, path, tracked in zip(row["agent_ids"], row["agent_types"], row["tracked"], strict=True):
            if tracked:
                yield tw, aid, path


def _offer(row: dict[str, Any], prefix: str) -> tuple[int, int, float] | None:
    if row[f"{prefix}_q"] is None:
        assert row[f"{prefix}_t"] is None and row[f"{prefix}_p"] is None, row
        return None
    return (row[f"{prefix}_q"], row[f"{prefix}_t"], row[f"{prefix}_p"])


def _world_contracts(tw: TrackedWorld, aid: str) -> list[dict[str, Any]]:
    """The world's negotiated contracts of agent ``aid`` (exogenous ones have no negotiation)."""
    return [
        c
        for c in tw.world.saved_contracts
        if aid in (c["seller"], c["buyer"]) and c["negotiation_id"] is not None
    ]


# --------------------------------------------------------------------------------------------
# 1. every roster agent, tracked, records a full day-state series and decisions, without errors
# --------------------------------------------------------------------------------------------


def test_every_roster_agent_is_tracked_at_every_level(tracked_worlds: list[TrackedWorld]) -> None:
    seen: Counter[tuple[str, int]] = Counter()
    for tw in tracked_worlds:
        row = tw.tables["worlds"].row(0, named=True)
        assert row["status"] == "ok"
        assert row["recorder_errors"] == 0, row["recorder_error"]
        assert row["recorder_error"] == ""
        # world row: exact expert paths (never the recorder class), tracked flags as the spec says
        assert row["agent_types"] == list(tw.spec.agent_paths)
        assert row["tracked"] == list(tw.spec.competitor)
        assert row["agent_levels"] == list(tw.spec.agent_levels)
        assert row["n_contracts"] == sum(1 for c in tw.world.saved_contracts if c["negotiation_id"])
        for aid, path, tracked in zip(row["agent_ids"], row["agent_types"], row["tracked"], strict=True):
            obj = tw.world.agents[aid]._obj
            assert isinstance(obj, RecorderMixin) is tracked, aid
            assert expert_path_of(type(obj)) == path
            if tracked:
                seen[(path, int(obj.awi.level))] += 1
    assert seen == Counter({(KNOWN_AGENTS[n], lvl): 1 for n in ROSTER for lvl in range(N_LEVELS)})


def test_day_state_for_every_agent_day_and_decisions_for_every_agent(
    tracked_worlds: list[TrackedWorld],
) -> None:
    for tw, aid, path in _agents_of(tracked_worlds):
        states = tw.rows("day_states", aid)
        assert [s["day"] for s in states] == list(range(N_STEPS)), (aid, path)
        for s in states:
            assert s["agent_type"] == path and s["world_id"] == tw.spec.world_id
            assert s["n_steps"] == N_STEPS and s["n_processes"] == N_LEVELS
            assert s["initial_balance"] == pytest.approx(tw.world.initial_balances[aid])
            for col in (
                "supplies_by_offset",
                "sales_by_offset",
                "payables_by_offset",
                "receivables_by_offset",
            ):
                assert len(s[col]) == N_OFFSETS, (col, s)
        assert states[0]["balance"] == pytest.approx(states[0]["initial_balance"])
        decisions = tw.rows("decisions", aid)
        assert decisions, f"{path} ({aid}) made no recorded decision"
        assert all(d["agent_type"] == path for d in decisions)


def test_day_start_commitments_are_the_contracts_of_earlier_days(tracked_worlds: list[TrackedWorld]) -> None:
    """Day-start vectors hold exactly the negotiated contracts concluded on earlier days (none of
    the day's own agreements: no label leak), and the exogenous fields the day's exogenous contracts."""
    for tw, aid, path in _agents_of(tracked_worlds):
        contracts = [c for c in tw.world.saved_contracts if aid in (c["seller"], c["buyer"])]
        for s in tw.rows("day_states", aid):
            day = s["day"]
            n = len(s["supplies_by_offset"])
            want = {k: [0.0] * n for k in ("supplies", "sales", "payables", "receivables")}
            exo = {"input_q": 0.0, "input_v": 0.0, "output_q": 0.0, "output_v": 0.0}
            for c in contracts:
                buying = c["buyer"] == aid
                if c["negotiation_id"] is None:  # exogenous: from SELLER / to BUYER, for today
                    assert (c["seller"] if buying else c["buyer"]) in SYSTEM_AGENTS
                    if c["delivery_time"] == day:
                        side = "input" if buying else "output"
                        exo[f"{side}_q"] += c["quantity"]
                        exo[f"{side}_v"] += c["quantity"] * c["unit_price"]
                    continue
                delta = c["delivery_time"] - day
                if c["concluded_at"] < day and 0 <= delta < n:
                    want["supplies" if buying else "sales"][delta] += c["quantity"]
                    want["payables" if buying else "receivables"][delta] += c["quantity"] * c["unit_price"]
            for k, v in want.items():
                col = f"{k}_by_offset"
                assert s[col] == pytest.approx(v), (path, aid, day, col)
            assert s["exo_input_quantity"] == exo["input_q"], (path, aid, day)
            assert s["exo_input_price_total"] == pytest.approx(exo["input_v"]), (path, aid, day)
            assert s["exo_output_quantity"] == exo["output_q"], (path, aid, day)
            assert s["exo_output_price_total"] == pytest.approx(exo["output_v"]), (path, aid, day)


def test_decision_rows_are_well_formed(tracked_worlds: list[TrackedWorld]) -> None:
    for tw, aid, path in _agents_of(tracked_worlds):
        decisions = tw.rows("decisions", aid)
        by_day: dict[int, list[int]] = {}
        by_neg: dict[str, list[dict[str, Any]]] = {}
        for d in decisions:
            by_day.setdefault(d["day"], []).append(d["seq"])
            by_neg.setdefault(d["negotiation_id"], []).append(d)
            recv, sent, action = _offer(d, "recv"), _offer(d, "sent"), d["action"]
            assert action in ACTIONS, d
            if action == "PROPOSE":
                assert recv is None and sent is not None, d
            elif action == "REJECT":
                assert recv is not None and sent is not None, d
            elif action == "ACCEPT":
                assert recv is not None and sent is None, d
            else:  # END: by the opener (no offer received) or instead of a counter-offer
                assert sent is None, d
            assert 0 <= d["round"] < N_ROUNDS and 0.0 <= d["relative_time"] <= 1.0, d
        for day, seqs in by_day.items():
            assert seqs == list(range(len(seqs))), (path, aid, day)
        for nid, rows in by_neg.items():
            rounds = [r["round"] for r in rows]
            assert rounds == sorted(set(rounds)), (path, nid, rounds)  # one decision per round, in order
            terminal = [i for i, r in enumerate(rows) if r["action"] in ("ACCEPT", "END")]
            assert terminal in ([], [len(rows) - 1]), (path, nid)  # nothing after ACCEPT / END


# --------------------------------------------------------------------------------------------
# 2. recorded contracts == the world's contracts of that agent
# --------------------------------------------------------------------------------------------


def test_recorded_contracts_equal_the_worlds(tracked_worlds: list[TrackedWorld]) -> None:
    n_total = 0
    for tw, aid, path in _agents_of(tracked_worlds):
        rec = tw.rows("contracts", aid)
        world = _world_contracts(tw, aid)
        n_total += len(world)

        assert Counter(
            (r["quantity"], r["delivery_day"], r["unit_price"], r["partner_id"], r["is_buyer"]) for r in rec
        ) == Counter(
            (c["quantity"], c["delivery_time"], float(c["unit_price"]), c["seller"], True)
            if c["buyer"] == aid
            else (c["quantity"], c["delivery_time"], float(c["unit_price"]), c["buyer"], False)
            for c in world
        ), (path, aid)
        assert sorted(r["contract_id"] for r in rec) == sorted(c["id"] for c in world), (path, aid)
        by_id = {c["id"]: c for c in world}
        for r in rec:
            c = by_id[r["contract_id"]]
            assert r["negotiation_id"] == c["negotiation_id"]
            assert r["day"] == c["concluded_at"]
            assert r["signed_at"] == c["signed_at"]
            assert r["executed_at"] == c["executed_at"] and r["nullified_at"] == c["nullified_at"]
    assert n_total > 0


def test_agreement_positions_among_the_days_decisions(tracked_worlds: list[TrackedWorld]) -> None:
    """``n_agreements_before`` of a decision counts exactly the day's earlier agreements, so the
    offline state rebuild (day-start state + earlier agreements) sees what the agent saw."""
    for tw, aid, path in _agents_of(tracked_worlds):
        contracts = tw.rows("contracts", aid)
        for day in range(N_STEPS):
            todays = [c for c in contracts if c["day"] == day]
            assert [c["agreement_seq"] for c in todays] == list(range(len(todays))), (path, day)
            before = [c["decisions_before"] for c in todays]
            assert before == sorted(before), (path, day)
            for d in (d for d in tw.rows("decisions", aid) if d["day"] == day):
                n_before = sum(1 for c in todays if c["decisions_before"] <= d["seq"])
                assert d["n_agreements_before"] == n_before, (path, aid, day, d["seq"])


# --------------------------------------------------------------------------------------------
# 3. recorded negotiations and offers == the world's record of those negotiations
# --------------------------------------------------------------------------------------------


def test_recorded_negotiations_equal_the_worlds(tracked_worlds: list[TrackedWorld]) -> None:
    statuses: Counter[str] = Counter()
    for tw, aid, path in _agents_of(tracked_worlds):
        world_negs = {n["id"]: n for n in tw.world.saved_negotiations if aid in n["partners"]}
        rec = {r["negotiation_id"]: r for r in tw.rows("negotiations", aid)}
        assert set(rec) == set(world_negs), (path, aid)  # every negotiation, none invented
        contract_of = {c["negotiation_id"]: c["id"] for c in _world_contracts(tw, aid)}
        for nid, r in rec.items():
            n = world_negs[nid]
            statuses[r["status"]] += 1
            assert r["partner_id"] == next(p for p in n["partners"] if p != aid)
            assert r["is_buyer"] == (n["buyer"] == aid) and (n["seller"] == aid) != r["is_buyer"]
            assert r["day"] == n["requested_at"] == n["sim_step"]
            assert r["product"] == n["product"]
            assert n["issues"] == [
                f"quantity: ({r['q_min']}, {r['q_max']})",
                f"time: ({r['t_min']}, {r['t_max']})",
                f"unit_price: ({r['p_min']:.0f}, {r['p_max']:.0f})",
            ]
            assert r["rounds"] == n["step"] == len(n["history"]), (path, nid)
            assert 1 <= r["rounds"] <= N_ROUNDS
            if n["final_status"] == "succeeded":
                assert r["status"] == "agreement"
                assert (r["agreement_q"], r["agreement_t"], r["agreement_p"]) == tuple(n["agreement_neg"])
                assert r["contract_id"] == contract_of[nid]
            else:
                assert n["final_status"] == "failed" and r["status"] == "failed", (
                    path,
                    nid,
                    n["final_status"],
                )
                assert r["agreement_q"] is None and r["contract_id"] is None
                assert nid not in contract_of
    assert statuses["agreement"] > 0 and statuses["failed"] > 0


def test_recorded_offers_equal_the_worlds(tracked_worlds: list[TrackedWorld]) -> None:
    """For every tracked agent and negotiation: the offers it sent are, in order, the world's
    offers of that agent; the offers it received are, in order, its partner's offers (all but
    possibly the last one, left unanswered when the negotiation timed out); each decision
    happened in the round the world put the offer in; the agreement is the last offer accepted."""
    n_offers = 0
    for tw, aid, path in _agents_of(tracked_worlds):
        world_negs = {n["id"]: n for n in tw.world.saved_negotiations if aid in n["partners"]}
        decisions: dict[str, list[dict[str, Any]]] = {nid: [] for nid in world_negs}
        for d in sorted(tw.rows("decisions", aid), key=lambda d: (d["day"], d["seq"])):
            decisions[d["negotiation_id"]].append(d)
        for nid, rows in decisions.items():
            n = world_negs[nid]
            partner = next(p for p in n["partners"] if p != aid)
            assert all(r["partner_id"] == partner and r["day"] == n["sim_step"] for r in rows)
            sent = [_offer(r, "sent") for r in rows if r["sent_q"] is not None]
            recv = [_offer(r, "recv") for r in rows if r["recv_q"] is not None]
            mine = [tuple(o) for o in n["offers"][aid]]
            theirs = [tuple(o) for o in n["offers"][partner]]
            assert sent == mine, (path, aid, nid)
            assert recv == theirs[: len(recv)] and len(recv) >= len(theirs) - 1, (path, aid, nid)
            if len(recv) < len(theirs):
                assert n["timedout"], (path, nid)
            n_offers += len(sent)
            # the round of each sent offer is the round the world recorded it in
            # (the history names negotiators, and SCML names an agent's negotiator after its partner)
            offer_round = [h["step"] for h in n["history"] for who, _ in h["new_offers"] if who == partner]
            assert [r["round"] for r in rows if r["sent_q"] is not None] == offer_round, (path, nid)
            if n["final_status"] == "succeeded":
                agreement = tuple(n["agreement_neg"])
                last = rows[-1] if rows else None
                if last is not None and last["action"] == "ACCEPT":
                    assert _offer(last, "recv") == agreement, (path, nid)
                else:  # the partner accepted this agent's last offer
                    assert sent and sent[-1] == agreement, (path, nid)
            elif rows and rows[-1]["action"] == "END":
                assert n["broken"], (path, nid)
    assert n_offers > 0


# --------------------------------------------------------------------------------------------
# 4. same seed with and without tracking: the very same world
# --------------------------------------------------------------------------------------------

_RUN_SPECS = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from hrlxf_core.sim.world_run import apply_sandbox_env, run_world
    from hrlxf_core.sim.world_spec import WorldSpec

    specs_file, tracked, base, out_file = sys.argv[1], sys.argv[2] == "1", Path(sys.argv[3]), sys.argv[4]
    apply_sandbox_env(base)
    result = {}
    for line in Path(specs_file).read_text().splitlines():
        spec = WorldSpec.from_json(line)
        res = run_world(spec, "det", log_dir=base / spec.world_id, tracked=tracked, keep_world=True)
        w = res.world
        row = res.tables["worlds"].row(0, named=True)
        contracts = sorted(
            [c["concluded_at"], c["seller"], c["buyer"], int(c["quantity"]), int(c["delivery_time"]),
             float(c["unit_price"]), c["negotiation_id"] is not None]
            for c in w.saved_contracts
        )
        negotiations = sorted(
            [n["sim_step"], n["buyer"], n["seller"], n["final_status"], n["step"],
             {k: [list(o) for o in v] for k, v in n["offers"].items()}]
            for n in w.saved_negotiations
        )
        result[spec.world_id] = {
            "agent_ids": row["agent_ids"], "tracked": row["tracked"], "final_balances": row["final_balances"],
            "contracts": contracts, "negotiations": negotiations, "n_decisions": res.tables["decisions"].height,
        }
    Path(out_file).write_text(json.dumps(result))
    """
)


@pytest.mark.slow  # long (the determinism tests cover reruns; bench/collect.py measures tracked vs untracked)
def test_same_seed_with_and_without_tracking_gives_the_same_world(tmp_path: Path) -> None:
    """Each run in a fresh interpreter with PYTHONHASHSEED fixed: scml worlds depend on the hash
    seed (set order), so two processes with different hash seeds do not agree even untracked."""
    specs = _rotation_specs("det", range(1))  # all 18 roster agents, tracked or not
    specs_file = tmp_path / "specs.jsonl"
    specs_file.write_text("\n".join(s.to_json() for s in specs))
    env = {**os.environ, "PYTHONHASHSEED": "0", **sandbox_env(tmp_path / "sandbox")}
    procs = {}
    for flag in ("1", "0"):
        out = tmp_path / f"out{flag}.json"
        cmd = [
            sys.executable,
            "-c",
            _RUN_SPECS,
            str(specs_file),
            flag,
            str(tmp_path / f"run{flag}"),
            str(out),
        ]
        procs[flag] = (subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True), out)
    results = {}
    for flag, (proc, out) in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        results[flag] = json.loads(out.read_text())
    tracked, untracked = results["1"], results["0"]
    assert set(tracked) == set(untracked) == {s.world_id for s in specs}
    for wid in tracked:
        t, u = tracked[wid], untracked[wid]
        assert any(t["tracked"]) and not any(u["tracked"])
        assert t["n_decisions"] > 0 and u["n_decisions"] == 0
        assert t["agent_ids"] == u["agent_ids"], wid  # the tracked class keeps the expert's name
        assert any(c[-1] for c in t["contracts"]), wid  # some negotiated contracts to compare
        assert t["contracts"] == u["contracts"], wid
        assert t["negotiations"] == u["negotiations"], wid
        assert t["final_balances"] == u["final_balances"], wid


# --------------------------------------------------------------------------------------------
# 4b. L1's production model is the engine's, in real worlds, at every level
# --------------------------------------------------------------------------------------------
def test_production_model_equals_what_the_world_produced(tracked_worlds: list[TrackedWorld]) -> None:
    """For every tracked agent-day: the day-start observation with all the contracts finally due
    that day (those signed on the day included) gives ``production_plan``'s output for δ 0; it
    must equal the world's own production (productivity × n_lines, from the world's stats), and
    the model's stock for the next day must equal the next day-start input inventory. Days the
    agent or a partner is bankrupt (the world nullifies their contracts) are left out and counted."""

    from hrlxf_core.datasets.offline_obs import observation_from_day_states
    from hrlxf_core.state import production_plan

    checked, by_level, skipped = 0, Counter(), 0
    for tw in tracked_worlds:
        stats = tw.world.stats
        for aid in tw.tables["day_states"]["agent_id"].unique().to_list():
            ds = tw.tables["day_states"].filter(pl.col("agent_id") == aid).sort("day")
            ct = tw.tables["contracts"].filter(pl.col("agent_id") == aid)
            obs = observation_from_day_states(ds)
            # everything due on the day itself, including what was signed during the day
            for i, day in enumerate(ds["day"].to_list()):
                due = ct.filter(pl.col("delivery_day") == day)
                obs.supplies[i, 0] = float(due.filter(pl.col("is_buyer"))["quantity"].sum())
                obs.sales[i, 0] = float(due.filter(~pl.col("is_buyer"))["quantity"].sum())
            made, stock = production_plan(obs)
            n_lines = float(ds["n_lines"][0])
            partners = set(ct["partner_id"].to_list())
            inv = ds["inventory_input"].to_numpy()
            for i, day in enumerate(ds["day"].to_list()):
                if any(stats.get(f"bankrupt_{p}", [False] * (day + 1))[day] for p in partners | {aid}):
                    skipped += 1
                    continue
                world_made = stats[f"productivity_{aid}"][day] * n_lines
                assert made[i, 0] == pytest.approx(world_made), (tw.spec.world_id, aid, day)
                if i + 1 < len(inv):
                    assert stock[i, 1] == pytest.approx(inv[i + 1]), (tw.spec.world_id, aid, day)
                checked += 1
                by_level[int(ds["level"][i])] += 1
    assert set(by_level) == set(range(N_LEVELS)) and min(by_level.values()) > 20, by_level
    assert skipped < checked, (skipped, checked)  # tiny worlds of random fillers go bankrupt often


# --------------------------------------------------------------------------------------------
# 5. tracked classes are importable by full name and keep the expert's name
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ROSTER)
def test_tracked_class_is_importable_by_full_name(name: str) -> None:
    path = KNOWN_AGENTS[name]
    expert = load_class(path)
    cls = tracked_class(path)
    assert tracked_class(expert) is cls and tracked_class(cls) is cls
    assert issubclass(cls, expert) and issubclass(cls, RecorderMixin)
    assert type(cls) is type(expert)  # same metaclass (ABCMeta for most experts)
    assert cls.__name__ == expert.__name__ == path.rpartition(".")[2]  # same agent ids as the expert
    assert cls.__module__ == "hrlxf_core.sim.tracked"
    assert expert_path_of(cls) == path and expert_path_of(expert) == path
    assert get_class(tracked_class_path(path)) is cls
    assert get_class(get_full_type_name(cls)) is cls  # negmas' own name for the type
    assert pickle.loads(pickle.dumps(cls)) is cls
    # the recorder wraps the most-derived propose/respond
    assert cls.propose is RecorderMixin.propose and cls.respond is RecorderMixin.respond


def test_tracked_classes_rebuild_in_a_fresh_process() -> None:
    """A worker process (empty registry) rebuilds every tracked class from its name or pickle."""
    paths = [KNOWN_AGENTS[n] for n in ROSTER]
    blobs = [pickle.dumps(tracked_class(p)).hex() for p in paths]
    code = textwrap.dedent(
        """
        import json, pickle, sys
        from negmas.helpers import get_class
        from hrlxf_core.sim.tracked import RecorderMixin, expert_path_of, tracked_class_path
        paths, blobs = json.loads(sys.stdin.read())
        for path, blob in zip(paths, blobs):
            cls = pickle.loads(bytes.fromhex(blob))
            assert cls is get_class(tracked_class_path(path)), path
            assert issubclass(cls, RecorderMixin) and expert_path_of(cls) == path, path
            assert cls.__name__ == path.rsplit(".", 1)[1] and cls.__module__ == "hrlxf_core.sim.tracked"
        print("ok", len(paths))
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps([paths, blobs]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split() == ["ok", str(len(paths))]


_IDENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(_IDENT, min_size=2, max_size=6))
def test_tracked_alias_round_trips_and_survives_negmas_name_mangling(parts: list[str]) -> None:
    """negmas' get_class pascal-cases the class name it is given; the alias must come through
    unchanged and decode to the exact path (any identifiers, '__' and '_U'/'_D' included)."""
    path = ".".join(parts)
    module, _, alias = tracked_class_path(path).rpartition(".")
    assert module == "hrlxf_core.sim.tracked"
    assert alias.isidentifier() and alias.startswith("Tracked_D")
    assert negmas_types.stringcase.pascalcase(alias) == alias  # what get_class does to it
    assert _path_from_alias(alias) == path


# --------------------------------------------------------------------------------------------
# 6. the roster
# --------------------------------------------------------------------------------------------


def test_known_agent_paths_are_exact() -> None:
    from scml_agents import get_agents

    for name, path in KNOWN_AGENTS.items():
        cls = load_class(path)
        assert f"{cls.__module__}.{cls.__qualname__}" == path
        assert cls.__name__ == name or (name, cls.__name__) == ("HeyStd", "Std")  # team 21800's class
        assert resolve_agent(name) == AgentSpec(name=name, class_path=path)
        assert resolve_agent(path) == AgentSpec(name=name, class_path=path)  # full path -> short name
    # the 2026 std finalists, as scml-agents lists them, are all on the roster
    finalists = set(get_agents(2026, track="std", finalists_only=True, as_class=False))
    assert finalists and finalists <= set(KNOWN_AGENTS.values())


def test_unknown_name_lists_the_known_names() -> None:
    with pytest.raises(RosterError) as exc:
        resolve_agent("PenguinAgnet")
    msg = str(exc.value)
    assert "unknown agent 'PenguinAgnet'" in msg
    for name in KNOWN_AGENTS:
        assert name in msg
    assert "DecentralizingAgent" in msg  # the refused ones are named too
    # no prefix matching: a prefix of a known name is unknown, not a guess
    with pytest.raises(RosterError, match="unknown agent"):
        resolve_agent("Penguin")


@pytest.mark.parametrize("key", ["DecentralizingAgent", REFUSED_AGENTS["DecentralizingAgent"][0]])
def test_decentralizing_agent_is_refused_with_its_reason(key: str) -> None:
    with pytest.raises(RosterError) as exc:
        resolve_agent(key)
    msg = str(exc.value)
    assert "refused for the std track" in msg
    assert REFUSED_AGENTS["DecentralizingAgent"][1] in msg
    with pytest.raises(RosterError):
        resolve_roster(["PenguinAgent", key])


def test_full_path_of_a_std_agent_outside_the_roster_is_accepted() -> None:
    from scml.std.agents import StdDoNothingAgent

    path = f"{StdDoNothingAgent.__module__}.{StdDoNothingAgent.__qualname__}"
    assert resolve_agent(path) == AgentSpec(name=path, class_path=path)
    other = "scml_agents.scml2024.standard.team_193.matching_pennies.MatchingPennies"
    assert resolve_agent(f"  {other} ") == AgentSpec(name=other, class_path=other)


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("collections.OrderedDict", "not a std-track agent class"),
        ("hrlxf_core.sim.roster.resolve_agent", "not a std-track agent class"),
        ("scml.scml2020.agents.BuyCheapSellExpensiveAgent", "old-game"),
        ("no_such_package.agents.Agent", "cannot import module"),
        ("scml.std.agents.NoSuchAgent", "has no class"),
    ],
)
def test_non_std_agent_paths_are_refused(path: str, why: str) -> None:
    with pytest.raises(RosterError, match=why):
        resolve_agent(path)


def test_resolve_roster_keeps_order_drops_duplicates_and_refuses_empty() -> None:
    specs = resolve_roster(["AS0", "PenguinAgent", KNOWN_AGENTS["AS0"], "AS0"])
    assert [s.name for s in specs] == ["AS0", "PenguinAgent"]
    with pytest.raises(RosterError, match="empty"):
        resolve_roster([])
