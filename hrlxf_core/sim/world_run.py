"""Run one world from its spec, in this process, and turn what was recorded into tables.

The collection runner calls :func:`run_world` inside a worker process (one world per process,
so a hang can be killed); tests call it directly to compare the recorder with the world's own
records.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import polars as pl

from hrlxf_core import __version__
from hrlxf_core.constants import RECORD_SCHEMA_VERSION
from hrlxf_core.sim.agent_faults import AgentFaultLedger
from hrlxf_core.sim.determinism import deterministic_clock
from hrlxf_core.sim.records import TABLES, empty_frame, frame
from hrlxf_core.sim.roster import load_class
from hrlxf_core.sim.tracked import RecorderMixin, expert_path_of, tracked_class
from hrlxf_core.sim.world_spec import WorldSpec


def package_versions() -> dict[str, str]:
    return {
        "scml_version": version("scml"),
        "negmas_version": version("negmas"),
        "scml_agents_version": version("scml-agents"),
        "hrlxf_version": __version__,
    }


@dataclass
class WorldOutcome:
    """Tables of one world (keyed by table name) and, when asked for, the world object."""

    tables: dict[str, pl.DataFrame]
    world: Any = None


def world_row(
    spec: WorldSpec, run_id: str, status: str, error: str, wall: float, **extra: Any
) -> dict[str, Any]:
    """The ``worlds`` row of a world; agent columns come from ``extra`` when the world ran."""
    row: dict[str, Any] = {
        "world_id": spec.world_id,
        "run_id": run_id,
        "world_index": spec.index,
        "seed": spec.seed,
        "status": status,
        "error": error,
        "wall_time_s": wall,
        "n_steps": spec.n_steps,
        "n_processes": spec.n_processes,
        "n_agents": len(spec.agent_paths),
        "agent_ids": None,
        "agent_types": list(spec.agent_paths),
        "agent_levels": list(spec.agent_levels),
        "agent_slots": None,
        "tracked": None,
        "initial_balances": None,
        "final_balances": None,
        "scores": None,
        "n_contracts": None,
        "recorder_errors": 0,
        "recorder_error": "",
        "agent_exceptions": None,
        "agent_first_exception": None,
        "world_exceptions": None,
        "spec_json": spec.to_json(),
        "record_schema_version": RECORD_SCHEMA_VERSION,
        **package_versions(),
    }
    row.update(extra)
    return row


def failed_tables(
    spec: WorldSpec, run_id: str, status: str, error: str, wall: float
) -> dict[str, pl.DataFrame]:
    """Tables of a world that failed or timed out: its ``worlds`` row and empty agent tables."""
    tables = {t: empty_frame(t) for t in TABLES}
    tables["worlds"] = frame("worlds", [world_row(spec, run_id, status, error, wall)])
    return tables


def seed_everything(seed: int) -> None:
    """Seed the RNGs scml, negmas and the agents draw from."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))


#: How a world treats exceptions. anac2024_std forwards these four World flags from its keyword
#: arguments, and scml's tournament command sets all four together (``scml tournament2024
#: --ignore-exceptions``). We run every world with all four on: an agent's exception (in its
#: callbacks, or in its negotiators, which aborts that one negotiation) is caught and the world
#: goes on, instead of one agent's bug losing the whole world for every other agent; each one is
#: counted against the agent that raised it (``agent_faults.AgentFaultLedger``, the recorder).
EXCEPTION_POLICY: dict[str, bool] = {
    "ignore_agent_exceptions": True,
    "ignore_negotiation_exceptions": True,
    "ignore_simulation_exceptions": True,
    "ignore_contract_execution_exceptions": True,
}


def build_world(spec: WorldSpec, log_dir: Path, tracked: bool = True) -> Any:
    """Generate and construct the SCML2024StdWorld of ``spec`` (seed applied first), with
    :data:`EXCEPTION_POLICY`."""
    from scml.std import SCML2024StdWorld

    seed_everything(spec.seed)
    types = []
    for path, comp in zip(spec.agent_paths, spec.competitor, strict=True):
        cls = load_class(path)
        types.append(tracked_class(cls) if (tracked and comp) else cls)
    params = None
    if spec.agent_params is not None:
        params = [{"controller_params": dict(p)} if p else {} for p in spec.agent_params]
    cfg = SCML2024StdWorld.generate(
        agent_types=types,
        agent_params=params,
        agent_processes=list(spec.agent_levels),
        n_processes=spec.n_processes,  # must match agent_processes or generation re-samples
        n_steps=spec.n_steps,
        name=spec.world_id,
        random_agent_types=False,
        compact=True,
        no_logs=True,
        log_folder=str(log_dir),
        publish_exogenous_summary=True,
        publish_trading_prices=True,
        **spec.world_params,
    )
    cfg.update(EXCEPTION_POLICY)
    return SCML2024StdWorld(**cfg)


