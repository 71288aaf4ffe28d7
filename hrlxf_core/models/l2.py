"""L2, the daily manager: day-start state → goal g ∈ R^16 as a Gaussian (docs/design.md §6.3, seed §2).

Architecture and why:
- a temporal tower of 1-D convolutions over δ (dilated, residual) reads X_temporal (41 × 10):
  commitments, production plan, cash and offer pressure are local in δ and shift-structured;
- bucket pooling: the tower's output is averaged over each goal bucket's δ range
  (``labels.BUCKET_EDGES``) plus the rest of the horizon, and max-pooled over all δ. Plain
  global pooling would lose *where* in δ something happens, which is exactly what a
  bucket-major goal needs;
- an MLP on x_static (12) and the role multi-hot (2), fused with the tower by an MLP;
- a Gaussian head whose mean is bounded like the labels (quantities in
  [0, QUANTITY_LABEL_MAX] days of production, prices in PRICE_RATIO_RANGE of the trading price)
  by scaled sigmoids, and whose log-std is bounded softly (docs/design.md §7: no unbounded outputs).
  Biases start at a quantity of ``init_quantity`` and a price ratio of 1, the label's typical
  values, so an untrained L2 already gives a sane goal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hrlxf_core.labels import (
    BUCKET_EDGES,
    GOAL_DIM,
    GOAL_NAMES,
    N_BUCKETS,
    PRICE_RATIO_RANGE,
    QUANTITY_LABEL_MAX,
)
from hrlxf_core.models.common import (
    gaussian_nll,
    inverse_scaled_sigmoid,
    masked_mean,
    mlp,
    scaled_sigmoid,
)
from hrlxf_core.models.schema import common_schema
from hrlxf_core.state import N_STATIC, N_TEMPORAL, STATIC_NAMES, TEMPORAL_NAMES, K

#: Goal dims that are quantities (even: Q_buy, Q_sell of each bucket) and prices (odd).
QUANTITY_DIMS = tuple(range(0, GOAL_DIM, 2))
PRICE_DIMS = tuple(range(1, GOAL_DIM, 2))
L2_SCHEMA_VERSION = 1


@dataclass
class L2Config:
    """Hyper-parameters of :class:`L2Net` (stored in checkpoints)."""

    conv_channels: int = 32
    conv_kernel: int = 3
    conv_dilations: tuple[int, ...] = (1, 2, 4)
    static_hidden: int = 64
    fused_hidden: int = 128
    fused_layers: int = 2
    dropout: float = 0.0
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    #: Initial mean of quantity dims (days of production) and of log-std.
    init_quantity: float = 0.5
    init_log_std: float = 0.0


class _ConvBlock(nn.Module):
    """Residual dilated 1-D conv over δ (length preserved by 'same' padding)."""

    def __init__(self, ch: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(ch, ch, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act(self.conv(x))


def _pool_segments() -> tuple[tuple[int, int], ...]:
    """δ ranges pooled separately: the goal buckets, then the rest of the horizon (if any)."""
    segs = [(lo, hi) for lo, hi in BUCKET_EDGES]
    if BUCKET_EDGES[-1][1] < K - 1:
        segs.append((BUCKET_EDGES[-1][1] + 1, K - 1))
    return tuple(segs)


class L2Net(nn.Module):
    """Day-start state → Gaussian over the 16-dim goal (bucket-major [Q_buy, P_buy, Q_sell, P_sell])."""

    def __init__(self, config: L2Config | None = None) -> None:
        super().__init__()
        self.config = cfg = config or L2Config()
        if cfg.conv_kernel % 2 == 0:
            raise ValueError("conv_kernel must be odd (length-preserving padding)")
        c = cfg.conv_channels
        self.inp = nn.Conv1d(N_TEMPORAL, c, 1)
        self.tower = nn.Sequential(*[_ConvBlock(c, cfg.conv_kernel, d) for d in cfg.conv_dilations])
        self.segments = _pool_segments()
        seg = torch.zeros(len(self.segments), K)
        for i, (lo, hi) in enumerate(self.segments):
            seg[i, lo : hi + 1] = 1.0 / (hi - lo + 1)
        self.register_buffer("seg_weights", seg, persistent=False)
        self.static = mlp([N_STATIC + 2, cfg.static_hidden, cfg.static_hidden], last_act=True)
        fused_in = c * (len(self.segments) + 1) + cfg.static_hidden
        sizes = [fused_in] + [cfg.fused_hidden] * cfg.fused_layers
        self.fused = mlp(sizes, dropout=cfg.dropout, last_act=True)
        self.mean_head = nn.Linear(cfg.fused_hidden, GOAL_DIM)
        self.log_std_head = nn.Linear(cfg.fused_hidden, GOAL_DIM)
        self._init_heads()
        is_q = torch.zeros(GOAL_DIM, dtype=torch.bool)
        is_q[list(QUANTITY_DIMS)] = True
        self.register_buffer("is_quantity", is_q, persistent=False)

    def _init_heads(self) -> None:
        cfg = self.config
        with torch.no_grad():
            self.mean_head.weight.mul_(0.1)
            self.log_std_head.weight.mul_(0.1)
            bq = inverse_scaled_sigmoid(cfg.init_quantity, 0.0, QUANTITY_LABEL_MAX)
            bp = inverse_scaled_sigmoid(1.0, *PRICE_RATIO_RANGE)
            for i in range(GOAL_DIM):
                self.mean_head.bias[i] = bq if i in QUANTITY_DIMS else bp
            self.log_std_head.bias.fill_(
                inverse_scaled_sigmoid(cfg.init_log_std, cfg.log_std_min, cfg.log_std_max)
            )

    def forward(
        self, x_static: torch.Tensor, x_temporal: torch.Tensor, x_role: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x_static (B, 12), x_temporal (B, 41, 10) or flat (B, 410), x_role (B, 2) →
        (mean (B, 16), log_std (B, 16)), both bounded."""
        b = x_static.shape[0]
        xt = x_temporal.reshape(b, K, N_TEMPORAL).transpose(1, 2)  # (B, C_in, K)
        h = self.tower(self.inp(xt))  # (B, C, K)
        seg = torch.einsum("bck,sk->bcs", h, self.seg_weights).flatten(1)
        pooled = torch.cat([seg, h.amax(dim=2)], dim=1)
        s = self.static(torch.cat([x_static, x_role], dim=1))
        z = self.fused(torch.cat([pooled, s], dim=1))
        raw = self.mean_head(z)
        mean = torch.where(
            self.is_quantity,
            scaled_sigmoid(raw, 0.0, QUANTITY_LABEL_MAX),
            scaled_sigmoid(raw, *PRICE_RATIO_RANGE),
        )
        log_std = scaled_sigmoid(self.log_std_head(z), self.config.log_std_min, self.config.log_std_max)
        return mean, log_std

    def schema(self) -> dict[str, Any]:
        """Input/output layout this model was built for (recorded in checkpoints)."""
        return l2_schema()


