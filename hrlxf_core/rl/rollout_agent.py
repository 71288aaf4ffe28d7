"""LitaAgentHRL playing the stochastic policy in a real world, recording every decision.

The agent is the ordinary ``LitaAgentHRL`` in neural mode (same state, L1, features, planner);
only its layer stack is wrapped by :class:`SamplingStack`, which samples where the phase says so
(``policy.Explore``) and records, per decision, the network inputs, the sampled pre-clip action
and its log-probabilities, and per day the day-start state, the critic's value and the balance.
When the world ends (``hrlxf_world_end``, called by the world runner) it adds the rewards and
writes one ``.npz`` file atomically.

Reward (stated): r_d = (balance_{d+1} − balance_d) / initial balance, with the balance after the
last day the world's final balance; so a world's rewards sum to final / initial − 1 = its score − 1
(anac2024_std's score is balance / initial balance). Every decision of day d carries r_d and V(s_d).

A round in which any layer fell back (an exception: the L1 stack answered) is not the policy's
action: its records are dropped and counted (``dropped_rounds``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrlxf_core.agent import LitaAgentHRL, Planned
from hrlxf_core.io import atomic_write
from hrlxf_core.l3_contract import OP_OFFER
from hrlxf_core.models.common import config_from_dict
from hrlxf_core.models.l3_inputs import l3_model_inputs
from hrlxf_core.models.l4 import masked_softmax
from hrlxf_core.rl.distributions import (
    categorical_log_prob,
    gaussian_log_prob,
    gaussian_sample,
    gumbel_argmax,
    l2_log_prob,
    plackett_luce_log_prob,
    plackett_luce_sample,
)
from hrlxf_core.rl.policy import CRITIC_FILE, Explore, load_critic, policy_paths
from hrlxf_core.state import Observation, build_state

ROLLOUT_AGENT_PATH = "hrlxf_core.rl.rollout_agent.LitaAgentHRLRollout"


def alpha_of_order(order: np.ndarray) -> np.ndarray:
    """α that the planner sorts into ``order`` (first = largest), distinct values summing to 1."""
    t = len(order)
    alpha = np.empty(t, np.float64)
    alpha[order] = np.arange(t, 0, -1, dtype=np.float64)
    return alpha / alpha.sum()


class Recorder:
    """What one agent saw and did in one world, as lists of arrays (concatenated at the end)."""

    def __init__(self) -> None:
        self.days: dict[str, list[Any]] = {
            k: [] for k in ("day", "balance", "x_static", "x_temporal", "x_role", "goal", "lp_l2", "value")
        }
        self.l3: dict[str, list[Any]] = {}
        self.l4: dict[str, list[Any]] = {
            k: [] for k in ("day_idx", "n_threads", "feats", "glob", "order", "lp")
        }
        self.pending_l3: dict[str, np.ndarray] | None = None
        self.pending_l4: dict[str, Any] | None = None
        self.dropped_rounds = 0

    def day_index(self) -> int:
        return len(self.days["day"]) - 1


class SamplingStack:
    """The neural stack's networks, sampling where ``explore`` says, recording into ``rec``."""

    mode = "neural"

    def __init__(
        self, neural: Any, critic: Any, explore: Explore, rng: np.random.Generator, rec: Recorder
    ) -> None:
        for net in (neural.l2, neural.l3, neural.l4):
            net.double()  # double precision: the learner recomputes the same log-probabilities
        self.nets = neural
        self.critic = critic.double()
        self.explore = explore
        self.rng = rng
        self.rec = rec

    @staticmethod
    def _t(a: np.ndarray, dtype: Any = None) -> torch.Tensor:
        t = torch.as_tensor(np.ascontiguousarray(a))
        if dtype is not None:
            return t.to(dtype)
        return t.double() if t.is_floating_point() else t

    def goal(self, obs: Observation) -> np.ndarray:
        s = build_state(obs)
        xs, xt, xr = (self._t(np.asarray(a, np.float32)) for a in (s.x_static, s.x_temporal, s.x_role))
        with torch.inference_mode():
            mean, log_std = self.nets.l2(xs, xt, xr)
            value = float(self.critic(xs, xt, xr)[0])
        if self.explore.samples("l2"):
            rule = self.explore.goal_rule()
            goal = gaussian_sample(mean.numpy(), rule.log_std(log_std).numpy(), self.rng)
            with torch.inference_mode():
                lp = float(l2_log_prob(mean, log_std, self._t(goal), rule)[0])
        else:
            goal, lp = mean.numpy().astype(np.float32), 0.0
        d = self.rec.days
        if len(d["x_static"]) == len(d["day"]):  # goal() without a begin_day: not a rollout day
            return goal.astype(np.float64)
        d["x_static"].append(s.x_static[0].astype(np.float32))
        d["x_temporal"].append(s.x_temporal[0].astype(np.float32))
        d["x_role"].append(s.x_role[0].astype(np.float32))
        d["goal"].append(goal[0])
        d["lp_l2"].append(lp)
        d["value"].append(value)
        return goal.astype(np.float64)

    def alpha(self, thread_feats: np.ndarray, global_feats: np.ndarray) -> np.ndarray:
        t = len(thread_feats)
        feats = self._t(np.asarray(thread_feats, np.float32)[None])
        glob = self._t(np.asarray(global_feats, np.float32)[None])
        valid = torch.ones((1, t), dtype=torch.bool)
        with torch.inference_mode():
            logits = self.nets.l4.logits(feats, valid, glob)
        if t < 2 or not self.explore.samples("l4"):
            return masked_softmax(logits, valid)[0].numpy().astype(np.float64)
        order = plackett_luce_sample(logits[0].numpy(), self.rng)
        with torch.inference_mode():
            lp = float(plackett_luce_log_prob(logits, torch.as_tensor(order)[None], torch.tensor([t]))[0])
        self.rec.pending_l4 = {
            "n_threads": t,
            "feats": np.asarray(thread_feats, np.float32),
            "glob": np.asarray(global_feats, np.float32),
            "order": order,
            "lp": lp,
        }
        return alpha_of_order(order)

    def decide(
        self, cols: dict[str, np.ndarray], offer_safe: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = l3_model_inputs(cols)
        with torch.inference_mode():
            out = self.nets.l3(
                self._t(x["hist"]),
                self._t(x["hist_len"], torch.long),
                self._t(x["context"]),
                self._t(x["time_mask"], torch.bool),
                self._t(x["op_mask"], torch.bool),
            )
        if not self.explore.samples("l3"):
            op = out["op_logits"].argmax(-1).numpy().astype(np.int64)
            delta = out["delta_logits"].argmax(-1).numpy().astype(np.int64)
            return op, out["residual_mean"].numpy().astype(np.float64), delta
        rule = self.explore.residual_rule()
        ls = rule.log_std(out["residual_log_std"])
        op = gumbel_argmax(out["op_logits"].numpy(), self.rng)
        delta = gumbel_argmax(out["delta_logits"].numpy(), self.rng)
        residual = gaussian_sample(out["residual_mean"].numpy(), ls.numpy(), self.rng)
        with torch.inference_mode():
            lp_op = categorical_log_prob(out["op_logits"], torch.as_tensor(op)).numpy()
            lp_delta = categorical_log_prob(out["delta_logits"], torch.as_tensor(delta)).numpy()
            lp_res = gaussian_log_prob(out["residual_mean"], ls, torch.as_tensor(residual)).numpy()
        self.rec.pending_l3 = {
            **{k: np.asarray(v) for k, v in x.items()},
            "op": op,
            "delta": delta,
            "residual": residual,
            "lp_op": lp_op.astype(np.float32),
            "lp_delta_raw": lp_delta.astype(np.float32),
            "lp_res_raw": lp_res.astype(np.float32),
        }
        return op, residual.astype(np.float64), delta


class LitaAgentHRLRollout(LitaAgentHRL):
    """LitaAgentHRL (neural) on an online policy directory, sampling and recording.

    Params: ``policy_dir`` (``policy.save_policy``), ``explore`` (``policy.Explore`` as a dict:
    the phase and the stds), ``sample_seed`` and ``out_path`` (the ``.npz`` this agent writes)."""

    def __init__(
        self,
        *args: Any,
        policy_dir: str,
        out_path: str,
        explore: dict[str, Any] | None = None,
        sample_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        paths = policy_paths(Path(policy_dir))
        super().__init__(
            *args, mode="neural", l2_path=paths["l2"], l3_path=paths["l3"], l4_path=paths["l4"], **kwargs
        )
        self.explore = config_from_dict(Explore, explore or {})
        self.out_path = Path(out_path)
        self.rec = Recorder()
        critic = load_critic(Path(policy_dir) / CRITIC_FILE)
        self.stack = SamplingStack(
            self.stack, critic, self.explore, np.random.default_rng(sample_seed), self.rec
        )

    def before_step(self) -> None:
        d = self.rec.days
        d["day"].append(int(self.awi.current_step))
        d["balance"].append(float(self.awi.current_balance))
        super().before_step()
        if len(d["x_static"]) < len(d["day"]):  # L2 / the critic failed: the day has no state
            for k in ("day", "balance"):
                d[k].pop()
            self.rec.dropped_rounds += 1

    def _plan(self, offers: dict[str, Any], states: dict[str, Any], nids: list[str]) -> dict[str, Planned]:
        self.rec.pending_l3 = self.rec.pending_l4 = None
        plan = super()._plan(offers, states, nids)
        self._commit_round(plan)
        return plan

    def _commit_round(self, plan: dict[str, Planned]) -> None:
        """Keep the round's records when the policy answered every thread (no fallback); the
        planner's rows are in thread-id order (``plan_round``)."""
        rec = self.rec
        p3, p4 = rec.pending_l3, rec.pending_l4
        rec.pending_l3 = rec.pending_l4 = None
        if not plan or (p3 is None and p4 is None):
            return
        if any(p.fallback for p in plan.values()) or rec.day_index() < 0:
            rec.dropped_rounds += 1
            return
        day_idx = rec.day_index()
        if p4 is not None:
            for k in ("n_threads", "feats", "glob", "order", "lp"):
                rec.l4[k].append(p4[k])
            rec.l4["day_idx"].append(day_idx)
        if p3 is not None:
            nids = sorted(plan)
            if len(nids) != len(p3["op"]):
                rec.dropped_rounds += 1
                return
            sent = np.array([plan[n].response == "OFFER" for n in nids])
            used = (p3["op"] == OP_OFFER) & sent
            p3 = {**p3, "offer_used": used, "day_idx": np.full(len(nids), day_idx, np.int64)}
            p3["lp_delta"] = np.where(used, p3.pop("lp_delta_raw"), 0.0).astype(np.float32)
            p3["lp_res"] = np.where(used, p3.pop("lp_res_raw"), 0.0).astype(np.float32)
            for k, v in p3.items():
                rec.l3.setdefault(k, []).append(v)

    def hrlxf_world_end(self) -> None:
        """Add the rewards and write the trajectory (called by the world runner after the run)."""
        d = self.rec.days
        init = float(self._initial_balance)
        final = float(self.awi.current_balance)
        bal = np.asarray(d["balance"], np.float64)
        nxt = np.append(bal[1:], final)
        reward = (nxt - bal) / init if init else np.zeros_like(bal)
        arrays: dict[str, np.ndarray] = {
            "initial_balance": np.array(init),
            "final_balance": np.array(final),
            "dropped_rounds": np.array(self.rec.dropped_rounds),
            "first_day_balance": np.array(bal[0] if len(bal) else init),
            "day_reward": reward.astype(np.float64),
        }
        for k, v in d.items():
            arrays[f"day_{k}"] = np.asarray(v)
        for k, v in self.rec.l3.items():
            arrays[f"l3_{k}"] = np.concatenate(v) if v else np.zeros(0)
        for k in ("day_idx", "n_threads", "lp"):
            arrays[f"l4_{k}"] = np.asarray(self.rec.l4[k])
        for k in ("feats", "glob", "order"):
            v = self.rec.l4[k]
            arrays[f"l4_{k}"] = (np.concatenate(v) if k != "glob" else np.stack(v)) if v else np.zeros(0)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

        atomic_write(self.out_path, write)
