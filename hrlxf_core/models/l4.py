"""L4, the coordinator: one weight α_k per live thread, softmax over a variable number of
threads (docs/design.md §6.3, seed §2 and §5.3). α orders the threads for dynamic reservation.

Architecture and why:
- each thread's features (``l4_features.THREAD_FEATURE_NAMES``) are embedded by an MLP and the
  global features (x_static, live thread counts, goal) by another; the global embedding is added
  to every thread token (conditioning) and also kept as an extra, always-valid token (so an
  all-padding row has a key to attend to, and threads can read global context by attention);
- pre-norm attention blocks over the set, with padding masked out of the keys and **no
  positional encoding**: permuting the threads permutes α (permutation equivariance), and the
  padding's content never reaches a valid thread (padded features are zeroed first);
- a score MLP per thread; α = softmax over valid threads only: exactly 0 on padding, rows sum to
  1, a row with a single thread gets α = 1, a row with none gets all zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hrlxf_core.l4_features import N_GLOBAL, N_THREAD, THREAD_FEATURE_NAMES
from hrlxf_core.labels import GOAL_NAMES
from hrlxf_core.models.common import AttentionBlock, mlp
from hrlxf_core.models.schema import common_schema
from hrlxf_core.state import STATIC_NAMES

L4_SCHEMA_VERSION = 1
GLOBAL_FEATURE_NAMES: tuple[str, ...] = (
    *(f"static_{n}" for n in STATIC_NAMES),
    "n_buy_threads",
    "n_sell_threads",
    *(f"goal_{n}" for n in GOAL_NAMES),
)
assert len(GLOBAL_FEATURE_NAMES) == N_GLOBAL


@dataclass
class L4Config:
    """Hyper-parameters of :class:`L4Net` (stored in checkpoints)."""

    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 128
    dropout: float = 0.0


class L4Net(nn.Module):
    """Set of threads + global context → α (B, T), a distribution over the valid threads."""

    def __init__(self, config: L4Config | None = None) -> None:
        super().__init__()
        self.config = cfg = config or L4Config()
        d = cfg.d_model
        self.thread_embed = mlp([N_THREAD, d, d])
        self.global_embed = mlp([N_GLOBAL, d, d])
        self.global_type = nn.Parameter(torch.zeros(d))
        nn.init.normal_(self.global_type, std=0.02)
        self.blocks = nn.ModuleList(
            [AttentionBlock(d, cfg.n_heads, cfg.d_ff, cfg.dropout) for _ in range(cfg.n_layers)]
        )
        self.norm = nn.LayerNorm(d)
        self.score = mlp([d, d, 1])

    def logits(
        self, thread_feats: torch.Tensor, thread_valid: torch.Tensor, global_feats: torch.Tensor
    ) -> torch.Tensor:
        """(B, T) unmasked thread scores (padding entries are meaningless)."""
        b, t, _ = thread_feats.shape
        valid = thread_valid.bool()
        x = torch.where(valid[..., None], thread_feats, torch.zeros_like(thread_feats))
        g = self.global_embed(global_feats)  # (B, d)
        tok = self.thread_embed(x) + g[:, None, :]
        seq = torch.cat([(g + self.global_type)[:, None, :], tok], dim=1)
        key_valid = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=valid.device), valid], dim=1)
        for blk in self.blocks:
            seq = blk(seq, key_valid)
        return self.score(self.norm(seq[:, 1:])).squeeze(-1)

    def forward(
        self, thread_feats: torch.Tensor, thread_valid: torch.Tensor, global_feats: torch.Tensor
    ) -> torch.Tensor:
        """thread_feats (B, T, N_THREAD), thread_valid (B, T) bool, global_feats (B, N_GLOBAL) → α (B, T)."""
        return masked_softmax(self.logits(thread_feats, thread_valid, global_feats).float(), thread_valid)

    def schema(self) -> dict[str, Any]:
        """Input/output layout this model was built for (recorded in checkpoints)."""
        return l4_schema()


def masked_softmax(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Softmax over ``valid`` entries: exactly 0 elsewhere; an all-invalid row gives zeros."""
    valid = valid.bool()
    any_valid = valid.any(-1, keepdim=True)
    z = logits.masked_fill(~valid, float("-inf"))
    z = torch.where(any_valid, z, torch.zeros_like(z))  # all-invalid rows: finite, zeroed below
    return torch.softmax(z, dim=-1) * valid.to(logits.dtype)


def l4_schema() -> dict[str, Any]:
    return {
        "model": "L4Net",
        "version": L4_SCHEMA_VERSION,
        "inputs": {"thread_feats": ["T", N_THREAD], "thread_valid": ["T"], "global_feats": [N_GLOBAL]},
        "thread_feature_names": list(THREAD_FEATURE_NAMES),
        "global_feature_names": list(GLOBAL_FEATURE_NAMES),
        **common_schema(),
    }


feature_schema: dict[str, Any] = l4_schema()


def l4_distill_loss(alpha: torch.Tensor, teacher_alpha: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """KL(teacher ‖ student) over valid threads, averaged over rows with ≥ 2 valid threads.

    Rows with a single thread carry no information (α = 1 whatever the model does) and are left
    out of the average. ``teacher_alpha`` is renormalised over the valid threads."""
    valid = valid.bool()
    t = torch.where(valid, teacher_alpha.to(alpha), torch.zeros_like(alpha))
    t = t / t.sum(-1, keepdim=True).clamp_min(1e-12)
    log_a = torch.log(alpha.clamp_min(1e-12))
    log_t = torch.log(t.clamp_min(1e-12))
    kl = torch.where(valid & (t > 0), t * (log_t - log_a), torch.zeros_like(alpha)).sum(-1)
    rows = valid.sum(-1) >= 2
    return (kl * rows.to(kl.dtype)).sum() / rows.sum().clamp_min(1).to(kl.dtype)