def agent_slots(world: Any, spec: WorldSpec) -> dict[str, int]:
    """World agent id -> factory slot of ``spec``, read from the world just built.

    scml instantiates the factories in ``agent_types`` order and ``join``s them in that order
    (its own profile assignment relies on it), so the i-th non-system agent is slot i. Each
    pairing is checked against the spec (the agent is an instance of the slot's class and sits
    at the slot's level): a world whose agents cannot be matched exactly fails loudly instead
    of scoring the wrong contender (docs/design.md §4: identity is never matched by name)."""
    ids = [aid for aid in world.agents if aid not in ("SELLER", "BUYER")]
    if len(ids) != len(spec.agent_paths):
        raise RuntimeError(
            f"world {spec.world_id}: {len(ids)} factories built for {len(spec.agent_paths)} spec slots"
        )
    slots: dict[str, int] = {}
    for slot, aid in enumerate(ids):
        obj = getattr(world.agents[aid], "_obj", None)
        cls = load_class(spec.agent_paths[slot])
        level = int(world.agent_profiles[aid].level)
        if not isinstance(obj, cls) or level != spec.agent_levels[slot]:
            raise RuntimeError(
                f"world {spec.world_id}: agent {aid} ({type(obj).__name__}, level {level}) does not "
                f"match spec slot {slot} ({spec.agent_paths[slot]}, level {spec.agent_levels[slot]})"
            )
        slots[aid] = slot
    return slots


def exception_summary(world: Any, ledger: AgentFaultLedger, aid: str) -> tuple[int, str]:
    """(number of exceptions the world caught from agent ``aid``, 'day d: Type: message' of the
    first).

    The ledger attributes what the world announces (callbacks it calls, negotiators); one raised
    in ``before_step`` scml files under simulation exceptions, unattributed (and, as in
    anac2024_std, the agents after it miss that day's ``before_step``): a tracked agent's recorder
    notes those on their way out, so they count here too (and in ``world_exceptions``)."""
    events = list(ledger.faults.get(aid, ()))
    obj = getattr(world.agents[aid], "_obj", None)
    if isinstance(obj, RecorderMixin):
        for day, text in obj.hrlxf_records().exceptions:
            lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
            events.append((day, lines[-1] if lines else ""))
    if not events:
        return 0, ""
    day, text = min(events, key=lambda e: e[0])
    return len(events), f"day {day}: {text}"[:500]


def world_exception_count(world: Any) -> int:
    """Exceptions of the simulation itself that the world caught (not attributed to an agent)."""
    return sum(
        len(v)
        for d in (world.simulation_exceptions, world.contract_exceptions, world.mechanism_exceptions)
        for v in d.values()
    )


def _agent_tables(world: Any, spec: WorldSpec) -> tuple[dict[str, list[dict[str, Any]]], int, str]:
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES if t != "worlds"}
    contract_info = {str(c["id"]): c for c in world.saved_contracts}
    errors, first_error = 0, ""
    for aid, adapter in world.agents.items():
        obj = getattr(adapter, "_obj", None)
        if not isinstance(obj, RecorderMixin):
            continue
        rec = obj.hrlxf_records()
        errors += rec.errors
        first_error = first_error or rec.first_error
        key = {"world_id": spec.world_id, "agent_id": aid, "agent_type": expert_path_of(type(obj))}
        rows["day_states"].extend({**key, **r} for r in rec.day_states)
        rows["negotiations"].extend({**key, **r} for r in rec.negotiations.values())
        rows["decisions"].extend({**key, **r} for r in rec.decisions)
        for c in rec.contracts:
            info = contract_info.get(c["contract_id"], {})
            rows["contracts"].append(
                {
                    **key,
                    **c,
                    "signed_at": info.get("signed_at", -1),
                    "executed_at": info.get("executed_at", -1),
                    "nullified_at": info.get("nullified_at", -1),
                }
            )
    return rows, errors, first_error


