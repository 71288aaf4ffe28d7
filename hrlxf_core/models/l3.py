"""L3, the residual negotiator: a small decision transformer over a thread's offer history
(docs/design.md §6.3, seed §1.1: ``a_final = clip(L1_baseline + L3_residual, L1_mask)``).

Architecture and why:
- tokens: the prefix offer history (HIST_LEN = 16 entries of [q/n_lines, δ/10, p/market,
  sender], right-aligned: the last ``hist_len`` are valid) plus one context token
  (``l3_inputs.l3_context``: goal, baseline, role, time, L1 limits, received offer). The
  history positions get a learned embedding by array index, which, being right-aligned, means
  "k offers ago". Padding is masked out of attention keys; the context token is always valid,
  so a thread with no history (hist_len = 0) is well-defined;
- pre-norm attention blocks; the context token's output feeds every head;
- heads: ``op`` logits over [ACCEPT, OFFER, END] with infeasible ops masked; the residual
  [Δq/n_lines, Δp/market] as a Gaussian (mean soft-bounded to ``RESIDUAL_BOUNDS``); delivery δ
  logits over 41 offsets masked by the L1 time mask; a state value for AWR;
- the residual mean head starts at zero weight and bias, so an untrained L3 acts exactly as
  the L1 baseline (seed §1.1, cold-start safety).
Masks use a finite ``MASK_VALUE``: an all-masked row yields uniform, finite probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hrlxf_core.constants import N_OFFSETS
from hrlxf_core.l3_contract import OP_NAMES
from hrlxf_core.models.common import (
    MASK_VALUE,
    AttentionBlock,
    gaussian_nll,
    inverse_scaled_sigmoid,
    masked_mean,
    mlp,
    scaled_sigmoid,
    soft_bound,
)
from hrlxf_core.models.l3_inputs import (
    HIST_FEATURES,
    HIST_LEN,
    L3_CONTEXT_NAMES,
    N_CONTEXT,
    N_OPS,
    RESIDUAL_BOUNDS,
    residual_target,
)
from hrlxf_core.models.schema import common_schema

L3_SCHEMA_VERSION = 1


def _at_least_f32(x: torch.Tensor) -> torch.Tensor:
    """float32, or float64 for a model run in double precision (the online learner, rl/)."""
    return x if x.dtype == torch.float64 else x.float()


@dataclass
class L3Config:
    """Hyper-parameters of :class:`L3Net` (stored in checkpoints)."""

    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 128
    dropout: float = 0.0
    head_hidden: int = 64
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    init_log_std: float = 0.0


@dataclass
class L3LossWeights:
    """Coefficients of the terms of :func:`l3_bc_loss`."""

    op: float = 1.0
    residual: float = 1.0
    delta: float = 1.0
    value: float = 0.5


class L3Net(nn.Module):
    """History + context → op logits, residual Gaussian, δ logits and state value."""

    def __init__(self, config: L3Config | None = None) -> None:
        super().__init__()
        self.config = cfg = config or L3Config()
        d = cfg.d_model
        self.hist_embed = nn.Linear(HIST_FEATURES, d)
        self.pos_embed = nn.Parameter(torch.zeros(HIST_LEN, d))
        self.ctx_embed = mlp([N_CONTEXT, d, d])
        self.ctx_type = nn.Parameter(torch.zeros(d))
        nn.init.normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.ctx_type, std=0.02)
        self.blocks = nn.ModuleList(
            [AttentionBlock(d, cfg.n_heads, cfg.d_ff, cfg.dropout) for _ in range(cfg.n_layers)]
        )
        self.norm = nn.LayerNorm(d)
        hh = cfg.head_hidden
        self.op_head = mlp([d, hh, N_OPS])
        self.res_trunk = mlp([d, hh], last_act=True)
        self.res_mean = nn.Linear(hh, 2)
        self.res_log_std = nn.Linear(hh, 2)
        self.delta_head = mlp([d, hh, N_OFFSETS])
        self.value_head = mlp([d, hh, 1])
        with torch.no_grad():
            nn.init.zeros_(self.res_mean.weight)
            nn.init.zeros_(self.res_mean.bias)
            self.res_log_std.weight.mul_(0.1)
            self.res_log_std.bias.fill_(
                inverse_scaled_sigmoid(cfg.init_log_std, cfg.log_std_min, cfg.log_std_max)
            )

    def encode(self, hist: torch.Tensor, hist_len: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """(B, d_model) representation read from the context token."""
        b = hist.shape[0]
        hist = hist.reshape(b, HIST_LEN, HIST_FEATURES)
        pos = torch.arange(HIST_LEN, device=hist.device)
        valid = pos[None, :] >= (HIST_LEN - hist_len.to(hist.device).long().clamp(0, HIST_LEN))[:, None]
        hist = torch.where(valid[..., None], hist, torch.zeros_like(hist))
        tok = self.hist_embed(hist) + self.pos_embed[None]
        ctx = (self.ctx_embed(context) + self.ctx_type)[:, None, :]
        x = torch.cat([ctx, tok], dim=1)  # context token first
        key_valid = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=hist.device), valid], dim=1)
        last = len(self.blocks) - 1
        for i, blk in enumerate(self.blocks):
            # only the context token is read: the last block computes its output alone
            x = blk(x, key_valid, n_query=1 if i == last else None)
        return self.norm(x[:, 0])

    def forward(
        self,
        hist: torch.Tensor,
        hist_len: torch.Tensor,
        context: torch.Tensor,
        time_mask: torch.Tensor,
        op_mask: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """hist (B, 16, 4) (or flat (B, 64)), hist_len (B,), context (B, C), time_mask (B, 41) bool,
        op_mask (B, 3) bool → dict of op_logits (B, 3), residual_mean (B, 2),
        residual_log_std (B, 2), delta_logits (B, 41), value (B,), and the masks (for the loss)."""
        h = self.encode(hist, hist_len, context)
        time_mask, op_mask = time_mask.bool(), op_mask.bool()
        r = self.res_trunk(h)
        log_std = scaled_sigmoid(self.res_log_std(r), self.config.log_std_min, self.config.log_std_max)
        return {
            "op_logits": self.op_logits(h, op_mask),
            "residual_mean": self.residual_mean(r),
            "residual_log_std": log_std,
            "delta_logits": self.delta_logits(h, time_mask),
            "value": self.value_head(h).squeeze(-1),
            "op_mask": op_mask,
            "time_mask": time_mask,
        }

    # the heads, shared by forward (training) and act (play)
    def op_logits(self, h: torch.Tensor, op_mask: torch.Tensor) -> torch.Tensor:
        # logits in float32: MASK_VALUE does not fit fp16 under autocast, and the losses want fp32
        return _at_least_f32(self.op_head(h)).masked_fill(~op_mask, MASK_VALUE)

    def residual_mean(self, r: torch.Tensor) -> torch.Tensor:
        """The Gaussian mean, soft-bounded to RESIDUAL_BOUNDS, from the residual trunk's output."""
        raw = self.res_mean(r)
        return torch.stack(
            [
                soft_bound(raw[:, 0], float(RESIDUAL_BOUNDS[0])),
                soft_bound(raw[:, 1], float(RESIDUAL_BOUNDS[1])),
            ],
            dim=1,
        )

    def delta_logits(self, h: torch.Tensor, time_mask: torch.Tensor) -> torch.Tensor:
        return _at_least_f32(self.delta_head(h)).masked_fill(~time_mask, MASK_VALUE)

    @torch.no_grad()
    def act(
        self,
        hist: torch.Tensor,
        hist_len: torch.Tensor,
        context: torch.Tensor,
        time_mask: torch.Tensor,
        op_mask: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Deterministic decision: op = argmax over feasible ops, δ = argmax over the mask,
        residual = the Gaussian mean (the heads of :meth:`forward`, without the ones play does
        not read: log-std and value). Callers still pass the result through L1's clip_action."""
        h = self.encode(hist, hist_len, context)
        return {
            "op": self.op_logits(h, op_mask.bool()).argmax(-1),
            "delta": self.delta_logits(h, time_mask.bool()).argmax(-1),
            "residual": self.residual_mean(self.res_trunk(h)),
        }

    def schema(self) -> dict[str, Any]:
        """Input/output layout this model was built for (recorded in checkpoints)."""
        return l3_schema()


def l3_schema() -> dict[str, Any]:
    return {
        "model": "L3Net",
        "version": L3_SCHEMA_VERSION,
        "inputs": {
            "hist": [HIST_LEN, HIST_FEATURES],
            "hist_len": [],
            "context": [N_CONTEXT],
            "time_mask": [N_OFFSETS],
            "op_mask": [N_OPS],
        },
        "hist_features": ["q_over_n_lines", "delta_over_10", "p_over_market", "sender_is_self"],
        "hist_alignment": "right",
        "context_names": list(L3_CONTEXT_NAMES),
        "op_names": list(OP_NAMES),
        "residual": ["dq_over_n_lines", "dp_over_market"],
        "residual_bounds": list(RESIDUAL_BOUNDS),
        **common_schema(),
    }


feature_schema: dict[str, Any] = l3_schema()


def _target(batch: dict[str, torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """Normalised residual targets: ``residual_target`` if given, else from raw res_q/res_p."""
    if "residual_target" in batch:
        return batch["residual_target"].to(like)
    t = residual_target(
        *(batch[k].detach().cpu().numpy() for k in ("res_q", "res_p", "n_lines", "market_price"))
    )
    return torch.as_tensor(t, device=like.device, dtype=like.dtype)


def l3_bc_loss(
    out: dict[str, torch.Tensor],
    batch: dict[str, torch.Tensor],
    weights: torch.Tensor | None = None,
    coef: L3LossWeights | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Behaviour cloning (and AWR with ``weights``) loss of L3.

    ``batch``: op_label (B,) long, has_counter (B,) bool, residual_target (B, 2) (see
    ``l3_inputs.l3_targets``; or raw res_q, res_p, n_lines, market_price), delta_label (B,) long
    (−1: none), optionally returns (B,) for the value head. Terms:
    - op cross-entropy over the *masked* logits, on rows whose expert op is feasible under our
      L1 masks (an expert may offer where our L1 finds no safe δ: that row cannot teach a
      feasible choice and would otherwise cost ~1e9);
    - residual Gaussian NLL on rows with a counter-offer;
    - δ cross-entropy on rows with a counter-offer whose δ lies in the L1 time mask;
    - value MSE against ``returns`` when given (not weighted).
    ``weights`` (B,) multiply the per-sample policy terms (AWR: exp(advantage/β), clipped by the
    caller); each term is averaged over its eligible rows."""
    coef = coef or L3LossWeights()
    op_logits = out["op_logits"]
    b = op_logits.shape[0]
    w = torch.ones(b, device=op_logits.device) if weights is None else weights.to(op_logits).reshape(b)
    rows = torch.arange(b, device=op_logits.device)

    op_label = batch["op_label"].long().to(op_logits.device)
    op_ok = out["op_mask"][rows, op_label.clamp(0, N_OPS - 1)] & (op_label >= 0) & (op_label < N_OPS)
    op_ce = F.cross_entropy(op_logits, op_label.clamp(0, N_OPS - 1), reduction="none")
    op_loss = masked_mean(w * op_ce, op_ok)

    has_counter = batch["has_counter"].bool().to(op_logits.device)
    target = _target(batch, out["residual_mean"])
    nll = gaussian_nll(out["residual_mean"], out["residual_log_std"], target).sum(-1)
    res_loss = masked_mean(w * nll, has_counter)

    dl = batch["delta_label"].long().to(op_logits.device)
    dl_c = dl.clamp(0, N_OFFSETS - 1)
    d_ok = has_counter & (dl >= 0) & (dl < N_OFFSETS) & out["time_mask"][rows, dl_c]
    d_ce = F.cross_entropy(out["delta_logits"], dl_c, reduction="none")
    delta_loss = masked_mean(w * d_ce, d_ok)

    loss = coef.op * op_loss + coef.residual * res_loss + coef.delta * delta_loss
    parts: dict[str, float] = {
        "op_ce": float(op_loss.detach()),
        "residual_nll": float(res_loss.detach()),
        "delta_ce": float(delta_loss.detach()),
        "op_rows": float(op_ok.sum()),
        "residual_rows": float(has_counter.sum()),
        "delta_rows": float(d_ok.sum()),
    }
    with torch.no_grad():
        pred = op_logits.argmax(-1)
        parts["op_acc"] = float(masked_mean((pred == op_label).float(), op_ok))
        parts["residual_mae_q"] = float(
            masked_mean((out["residual_mean"][:, 0] - target[:, 0]).abs(), has_counter)
        )
        parts["residual_mae_p"] = float(
            masked_mean((out["residual_mean"][:, 1] - target[:, 1]).abs(), has_counter)
        )
        parts["delta_acc"] = float(masked_mean((out["delta_logits"].argmax(-1) == dl).float(), d_ok))
    if "returns" in batch and batch["returns"] is not None:
        v_loss = F.mse_loss(out["value"], batch["returns"].to(out["value"]).reshape(b))
        loss = loss + coef.value * v_loss
        parts["value_mse"] = float(v_loss.detach())
    parts["loss"] = float(loss.detach())
    return loss, parts
