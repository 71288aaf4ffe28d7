"""The roster: contender names resolved to exact agent classes.

Why a roster at all: agent identity must be exact (full class path), never guessed from a
name prefix, and a user who types ``PenguinAgent`` in the Dagster launchpad must get the 2024
winner and nothing else. Classes outside the roster are accepted by full path when they are
std-track agents; old-game agents are refused with the reason instead of silently producing
a world in which they sign nothing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

#: Known contenders: short name -> full class path (verified with scml-agents 0.5.2 / scml 0.8.4).
KNOWN_AGENTS: dict[str, str] = {
    # 2024 winner
    "PenguinAgent": "scml_agents.scml2024.standard.team_penguin.penguinagent.PenguinAgent",
    # 2025 finalists
    "AS0": "scml_agents.scml2025.standard.team_atsunaga.as0.AS0",
    "XenoSotaAgent": "scml_agents.scml2025.standard.team_253.master_sota_agent.XenoSotaAgent",
    "UltraSuperMiracleSoraFinalAgentZ": "scml_agents.scml2025.standard.team_254.ultra.UltraSuperMiracleSoraFinalAgentZ",
    "PriceTrendStdAgent": "scml_agents.scml2025.standard.team_280.price_trend.PriceTrendStdAgent",
    # 2024 finalists
    "CautiousStdAgent": "scml_agents.scml2024.standard.team_miyajima_std.cautious.CautiousStdAgent",
    "DogAgent": "scml_agents.scml2024.standard.team_181.dogagent.DogAgent",
    "AX": "scml_agents.scml2024.standard.team_178.ax.AX",
    "QuickDecisionAgent": "scml_agents.scml2024.standard.teamyuzuru.quick_decision_agent.QuickDecisionAgent",
    # 2026 finalists (scml-agents 0.5.2: get_agents(2026, track="std", finalists_only=True)); the
    # class of team 21800 is called just ``Std``: its roster name is the team's own, "heystd"
    "TakaLinkAgent": "scml_agents.scml2026.standard.team_21282.taka_link_agent.TakaLinkAgent",
    "COW": "scml_agents.scml2026.standard.team_21303.cow.COW",
    "SBD": "scml_agents.scml2026.standard.team_21650.sbd_agent.SBD",
    "HorizonAwareAgent": "scml_agents.scml2026.standard.team_21653.horizon_aware_agent.HorizonAwareAgent",
    "Rohn": "scml_agents.scml2026.standard.team_21695.rohn.Rohn",
    "HeyStd": "scml_agents.scml2026.standard.team_21800.hi.std.Std",
    # fillers shipped with scml
    "GreedyStdAgent": "scml.std.agents.greedy.GreedyStdAgent",
    "RandomStdAgent": "scml.std.agents.rand.RandomStdAgent",
    "SyncRandomStdAgent": "scml.std.agents.rand.SyncRandomStdAgent",
}

#: The experts whose logs feed training by default: the 2024 winner, the 2025 and the 2026
#: finalists (which of them teach is then decided by outcome, ``outcomes.teacher_weights``).
DEFAULT_EXPERTS: tuple[str, ...] = (
    "PenguinAgent",
    "AS0",
    "XenoSotaAgent",
    "UltraSuperMiracleSoraFinalAgentZ",
    "PriceTrendStdAgent",
    "TakaLinkAgent",
    "COW",
    "SBD",
    "HorizonAwareAgent",
    "Rohn",
    "HeyStd",
)

#: Fillers placed in the non-competitor slots of a world, as anac2024_std does (DefaultAgentsStd).
FILLER_AGENTS: tuple[str, ...] = ("GreedyStdAgent", "RandomStdAgent", "SyncRandomStdAgent")

#: Known but unusable on the std track, with the reason the user sees.
REFUSED_AGENTS: dict[str, tuple[str, str]] = {
    "DecentralizingAgent": (
        "scml.scml2020.agents.decentralizing.DecentralizingAgent",
        "an SCML 2020 (old-game) agent: in a std world it runs but signs no negotiated contract, "
        "so it would add worlds without any expert decision",
    ),
}


class RosterError(ValueError):
    """A contender name or class path that cannot be used on the std track."""


@dataclass(frozen=True)
class AgentSpec:
    """One resolved contender: the name the user gave and the exact class it denotes."""

    name: str
    class_path: str

    def load(self) -> type:
        return load_class(self.class_path)


def load_class(class_path: str) -> type:
    """Import ``module.Class`` and return the class, with an error naming the path on failure."""
    module_name, _, attr = class_path.rpartition(".")
    if not module_name:
        raise RosterError(f"{class_path!r} is not a full class path (expected 'package.module.Class')")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RosterError(
            f"cannot import module {module_name!r} of agent class {class_path!r}: {exc}"
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise RosterError(f"module {module_name!r} has no class {attr!r} (agent {class_path!r})") from exc


def _refusal_for(class_path: str) -> str | None:
    for name, (path, reason) in REFUSED_AGENTS.items():
        if class_path == path or class_path == name:
            return f"{name} ({path}) is refused for the std track: {reason}"
    return None


def _check_std_agent(class_path: str, cls: type) -> None:
    from scml.oneshot.agent import OneShotAgent
    from scml.scml2020.agent import SCML2020Agent

    if isinstance(cls, type) and issubclass(cls, SCML2020Agent):
        raise RosterError(
            f"{class_path} is an SCML 2020 (old-game) agent: it signs no negotiated contract in a std world"
        )
    if not (isinstance(cls, type) and issubclass(cls, OneShotAgent)):
        raise RosterError(
            f"{class_path} is not a std-track agent class (not a subclass of scml OneShotAgent/StdAgent)"
        )


def resolve_agent(name_or_path: str) -> AgentSpec:
    """Resolve a roster name or a full class path to an :class:`AgentSpec`.

    Raises :class:`RosterError` for refused agents, unknown names (listing the known ones) and
    classes that are not std agents.
    """
    key = name_or_path.strip()
    refusal = _refusal_for(key)
    if refusal:
        raise RosterError(refusal)
    if key in KNOWN_AGENTS:
        return AgentSpec(name=key, class_path=KNOWN_AGENTS[key])
    if "." not in key:
        known = ", ".join(sorted(KNOWN_AGENTS))
        refused = ", ".join(sorted(REFUSED_AGENTS))
        raise RosterError(
            f"unknown agent {key!r}. Known agents: {known}. Refused: {refused}. "
            "Any other std agent is accepted by its full class path (package.module.Class)."
        )
    cls = load_class(key)
    _check_std_agent(key, cls)
    short = next((n for n, p in KNOWN_AGENTS.items() if p == key), key)
    return AgentSpec(name=short, class_path=key)


def resolve_roster(names: list[str] | tuple[str, ...]) -> list[AgentSpec]:
    """Resolve a whole roster; duplicates are dropped, order kept; an empty roster is an error."""
    if not names:
        raise RosterError("the roster is empty: name at least one agent")
    seen: dict[str, AgentSpec] = {}
    for n in names:
        spec = resolve_agent(n)
        seen.setdefault(spec.class_path, spec)
    return list(seen.values())
