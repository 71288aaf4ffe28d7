"""World specifications drawn like ``anac2024_std`` worlds, and building a world from one.

Why our own drawing instead of ``anac2024_std(...)``: negmas' tournament runner has hung forever
when workers died, mutates ``STD_DEFAULT_PARAMS`` in-process, and gives no per-world resume. We
reproduce its world distribution (2-4 production levels, at least 4 factories per level, 10
lines, 20-round negotiations, competitors spread over levels, the rest filled with the std
default agents) and keep one spec per world on disk, so a world can be re-run exactly.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from hrlxf_core.sim.roster import FILLER_AGENTS, KNOWN_AGENTS

#: anac2024_std world parameters (scml.utils: ONESHOT_TIMEOUT, ONESHOT_NEG_TIMEOUT, ...).
ANAC_STD_WORLD_PARAMS: dict[str, Any] = {
    "time_limit": 900,
    "neg_time_limit": 60,
    "neg_hidden_time_limit": 60,
    "neg_n_steps": 20,
    "neg_step_time_limit": 20,
    "n_lines": 10,
}


@dataclass(frozen=True)
class WorldSpec:
    """Everything needed to rebuild one world exactly (with a fixed seed)."""

    world_id: str
    index: int
    seed: int
    n_steps: int
    n_processes: int
    agent_paths: tuple[str, ...]  # full class path of the agent in each factory slot
    agent_levels: tuple[int, ...]  # production level (process) of each slot
    competitor: tuple[bool, ...]  # True for roster agents (tracked), False for fillers
    world_params: dict[str, Any] = field(default_factory=lambda: dict(ANAC_STD_WORLD_PARAMS))
    #: Constructor keyword arguments of each slot's agent (e.g. LitaAgentHRL's mode), or None.
    agent_params: tuple[dict[str, Any], ...] | None = None
    #: Contender name of each slot (evaluation), or None.
    agent_labels: tuple[str, ...] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> WorldSpec:
        d = json.loads(text)
        for k in ("agent_paths", "agent_levels", "competitor", "agent_params", "agent_labels"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return WorldSpec(**d)


def _split(total: int, parts: int, rng: random.Random) -> list[int]:
    """Split ``total`` items over ``parts`` bins as evenly as possible, remainder placed at random."""
    base = [total // parts] * parts
    for i in rng.sample(range(parts), total % parts):
        base[i] += 1
    return base


def draw_world_specs(
    *,
    run_id: str,
    roster_paths: list[str],
    n_worlds: int,
    n_steps_min: int,
    n_steps_max: int,
    competitors_per_world: int,
    seed: int,
    n_processes_min: int = 2,
    n_processes_max: int = 4,
    min_factories_per_level: int = 4,
    max_factories_per_level: int = 6,
) -> list[WorldSpec]:
    """Draw ``n_worlds`` specs deterministically from ``seed``.

    Competitors of each world are drawn from the roster without replacement (with replacement
    only when the roster is smaller than ``competitors_per_world``) and spread over the levels;
    every level is then filled up to ``min_factories_per_level`` with std default agents.
    """
    if n_steps_min < 5 or n_steps_max < n_steps_min:
        raise ValueError(f"n_steps range [{n_steps_min}, {n_steps_max}] invalid: need 5 <= min <= max")
    if competitors_per_world < 1:
        raise ValueError(f"competitors_per_world must be >= 1, got {competitors_per_world}")
    if not roster_paths:
        raise ValueError("roster is empty")
    rng = random.Random(f"hrlxf-worlds-{seed}")
    fillers = [KNOWN_AGENTS[n] for n in FILLER_AGENTS]
    specs = []
    for i in range(n_worlds):
        n_steps = rng.randint(n_steps_min, n_steps_max)
        n_proc = rng.randint(n_processes_min, n_processes_max)
        if competitors_per_world <= len(roster_paths):
            comps = rng.sample(roster_paths, competitors_per_world)
        else:
            comps = [rng.choice(roster_paths) for _ in range(competitors_per_world)]
        per_level = _split(len(comps), n_proc, rng)
        paths: list[str] = []
        levels: list[int] = []
        is_comp: list[bool] = []
        it = iter(comps)
        for level, n_c in enumerate(per_level):
            n_f = max(min_factories_per_level - n_c, 0)
            if n_c + n_f > max_factories_per_level and n_f > 1:
                n_f = max(1, min_factories_per_level - n_c)
            for _ in range(n_c):
                paths.append(next(it))
                levels.append(level)
                is_comp.append(True)
            for _ in range(n_f):
                paths.append(rng.choice(fillers))
                levels.append(level)
                is_comp.append(False)
        specs.append(
            WorldSpec(
                world_id=f"{run_id}-w{i:04d}",
                index=i,
                seed=rng.randrange(2**31 - 1),
                n_steps=n_steps,
                n_processes=n_proc,
                agent_paths=tuple(paths),
                agent_levels=tuple(levels),
                competitor=tuple(is_comp),
            )
        )
    return specs
