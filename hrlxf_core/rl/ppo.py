"""The PPO learner: a batch from trajectories, GAE over agent-days, and the clipped update of the
trainable layers with a bounded KL to the behaviour-cloned policy.

Credit assignment (stated): the reward is realised per agent-day (``rollout_agent``), so the
MDP step of the critic is the day: V(s_d) from the day-start state, GAE over the days of a
world, and every decision of day d (each L3 thread decision, each L4 order, the L2 goal) gets
the day's advantage A_d, normalised over the batch. This is PPO with a shared per-step
advantage; it does not credit one thread against another within a day.

KL bound: the loss carries β·KL(π ‖ π_BC) per trainable layer (β adapted towards ``kl_target``
after each iteration), and after every optimiser step the KL to the BC policy is measured on a
fixed sample of the batch (``kl_check_rows`` per layer); a step that takes any layer's KL
above ``kl_max`` is undone and the update stops. A layer that starts an iteration above the
bound (the KL is measured on the new iteration's states) is first brought back under it by steps
on the KL alone. So the policy handed to the next iteration is always within the bound on its own
rollout data.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from hrlxf_core.rl.distributions import (
    StdRule,
    gaussian_kl,
    l2_log_prob,
    l3_kl,
    l3_log_probs,
    l4_kl,
    plackett_luce_log_prob,
)
from hrlxf_core.rl.policy import OnlinePolicy
from hrlxf_core.rl.rollouts import Trajectory


@dataclass
class PPOConfig:
    gamma: float = 0.99
    lam: float = 0.95
    clip: float = 0.2
    epochs: int = 4
    minibatches: int = 4
    lr_a: float = 1e-4  # phase A: L4
    #: phase B: L2 / L3 / L4 (≤ 0.1 × BC's 1e-3). Adam moves every weight by ~lr in its first steps;
    #: measured on BC checkpoints, 5e-5 moves the residual mean by 0.03 (KL 0.18) in one step, 1e-5 by 0.006
    lr_b: float = 1e-5
    critic_lr: float = 1e-3
    critic_epochs: int = 10
    critic_warmup_epochs: int = 50
    max_grad_norm: float = 0.5
    kl_coef: float = 0.1
    kl_target: float = 0.02
    kl_max: float = 0.05
    target_kl_old: float = 0.05
    #: rows per layer on which the KL to BC is measured after every step (a fixed random sample of
    #: the batch): the measurement is most of the learner's time (profiled: 29 of 53 s at 4096)
    kl_check_rows: int = 1024
    #: most KL-descent steps that bring a layer back under kl_max (``Learner._restore``)
    restore_max_steps: int = 50
    restore_lr: float = 1e-4


# -- the batch ---------------------------------------------------------------------------------------
@dataclass
class Batch:
    days: dict[str, np.ndarray]
    l3: dict[str, np.ndarray]
    l4: dict[str, np.ndarray]
    traj_of_day: np.ndarray
    n_worlds: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_days(self) -> int:
        return len(self.traj_of_day)


def make_batch(trajs: list[Trajectory]) -> Batch:
    """Concatenate trajectories; decisions point at their day in the batch (``day``)."""
    days: dict[str, list[np.ndarray]] = {
        k: [] for k in ("x_static", "x_temporal", "x_role", "goal", "lp_l2", "value", "reward")
    }
    l3: dict[str, list[np.ndarray]] = {}
    l4_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, float, int]] = []
    traj_of_day = []
    offset = 0
    for i, tr in enumerate(trajs):
        a = tr.arrays
        n = len(a["day_reward"])
        for k in ("x_static", "x_temporal", "x_role", "goal", "lp_l2", "value"):
            days[k].append(np.asarray(a[f"day_{k}"]))
        days["reward"].append(np.asarray(a["day_reward"], np.float64))
        traj_of_day.append(np.full(n, i))
        if "l3_op" in a and len(a["l3_op"]):
            for k in a:
                if k.startswith("l3_"):
                    l3.setdefault(k[3:], []).append(a[k])
            l3.setdefault("day", []).append(a["l3_day_idx"] + offset)
        pos = 0
        for r in range(len(a["l4_n_threads"])):
            t = int(a["l4_n_threads"][r])
            l4_rows.append(
                (
                    a["l4_feats"][pos : pos + t],
                    a["l4_glob"][r],
                    a["l4_order"][pos : pos + t],
                    float(a["l4_lp"][r]),
                    int(a["l4_day_idx"][r]) + offset,
                )
            )
            pos += t
        offset += n
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in days.items()}
    l3c = {k: np.concatenate(v) for k, v in l3.items()}
    l4c: dict[str, np.ndarray] = {}
    if l4_rows:
        tmax = max(len(r[2]) for r in l4_rows)
        nf = l4_rows[0][0].shape[1]
        feats = np.zeros((len(l4_rows), tmax, nf), np.float32)
        order = np.zeros((len(l4_rows), tmax), np.int64)
        valid = np.zeros((len(l4_rows), tmax), bool)
        for j, (f, _, o, _, _) in enumerate(l4_rows):
            feats[j, : len(o)] = f
            order[j, : len(o)] = o
            valid[j, : len(o)] = True
        l4c = {
            "feats": feats,
            "valid": valid,
            "order": order,
            "n": valid.sum(1),
            "glob": np.stack([r[1] for r in l4_rows]).astype(np.float32),
            "lp": np.array([r[3] for r in l4_rows], np.float32),
            "day": np.array([r[4] for r in l4_rows], np.int64),
        }
    return Batch(
        cat, l3c, l4c, np.concatenate(traj_of_day) if traj_of_day else np.zeros(0, np.int64), len(trajs)
    )


def gae(
    rewards: np.ndarray, values: np.ndarray, traj: np.ndarray, gamma: float, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """(advantages, returns) over the days of each trajectory (consecutive rows of one ``traj``
    id; the value after a trajectory's last day is 0: the world is over)."""
    adv = np.zeros(len(rewards), np.float64)
    last = 0.0
    for i in range(len(rewards) - 1, -1, -1):
        terminal = i == len(rewards) - 1 or traj[i + 1] != traj[i]
        v_next = 0.0 if terminal else values[i + 1]
        if terminal:
            last = 0.0
        delta = rewards[i] + gamma * v_next - values[i]
        last = delta + gamma * lam * last
        adv[i] = last
    return adv, adv + values


def discounted_returns(rewards: np.ndarray, traj: np.ndarray, gamma: float) -> np.ndarray:
    out = np.zeros(len(rewards), np.float64)
    run = 0.0
    for i in range(len(rewards) - 1, -1, -1):
        if i == len(rewards) - 1 or traj[i + 1] != traj[i]:
            run = 0.0
        run = rewards[i] + gamma * run
        out[i] = run
    return out


# -- recomputed log-probabilities (the learner's side) -----------------------------------------------
def _t(a: np.ndarray, idx: np.ndarray | None = None, dtype: Any = None) -> torch.Tensor:
    x = torch.as_tensor(np.ascontiguousarray(a if idx is None else a[idx]))
    if dtype is not None:
        return x.to(dtype)
    return x.double() if x.is_floating_point() else x


def l3_forward(l3: nn.Module, rows: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, torch.Tensor]:
    return l3(
        _t(rows["hist"], idx),
        _t(rows["hist_len"], idx, torch.long),
        _t(rows["context"], idx),
        _t(rows["time_mask"], idx, torch.bool),
        _t(rows["op_mask"], idx, torch.bool),
    )


def l3_logp(
    out: dict[str, torch.Tensor], rows: dict[str, np.ndarray], idx: np.ndarray, rule: StdRule
) -> dict[str, torch.Tensor]:
    return l3_log_probs(
        out,
        _t(rows["op"], idx, torch.long),
        _t(rows["delta"], idx, torch.long),
        _t(rows["residual"], idx),
        _t(rows["offer_used"], idx, torch.bool),
        rule,
    )


def l4_logits(l4: nn.Module, r: dict[str, np.ndarray], idx: np.ndarray) -> torch.Tensor:
    return l4.logits(_t(r["feats"], idx), _t(r["valid"], idx, torch.bool), _t(r["glob"], idx))


def l4_logp(logits: torch.Tensor, r: dict[str, np.ndarray], idx: np.ndarray) -> torch.Tensor:
    return plackett_luce_log_prob(logits, _t(r["order"], idx, torch.long), _t(r["n"], idx, torch.long))


def l2_forward(l2: nn.Module, d: dict[str, np.ndarray], idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return l2(_t(d["x_static"], idx), _t(d["x_temporal"], idx), _t(d["x_role"], idx))


def critic_values(policy: OnlinePolicy, d: dict[str, np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return policy.critic(_t(d["x_static"]), _t(d["x_temporal"]), _t(d["x_role"])).double().numpy()


def group_rows(batch: Batch, group: str) -> int:
    if group == "l3":
        return len(batch.l3.get("op", ()))
    if group == "l4":
        return len(batch.l4.get("lp", ()))
    return batch.n_days


def recompute_log_probs(policy: OnlinePolicy, batch: Batch) -> dict[str, np.ndarray]:
    """The log-probability of every recorded action under ``policy``, per head (what the
    rollout recorded, recomputed: equal before an update)."""
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        if group_rows(batch, "l3"):
            idx = np.arange(group_rows(batch, "l3"))
            lp = l3_logp(l3_forward(policy.l3, batch.l3, idx), batch.l3, idx, policy.explore.residual_rule())
            out.update({f"l3_{k}": v.numpy() for k, v in lp.items()})
        if group_rows(batch, "l4"):
            idx = np.arange(group_rows(batch, "l4"))
            out["l4"] = l4_logp(l4_logits(policy.l4, batch.l4, idx), batch.l4, idx).numpy()
        if batch.n_days and policy.explore.samples("l2"):
            idx = np.arange(batch.n_days)
            mean, log_std = l2_forward(policy.l2, batch.days, idx)
            out["l2"] = l2_log_prob(
                mean, log_std, _t(batch.days["goal"], idx), policy.explore.goal_rule()
            ).numpy()
    return out


# -- the update ---------------------------------------------------------------------------------------
class Learner:
    """PPO over the trainable layers of ``policy`` with KL to the frozen ``ref`` (BC) layers."""

    def __init__(
        self, policy: OnlinePolicy, ref: OnlinePolicy, groups: tuple[str, ...], cfg: PPOConfig, lr: float
    ) -> None:
        self.policy, self.ref, self.groups, self.cfg = policy, ref, groups, cfg
        for name, m in policy.layers().items():
            m.requires_grad_(name in groups)
        self.params = [p for g in groups for p in policy.layers()[g].parameters()]
        self.opt = torch.optim.Adam(self.params, lr=lr)
        self.critic_opt = torch.optim.Adam(policy.critic.parameters(), lr=cfg.critic_lr)
        self.kl_coef = cfg.kl_coef
        self.reset_layers: list[str] = []

    def state_dict(self) -> dict[str, Any]:
        return {
            "opt": self.opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "kl_coef": self.kl_coef,
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.opt.load_state_dict(s["opt"])
        self.critic_opt.load_state_dict(s["critic_opt"])
        self.kl_coef = float(s["kl_coef"])

    # the terms of one group on rows idx
    def _group_terms(
        self, g: str, batch: Batch, idx: np.ndarray, adv_rows: torch.Tensor, ref_out: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = self.policy
        if g == "l3":
            out = l3_forward(p.l3, batch.l3, idx)
            lp = l3_logp(out, batch.l3, idx, p.explore.residual_rule())["total"]
            old = _t(batch.l3["lp_op"] + batch.l3["lp_delta"] + batch.l3["lp_res"], idx)
            kl = l3_kl(out, {k: v[idx] for k, v in ref_out.items()}, p.explore.residual_rule())
        elif g == "l4":
            logits = l4_logits(p.l4, batch.l4, idx)
            lp = l4_logp(logits, batch.l4, idx)
            old = _t(batch.l4["lp"], idx)
            kl = l4_kl(logits, ref_out[idx], _t(batch.l4["valid"], idx, torch.bool))
        else:
            mean, log_std = l2_forward(p.l2, batch.days, idx)
            lp = l2_log_prob(mean, log_std, _t(batch.days["goal"], idx), p.explore.goal_rule())
            old = _t(batch.days["lp_l2"], idx)
            rule = p.explore.goal_rule()
            kl = gaussian_kl(mean, rule.log_std(log_std), ref_out[0][idx], rule.log_std(ref_out[1][idx]))
        return lp - old, kl, adv_rows

    def _ref_outputs(self, batch: Batch) -> dict[str, Any]:
        r: dict[str, Any] = {}
        with torch.no_grad():
            if "l3" in self.groups:
                r["l3"] = l3_forward(self.ref.l3, batch.l3, np.arange(group_rows(batch, "l3")))
            if "l4" in self.groups:
                r["l4"] = l4_logits(self.ref.l4, batch.l4, np.arange(group_rows(batch, "l4")))
            if "l2" in self.groups:
                r["l2"] = l2_forward(self.ref.l2, batch.days, np.arange(batch.n_days))
        return r

    def measure_kl(
        self, batch: Batch, ref_out: dict[str, Any], check: dict[str, np.ndarray]
    ) -> dict[str, float]:
        """Mean KL to the BC policy per trainable group on the check rows."""
        out = {}
        with torch.no_grad():
            for g in self.groups:
                idx = check[g]
                if len(idx) == 0:
                    continue
                _, kl, _ = self._group_terms(g, batch, idx, torch.zeros(len(idx)), ref_out[g])
                out[g] = float(kl.mean())
        return out

    def _restore(
        self,
        batch: Batch,
        ref_out: dict[str, Any],
        check: dict[str, np.ndarray],
        kl: dict[str, float],
        gen: torch.Generator,
    ) -> int:
        """The KL to BC is measured on this iteration's states, which differ from the last one's: when
        a layer starts above ``kl_max``, descend the KL alone (towards BC) until every layer is back
        below 0.8 × kl_max, before any PPO step; a layer still above after ``restore_max_steps``
        goes back to its BC weights (``reset_layers``). Returns the steps taken."""
        cfg, steps = self.cfg, 0
        if not any(v > cfg.kl_max for v in kl.values()):
            return 0
        # its own optimiser: descending the KL only moves towards BC, so it may step faster than PPO
        opt = torch.optim.Adam(self.params, lr=cfg.restore_lr)
        while any(v > cfg.kl_max for v in kl.values()) and steps < cfg.restore_max_steps:
            loss = torch.zeros(())
            for g in self.groups:
                idx = check.get(g, np.zeros(0, np.int64))
                if len(idx):
                    _, k, _ = self._group_terms(g, batch, idx, torch.zeros(len(idx)), ref_out[g])
                    loss = loss + k.mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
            opt.step()
            steps += 1
            kl = self.measure_kl(batch, ref_out, check)
            if all(v <= 0.8 * cfg.kl_max for v in kl.values()):
                break
        for g, v in kl.items():  # still above: that layer goes back to its BC weights (KL 0)
            if v > cfg.kl_max:
                self.policy.layers()[g].load_state_dict(self.ref.layers()[g].state_dict())
                self.reset_layers.append(g)
        return steps

    def fit_critic(self, batch: Batch, targets: np.ndarray, epochs: int, gen: torch.Generator) -> float:
        d, n = batch.days, batch.n_days
        y = torch.as_tensor(targets, dtype=torch.float32)
        mb = max(1, math.ceil(n / self.cfg.minibatches))
        loss = torch.tensor(float("nan"))
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen).numpy()
            for s in range(0, n, mb):
                idx = perm[s : s + mb]
                v = self.policy.critic(_t(d["x_static"], idx), _t(d["x_temporal"], idx), _t(d["x_role"], idx))
                loss = ((v - y[idx]) ** 2).mean()
                self.critic_opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.policy.critic.parameters(), 1.0)
                self.critic_opt.step()
        return float(loss.detach())

    def update(self, batch: Batch, seed: int, warmup: bool) -> dict[str, Any]:
        """One PPO update on ``batch`` (critic warm-up first when ``warmup``); returns metrics."""
        cfg = self.cfg
        gen = torch.Generator().manual_seed(seed)
        m: dict[str, Any] = {}
        if warmup:
            mc = discounted_returns(batch.days["reward"], batch.traj_of_day, cfg.gamma)
            m["critic_warmup_mse"] = self.fit_critic(batch, mc, cfg.critic_warmup_epochs, gen)
        values = critic_values(self.policy, batch.days)
        adv, ret = gae(batch.days["reward"], values, batch.traj_of_day, cfg.gamma, cfg.lam)
        var_ret = float(np.var(ret))
        m["explained_variance"] = float(1 - np.var(ret - values) / var_ret) if var_ret > 0 else float("nan")
        adv_n = (adv - adv.mean()) / (adv.std() + 1e-8)
        adv_t = torch.as_tensor(adv_n, dtype=torch.float32)
        row_adv = {"l3": batch.l3.get("day"), "l4": batch.l4.get("day"), "l2": np.arange(batch.n_days)}
        groups = [g for g in self.groups if group_rows(batch, g) > 0]
        ref_out = self._ref_outputs(batch)
        rng = np.random.default_rng(seed)
        check = {g: np.sort(rng.permutation(group_rows(batch, g))[: cfg.kl_check_rows]) for g in groups}
        m["kl_before"] = self.measure_kl(batch, ref_out, check)
        m["restore_steps"] = self._restore(batch, ref_out, check, m["kl_before"], gen)
        steps, stop = 0, "epochs done"
        clip_frac: list[float] = []
        approx_old = 0.0
        for _epoch in range(cfg.epochs):
            perms = {g: torch.randperm(group_rows(batch, g), generator=gen).numpy() for g in groups}
            for mbi in range(cfg.minibatches):
                snap = (
                    [copy.deepcopy(self.policy.layers()[g].state_dict()) for g in groups],
                    copy.deepcopy(self.opt.state_dict()),
                )
                loss = torch.zeros(())
                olds = []
                for g in groups:
                    n = group_rows(batch, g)
                    size = math.ceil(n / cfg.minibatches)
                    idx = np.sort(perms[g][mbi * size : (mbi + 1) * size])
                    if len(idx) == 0:
                        continue
                    diff, kl, _ = self._group_terms(g, batch, idx, adv_t, ref_out[g])
                    a = adv_t[torch.as_tensor(row_adv[g][idx])]
                    ratio = torch.exp(diff)
                    surr = torch.minimum(ratio * a, torch.clamp(ratio, 1 - cfg.clip, 1 + cfg.clip) * a)
                    loss = loss - surr.mean() + self.kl_coef * kl.mean()
                    with torch.no_grad():
                        clip_frac.append(float(((ratio - 1).abs() > cfg.clip).float().mean()))
                        olds.append(float(((ratio - 1) - diff).mean()))
                if not loss.requires_grad:
                    continue
                self.opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
                self.opt.step()
                steps += 1
                kl_now = self.measure_kl(batch, ref_out, check)
                if any(v > cfg.kl_max for v in kl_now.values()):
                    for g, sd in zip(groups, snap[0], strict=True):
                        self.policy.layers()[g].load_state_dict(sd)
                    self.opt.load_state_dict(snap[1])
                    steps -= 1
                    stop = f"KL to BC above kl_max {cfg.kl_max} ({kl_now}): step undone"
                    break
                approx_old = float(np.mean(olds)) if olds else 0.0
                if approx_old > cfg.target_kl_old:
                    stop = f"approx KL to the rollout policy {approx_old:.4f} > {cfg.target_kl_old}"
                    break
            else:
                continue
            break
        kl_after = self.measure_kl(batch, ref_out, check)
        worst = max(kl_after.values(), default=0.0)
        if worst > 1.5 * cfg.kl_target:
            self.kl_coef *= 2.0
        elif worst < cfg.kl_target / 1.5:
            self.kl_coef = max(self.kl_coef / 2.0, 1e-4)
        m["critic_mse"] = self.fit_critic(batch, ret, cfg.critic_epochs, gen)
        m.update(
            {
                "kl_to_bc": kl_after,
                "kl_coef_next": self.kl_coef,
                "approx_kl_rollout": approx_old,
                "clip_fraction": float(np.mean(clip_frac)) if clip_frac else 0.0,
                "policy_steps": steps,
                "stop": stop,
                "rows": {g: group_rows(batch, g) for g in groups},
                "reset_to_bc": list(self.reset_layers),
                "mean_advantage_raw": float(adv.mean()),
            }
        )
        return m
