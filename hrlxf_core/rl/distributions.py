"""The stochastic policy's heads: how an action is sampled, its log-probability, and the KL to the
behaviour-cloned (reference) policy.

Why one module: PPO's ratio compares the log-probability the rollout recorded with the one the
learner recomputes; both come from the functions here, on the same network outputs, so they
agree to float precision (tested to 1e-5 for every head).

The heads (seed §5.2):
- **L3 op** (ACCEPT / OFFER / END): categorical over the feasible ops (``L3Net`` masks the rest);
- **L3 δ**: categorical over the 41 delivery offsets in L1's time mask;
- **L3 residual** [Δq/n_lines, Δp/market]: Gaussian with the network's mean and the std of
  ``StdRule`` (a fraction of BC's std, with a floor); that Gaussian *is* the policy: its
  log-probability is the one PPO uses;
- **L4 order**: Plackett-Luce over the live threads with the L4 scores as logits (sampled as the
  Gumbel-top-k order, which is exactly Plackett-Luce); the order is what L4 decides in the agent
  (dynamic reservation in α order);
- **L2 goal**: Gaussian with L2's mean and the std of its ``StdRule``.

Clipped samples: L1 is applied after sampling (``a_final = clip(baseline + residual, mask)``).
The log-probability is that of the sampled pre-clip action, and the clip is part of the
environment: the same pre-clip sample always maps to the same played action, so the ratio is
unbiased; samples beyond the clip boundary simply earn the boundary's outcome. δ and the
residual enter the log-probability only when they made the offer that was sent (op OFFER and
the thread answered with that offer); otherwise the action did not use them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hrlxf_core.models.common import MASK_VALUE

#: A large finite negative used for padded ranks (``-inf`` would make NaN gradients).
_PAD = -1e9
_LOG_2PI = math.log(2.0 * math.pi)


# -- sampling (numpy: the agent's side) --------------------------------------------------------------
def gumbel_argmax(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical sample per row of ``logits`` (B, K) (masked entries never win)."""
    z = np.asarray(logits, np.float64) + rng.gumbel(size=np.shape(logits))
    return z.argmax(-1).astype(np.int64)


