"""No world lost to one agent's bug (issue 14, item 6), on a real tiny world.

Two tracked agents break from day FAULT_DAY on: RaisingAgent in ``before_step``, and
ProposeRaisingAgent inside ``propose`` (like PriceTrendStdAgent's ``first_proposals`` bug). The
world must finish ``ok``, count each exception against the agent that raised it (and none against
the others), flag that agent's later rows, and the datasets must skip the flagged rows.
"""

from __future__ import annotations

import polars as pl
import pytest

from hrlxf_core.datasets.macro import build_macro
from hrlxf_core.datasets.micro import build_micro
from hrlxf_core.datasets.partition import load_partition
from hrlxf_core.sim.fault_agents import FAULT_DAY, PROPOSE_RAISING, RAISING, fault_status_mismatches
from hrlxf_core.sim.world_run import apply_sandbox_env, run_world
from hrlxf_core.sim.world_spec import WorldSpec

GREEDY = "scml.std.agents.greedy.GreedyStdAgent"
RANDOM = "scml.std.agents.rand.RandomStdAgent"


@pytest.fixture(scope="module")
def faulty_world(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("faults")
    apply_sandbox_env(tmp)
    spec = WorldSpec(
        world_id="faults-w0000",
        index=0,
        seed=4,
        n_steps=7,
        n_processes=2,
        # RaisingAgent last: scml calls before_step in slot order and an exception there ends
        # that loop, so every agent after it would miss its day start (anac2024_std does the same)
        agent_paths=(PROPOSE_RAISING, GREEDY, RANDOM, GREEDY, GREEDY, GREEDY, RANDOM, RAISING),
        agent_levels=(0, 0, 0, 0, 1, 1, 1, 1),
        competitor=(True, True, False, False, True, False, False, True),
    )
    out = run_world(spec, "faults", tmp / "log", tracked=True)
    part = tmp / "part"
    part.mkdir()
    for t, df in out.tables.items():
        df.write_parquet(part / f"{t}.parquet")
    return out.tables, part


def test_the_world_goes_on_and_counts_each_exception_against_its_agent(faulty_world) -> None:
    tables, _ = faulty_world
    w = tables["worlds"].row(0, named=True)
    assert w["status"] == "ok" and w["error"] == ""
    assert fault_status_mismatches(tables["worlds"], [RAISING, PROPOSE_RAISING, GREEDY]) == []
    by_type = {}
    for typ, n, first in zip(
        w["agent_types"], w["agent_exceptions"], w["agent_first_exception"], strict=True
    ):
        by_type.setdefault(typ, []).append((n, first))
    ((n_r, first_r),) = by_type[RAISING]
    ((n_p, first_p),) = by_type[PROPOSE_RAISING]
    assert (
        n_r == 7 - FAULT_DAY and first_r == f"day {FAULT_DAY}: RuntimeError: RaisingAgent: injected failure"
    )
    assert n_p >= 1 and first_p.startswith(f"day {FAULT_DAY}: ValueError: ProposeRaisingAgent")
    assert all(n == 0 for t in (GREEDY, RANDOM) for n, _ in by_type[t])
    # the healthy agents kept trading after the faults
    healthy = tables["contracts"].filter(pl.col("agent_type") == GREEDY)
    assert healthy.filter(pl.col("day") > FAULT_DAY).height > 0


def test_rows_after_an_agents_exception_are_flagged(faulty_world) -> None:
    tables, _ = faulty_world
    ds, dec = tables["day_states"], tables["decisions"]
    for typ in (RAISING, PROPOSE_RAISING):
        mine = ds.filter(pl.col("agent_type") == typ).sort("day")
        # the day state of the fault day is taken before the fault; every later one is flagged
        assert mine["after_exception"].to_list() == [d > FAULT_DAY for d in mine["day"]]
        d = dec.filter(pl.col("agent_type") == typ)
        assert not d.filter(pl.col("day") < FAULT_DAY)["after_exception"].any()
    # ProposeRaisingAgent still answers offers after its proposals broke: those rows are flagged
    late = dec.filter((pl.col("agent_type") == PROPOSE_RAISING) & (pl.col("day") > FAULT_DAY))
    assert late.height > 0 and late["after_exception"].all()
    assert not ds.filter(pl.col("agent_type") == GREEDY)["after_exception"].any()
    assert not dec.filter(pl.col("agent_type") == GREEDY)["after_exception"].any()


def test_datasets_skip_the_flagged_rows(faulty_world) -> None:
    tables, part = faulty_world
    pt = load_partition(part, experts=[RAISING, PROPOSE_RAISING, GREEDY])
    macro, micro = build_macro(pt), build_micro(pt)
    key = ["world_id", "agent_id", "day"]
    flagged_days = pl.concat(
        [t.filter(pl.col("after_exception")).select(key) for t in (tables["day_states"], tables["decisions"])]
    ).unique()
    assert flagged_days.height > 0
    assert macro.join(flagged_days, on=key, how="inner").height == 0
    flagged_dec = tables["decisions"].filter(pl.col("after_exception")).select([*key, "seq"])
    assert micro.join(flagged_dec, on=[*key, "seq"], how="inner").height == 0
    # and nothing else was dropped: every unflagged decision of these experts is a micro sample
    clean = tables["decisions"].filter(~pl.col("after_exception"))
    assert micro.height == clean.height > 0
    clean_days = tables["day_states"].join(flagged_days, on=key, how="anti")
    assert macro.height == clean_days.height > 0