def l2_schema() -> dict[str, Any]:
    return {
        "model": "L2Net",
        "version": L2_SCHEMA_VERSION,
        "inputs": {
            "x_static": [N_STATIC],
            "x_temporal": [K, N_TEMPORAL],
            "x_role": [2],
        },
        "static_names": list(STATIC_NAMES),
        "temporal_names": list(TEMPORAL_NAMES),
        "role_names": ["can_buy", "can_sell"],
        "outputs": {"mean": [GOAL_DIM], "log_std": [GOAL_DIM]},
        "goal_names": list(GOAL_NAMES),
        "n_buckets": N_BUCKETS,
        **common_schema(),
    }


#: Input dims of L2 (a plain dict, e.g. for asset metadata).
feature_schema: dict[str, Any] = l2_schema()


def l2_nll(
    mean: torch.Tensor, log_std: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Gaussian NLL averaged over unmasked entries (``mask`` = macro ``goal_mask``: 0 on the
    sides the agent cannot trade, whose labels carry no information; a float mask weighs the
    entries, e.g. by the outcome weight of their row)."""
    return masked_mean(gaussian_nll(mean, log_std, target), mask)


#: Weight of the L1 term on the mean in :func:`l2_loss`.
L2_L1_WEIGHT = 1.0


def l2_loss(
    mean: torch.Tensor,
    log_std: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    l1_weight: float = L2_L1_WEIGHT,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """BC loss of L2: masked Gaussian NLL plus ``l1_weight`` × masked L1 error of the mean.

    Why the L1 term: with the NLL alone a head can explain a hard dimension by a wide std and
    leave its mean loose; the agent uses the mean as goal_hat, and most goal dims are sparse
    (zero on most days), so the mean is anchored towards the median by the L1 term (measured on
    smoke data: held-out MAE 0.076 -> 0.070, against 0.085 for the training-mean predictor).
    ``weights`` (B,) are per-row outcome weights (``outcomes.teacher_weights``)."""
    m = (mask > 0).to(mean.dtype)
    if weights is not None:  # outcome-weighted BC: each row's entries count w times
        m = m * weights.to(mean.dtype).reshape(-1, 1)
    l1 = masked_mean((mean - target).abs(), m)
    return l2_nll(mean, log_std, target, m) + l1_weight * l1