def plackett_luce_sample(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A Plackett-Luce order of the T threads with scores ``logits`` (T,): the Gumbel-top-k
    order. Returns the thread indices from first to last."""
    z = np.asarray(logits, np.float64) + rng.gumbel(size=np.shape(logits))
    return np.argsort(-z, kind="stable").astype(np.int64)


@dataclass(frozen=True)
class StdRule:
    """The std a Gaussian head samples with: sqrt((scale·σ_BC)² + floor²). BC fits σ to the
    experts' spread, which is tiny where they agree (log σ near its minimum); a policy that
    explores with that σ alone can neither explore nor move its mean without a huge KL, so the
    floor keeps a minimum exploration (per output dim) and makes the KL measure mean shifts
    against it."""

    scale: float
    floor: tuple[float, ...]

    def log_std(self, log_std: torch.Tensor) -> torch.Tensor:
        floor = torch.as_tensor(self.floor, dtype=log_std.dtype, device=log_std.device)
        return 0.5 * torch.log((self.scale * torch.exp(log_std)) ** 2 + floor**2)


def gaussian_sample(mean: np.ndarray, log_std: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """mean + exp(log_std)·ε, ε ~ N(0, 1) (``log_std`` already the policy's, ``StdRule``), as
    float32 like the stored actions."""
    std = np.exp(np.asarray(log_std, np.float64))
    x = np.asarray(mean, np.float64) + std * rng.standard_normal(np.shape(mean))
    return x.astype(np.float32)


# -- log-probabilities (torch: both sides) ------------------------------------------------------------
def categorical_log_prob(logits: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """log p(action) under softmax(logits) (B, K) → (B,)."""
    return F.log_softmax(logits, -1).gather(1, action.long().reshape(-1, 1)).squeeze(1)


def gaussian_log_prob(mean: torch.Tensor, ls: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Σ_dims log N(x; mean, exp(ls)²) → (B,)."""
    z = (x.to(mean.dtype) - mean) * torch.exp(-ls)
    return (-0.5 * z * z - ls - 0.5 * _LOG_2PI).sum(-1)


def l3_log_probs(
    out: dict[str, torch.Tensor],
    op: torch.Tensor,
    delta: torch.Tensor,
    residual: torch.Tensor,
    offer_used: torch.Tensor,
    rule: StdRule,
) -> dict[str, torch.Tensor]:
    """Per-head log-probabilities of L3 actions (B,) from ``L3Net.forward`` outputs, and their
    total: op always, δ and the residual where ``offer_used``."""
    used = offer_used.to(out["op_logits"].device).to(out["op_logits"].dtype)
    lp_op = categorical_log_prob(out["op_logits"], op)
    lp_delta = categorical_log_prob(out["delta_logits"], delta) * used
    lp_res = gaussian_log_prob(out["residual_mean"], rule.log_std(out["residual_log_std"]), residual) * used
    return {"op": lp_op, "delta": lp_delta, "residual": lp_res, "total": lp_op + lp_delta + lp_res}


def plackett_luce_log_prob(logits: torch.Tensor, order: torch.Tensor, n_valid: torch.Tensor) -> torch.Tensor:
    """log P(order) under Plackett-Luce with scores ``logits`` (B, T); ``order`` (B, T) holds the
    thread indices from first to last (entries past ``n_valid`` are padding, any value).
    P = Π_i exp(s_{π_i}) / Σ_{j ≥ i} exp(s_{π_j})."""
    b, t = logits.shape
    ranks = torch.arange(t, device=logits.device)[None, :]
    live = ranks < n_valid.reshape(-1, 1).to(logits.device)
    s = logits.gather(1, order.long().clamp(0, t - 1))
    s = torch.where(live, s, torch.full_like(s, _PAD))
    tail = torch.logcumsumexp(s.flip(-1), -1).flip(-1)  # log Σ_{j ≥ i} exp(s_j)
    return torch.where(live, s - tail, torch.zeros_like(s)).sum(-1)


def l2_log_prob(mean: torch.Tensor, log_std: torch.Tensor, goal: torch.Tensor, rule: StdRule) -> torch.Tensor:
    """log-probability of a sampled goal under L2's Gaussian with the std of ``rule``."""
    return gaussian_log_prob(mean, rule.log_std(log_std), goal)


# -- KL to the reference (behaviour-cloned) policy -----------------------------------------------------
def categorical_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(logits) ‖ softmax(ref_logits)) per row; masked entries (probability 0 in both)
    contribute nothing."""
    lp = F.log_softmax(logits, -1)
    lq = F.log_softmax(ref_logits, -1)
    p = lp.exp()
    live = logits > MASK_VALUE / 2
    return torch.where(live, p * (lp - lq), torch.zeros_like(p)).sum(-1)


def gaussian_kl(
    mean: torch.Tensor, ls: torch.Tensor, ref_mean: torch.Tensor, ref_ls: torch.Tensor
) -> torch.Tensor:
    """KL(N(mean, exp(ls)²) ‖ N(ref_mean, exp(ref_ls)²)) summed over dims (the policies' stds,
    ``StdRule``)."""
    var, ref_var = torch.exp(2 * ls), torch.exp(2 * ref_ls)
    d = mean - ref_mean
    return (ref_ls - ls + (var + d * d) / (2 * ref_var) - 0.5).sum(-1)


def l3_kl(out: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], rule: StdRule) -> torch.Tensor:
    """KL of the L3 policy to the reference per row: op, plus δ and residual where OFFER is
    feasible (where the δ/residual heads can be used at all)."""
    offer_ok = out["op_mask"][:, 1].to(out["op_logits"].dtype)
    kl = categorical_kl(out["op_logits"], ref["op_logits"])
    kl = kl + offer_ok * categorical_kl(out["delta_logits"], ref["delta_logits"])
    kl = kl + offer_ok * gaussian_kl(
        out["residual_mean"],
        rule.log_std(out["residual_log_std"]),
        ref["residual_mean"],
        rule.log_std(ref["residual_log_std"]),
    )
    return kl


def l4_kl(logits: torch.Tensor, ref_logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """KL between the first-choice distributions softmax(L4 scores) over the valid threads, per
    round (Plackett-Luce has no closed-form KL; the first choice is its leading factor)."""
    valid = valid.bool()
    lp = F.log_softmax(logits.masked_fill(~valid, _PAD), -1)
    lq = F.log_softmax(ref_logits.masked_fill(~valid, _PAD), -1)
    return torch.where(valid, lp.exp() * (lp - lq), torch.zeros_like(lp)).sum(-1)
