"""The networks of an online policy and their files.

An online policy is the behaviour-cloned L2 / L3 / L4 (fine-tuned) plus a **day critic** V(s_d):
the expected return of the rest of the world from an agent's day-start state. PPO needs a value
for GAE; BC's L3 value head estimates the AWR return of a *decision*, not of a day, so the
critic is a network of its own (trained from the first rollouts on).

A policy directory holds ``l2.pt``, ``l3.pt``, ``l4.pt`` in the ordinary checkpoint format (so
``LitaAgentHRL`` in neural mode plays it like any BC checkpoint, and a checkpoint of another shape
is refused by the same checks), ``critic.pt`` and ``policy.json`` (how the stochastic policy
samples, and the lineage). It is written in one atomic step: a reader sees all of it or nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hrlxf_core.io import write_dir_atomic
from hrlxf_core.models.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_l2,
    load_l3,
    load_l4,
    load_state_strict,
)
from hrlxf_core.models.common import config_from_dict, mlp
from hrlxf_core.models.schema import jsonable
from hrlxf_core.rl.distributions import StdRule
from hrlxf_core.state import N_STATIC, N_TEMPORAL, K

POLICY_FORMAT = 1
LAYER_FILES = {"l2": "l2.pt", "l3": "l3.pt", "l4": "l4.pt"}
CRITIC_FILE = "critic.pt"
POLICY_FILE = "policy.json"


@dataclass
class CriticConfig:
    hidden: int = 128
    layers: int = 2


class DayCritic(nn.Module):
    """V(s_d) from the day-start state (x_static, x_temporal flattened, x_role): an MLP."""

    def __init__(self, config: CriticConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or CriticConfig()
        self.net = mlp([N_STATIC + K * N_TEMPORAL + 2] + [cfg.hidden] * cfg.layers + [1])

    def forward(self, x_static: torch.Tensor, x_temporal: torch.Tensor, x_role: torch.Tensor) -> torch.Tensor:
        b = x_static.shape[0]
        x = torch.cat([x_static, x_temporal.reshape(b, -1), x_role], dim=1).to(self.net[0].weight.dtype)
        return self.net(x).squeeze(-1)


@dataclass
class Explore:
    """How the stochastic policy samples (``distributions``), and which layers sample: phase A
    samples L4 only (L2 / L3 play their deterministic BC action), phase B samples all three."""

    phase: str = "A"
    residual_std_scale: float = 0.5
    #: floors of the residual's std: [Δq / n_lines, Δp / market] (0.05 = half a unit of 10 lines,
    #: 0.01 = 1 % of the market price)
    residual_std_floor_q: float = 0.05
    residual_std_floor_p: float = 0.01
    goal_std_scale: float = 0.25
    #: floor of the goal's std (goal quantities are days of production, prices ratios to market)
    goal_std_floor: float = 0.02

    def samples(self, layer: str) -> bool:
        return layer == "l4" or self.phase == "B"

    def residual_rule(self) -> StdRule:
        return StdRule(self.residual_std_scale, (self.residual_std_floor_q, self.residual_std_floor_p))

    def goal_rule(self) -> StdRule:
        return StdRule(self.goal_std_scale, (self.goal_std_floor,))


@dataclass
class OnlinePolicy:
    l2: nn.Module
    l3: nn.Module
    l4: nn.Module
    critic: DayCritic
    explore: Explore
    #: the checkpoint dicts the layers came from (config, schema, train_mean, lineage ...): kept
    #: so that a fine-tuned layer is written in exactly the format of its BC checkpoint
    sources: dict[str, dict[str, Any]]

    def layers(self) -> dict[str, nn.Module]:
        return {"l2": self.l2, "l3": self.l3, "l4": self.l4}


def policy_from_checkpoints(
    paths: dict[str, str | Path], explore: Explore, critic_config: CriticConfig | None = None, seed: int = 0
) -> OnlinePolicy:
    """A fresh online policy (in float64, see ``_float32``) from BC checkpoints ``{"l2": path, "l3": path, "l4": path}`` and a new
    critic (initialised from ``seed``)."""
    for k in LAYER_FILES:
        if k not in paths:
            raise ValueError(f"online policy: no {k} checkpoint given (need l2, l3 and l4)")
    l2, c2 = load_l2(Path(paths["l2"]))
    l3, c3 = load_l3(Path(paths["l3"]))
    l4, c4 = load_l4(Path(paths["l4"]))
    for m in (l2, l3, l4):
        m.double()
    gen = torch.random.fork_rng(devices=[])
    with gen:
        torch.manual_seed(seed)
        critic = DayCritic(critic_config).double()
    sources = {}
    for k, c in (("l2", c2), ("l3", c3), ("l4", c4)):
        sources[k] = {**c, "lineage": {**(c.get("lineage") or {}), "bc_checkpoint": str(paths[k])}}
    return OnlinePolicy(l2, l3, l4, critic, explore, sources)


def _float32(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights as the checkpoints store them (float32; the learner computes in float64, and
    every iteration starts from the stored weights, so rollout and learner agree)."""
    return {
        k: (v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()).clone()
        for k, v in model.state_dict().items()
    }