def run_world(
    spec: WorldSpec, run_id: str, log_dir: Path, tracked: bool = True, keep_world: bool = False
) -> WorldOutcome:
    """Build and run one world, then gather its tables (world row status 'ok').

    The world runs under :func:`~hrlxf_core.sim.determinism.deterministic_clock`, so the same spec
    gives the same contracts and scores however busy the machine is.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with deterministic_clock(spec.seed):
        world = build_world(spec, log_dir, tracked=tracked)
        slots = agent_slots(world, spec)
        ledger = AgentFaultLedger(world)
        world.run()
    wall = time.perf_counter() - t0
    for aid in slots:  # agents that keep data of their own (rollout agents) write it now
        obj = getattr(world.agents[aid], "_obj", None)
        if obj is not None and hasattr(obj, "hrlxf_world_end"):
            obj.hrlxf_world_end()
    agent_rows, errors, first_error = _agent_tables(world, spec)
    ids, types, tracked_flags, init_b, final_b, scores = [], [], [], [], [], []
    n_exc, first_exc = [], []
    world_scores = world.scores()
    for aid in slots:
        adapter = world.agents[aid]
        obj = adapter._obj
        ids.append(aid)
        n, first = exception_summary(world, ledger, aid)
        n_exc.append(n)
        first_exc.append(first)
        types.append(expert_path_of(type(obj)))
        tracked_flags.append(isinstance(obj, RecorderMixin))
        init_b.append(float(world.initial_balances[aid]))
        final_b.append(float(adapter.awi.current_balance))
        scores.append(float(world_scores[aid]))
    n_negotiated = sum(1 for c in world.saved_contracts if c.get("negotiation_id"))
    tables = {
        "worlds": frame(
            "worlds",
            [
                world_row(
                    spec,
                    run_id,
                    "ok",
                    "",
                    wall,
                    agent_ids=ids,
                    agent_types=types,
                    tracked=tracked_flags,
                    initial_balances=init_b,
                    final_balances=final_b,
                    scores=scores,
                    n_contracts=n_negotiated,
                    recorder_errors=errors,
                    recorder_error=first_error,
                    agent_levels=[int(world.agents[a].awi.level) for a in ids],
                    agent_slots=[slots[a] for a in ids],
                    agent_exceptions=n_exc,
                    agent_first_exception=first_exc,
                    world_exceptions=world_exception_count(world) + ledger.unattributed,
                )
            ],
        )
    }
    for t, rows in agent_rows.items():
        tables[t] = frame(t, rows)
    stats = _agent_stats(world, spec, slots)
    if stats:
        tables["agent_stats"] = frame("agent_stats", stats)
    return WorldOutcome(tables=tables, world=world if keep_world else None)


def _agent_stats(world: Any, spec: WorldSpec, slots: dict[str, int]) -> list[dict[str, Any]]:
    """Per labelled contender (evaluation worlds): the world's own shortfall accounting (units
    short and units sold, summed over the days) and the counters of agents that report them
    (``hrlxf_stats()``)."""
    import json

    rows = []
    stats = world.stats
    for aid, slot in slots.items():
        obj = getattr(world.agents[aid], "_obj", None)
        label = spec.agent_labels[slot] if spec.agent_labels and slot < len(spec.agent_labels) else ""
        has_counters = obj is not None and hasattr(obj, "hrlxf_stats")
        if not has_counters and label in ("", "filler"):
            continue
        short = float(sum(stats.get(f"shortfall_quantity_{aid}", [])))
        n_lines = float(world.agent_profiles[aid].n_lines) if aid in world.agent_profiles else 0.0
        made = float(sum(stats.get(f"productivity_{aid}", []))) * n_lines
        counters = obj.hrlxf_stats() if has_counters else {}
        rows.append(
            {
                "world_id": spec.world_id,
                "agent_id": aid,
                "agent_type": expert_path_of(type(obj)) if obj is not None else "",
                "label": label,
                "stats_json": json.dumps({**counters, "shortfall_units": short, "sold_units": made + short}),
            }
        )
    return rows


def sandbox_env(data_dir: Path) -> dict[str, str]:
    """Environment that keeps scml/negmas/matplotlib writes inside the data directory."""
    return {
        "NEGMAS_LOG_BASE": str(data_dir / ".negmas"),
        "MPLCONFIGDIR": str(data_dir / ".mpl"),
        "NEGMAS_DEFAULT_PATH": str(data_dir / ".negmas"),
    }


def apply_sandbox_env(data_dir: Path) -> None:
    for k, v in sandbox_env(data_dir).items():
        os.environ[k] = v