def save_policy(policy: OnlinePolicy, out_dir: Path, info: dict[str, Any]) -> None:
    """Write the policy directory atomically; ``info`` (iteration, metrics, lineage) goes into
    policy.json and into each layer checkpoint's ``online`` field."""
    info = jsonable(info)

    def layer_writer(kind: str) -> Any:
        src = policy.sources[kind]
        model = policy.layers()[kind]
        payload = {
            **src,
            "state_dict": _float32(model),
            "online": info,
        }
        return lambda p: torch.save(payload, p)

    crit = {
        "format": POLICY_FORMAT,
        "config": asdict(policy.critic.config),
        "state_dict": _float32(policy.critic),
    }
    meta = {"format": POLICY_FORMAT, "explore": asdict(policy.explore), **info}
    files = {name: layer_writer(kind) for kind, name in LAYER_FILES.items()}
    files[CRITIC_FILE] = lambda p: torch.save(crit, p)
    files[POLICY_FILE] = lambda p: p.write_text(json.dumps(meta, indent=2, sort_keys=True))
    write_dir_atomic(Path(out_dir), files)


def load_critic(path: Path) -> DayCritic:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable critic ({type(exc).__name__}: {exc})") from exc
    for key in ("format", "config", "state_dict"):
        if key not in ck:
            raise CheckpointError(f"{path}: field {key!r} is missing")
    if ck["format"] != POLICY_FORMAT:
        raise CheckpointError(f"{path}: field 'format' is {ck['format']}, this code reads {POLICY_FORMAT}")
    critic = DayCritic(config_from_dict(CriticConfig, ck["config"]))
    load_state_strict(critic, ck["state_dict"], path)
    return critic.eval()


def load_policy(policy_dir: Path, explore: Explore | None = None) -> OnlinePolicy:
    """A policy directory → OnlinePolicy (layers checked like any checkpoint). ``explore``
    overrides the sampling recorded in policy.json (a new phase)."""
    policy_dir = Path(policy_dir)
    meta_path = policy_dir / POLICY_FILE
    if not meta_path.exists():
        raise CheckpointError(f"{meta_path}: online policy file is missing")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != POLICY_FORMAT:
        raise CheckpointError(
            f"{meta_path}: field 'format' is {meta.get('format')}, this code reads {POLICY_FORMAT}"
        )
    l2, _ = load_l2(policy_dir / LAYER_FILES["l2"])
    l3, _ = load_l3(policy_dir / LAYER_FILES["l3"])
    l4, _ = load_l4(policy_dir / LAYER_FILES["l4"])
    sources = {k: load_checkpoint(policy_dir / f, k) for k, f in LAYER_FILES.items()}
    for src in sources.values():
        src.pop("online", None)
    exp = explore or config_from_dict(Explore, meta["explore"])
    return OnlinePolicy(
        l2.double(), l3.double(), l4.double(), load_critic(policy_dir / CRITIC_FILE).double(), exp, sources
    )


def policy_paths(policy_dir: Path) -> dict[str, str]:
    """The layer checkpoints of a policy directory, as the agent's neural mode takes them."""
    return {k: str(Path(policy_dir) / f) for k, f in LAYER_FILES.items()}
