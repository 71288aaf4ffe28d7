"""Building blocks shared by L2/L3/L4, and the checkpoint payload.

Why hand-written attention: ``nn.TransformerEncoder`` / ``nn.MultiheadAttention`` switch to a
"fast path" in eval mode (nested tensors, other kernels), so train and eval numerics differ and
padded positions come back as zeros or NaN depending on the path. One small pre-norm block on
``F.scaled_dot_product_attention`` with an explicit boolean mask behaves the same in both modes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: Logit given to infeasible choices: finite, so a row with every choice masked stays finite
#: (uniform) instead of NaN, and far below any real logit, so argmax never picks it otherwise.
MASK_VALUE = -1e9
LOG_2PI = math.log(2.0 * math.pi)


def mlp(sizes: list[int] | tuple[int, ...], dropout: float = 0.0, last_act: bool = False) -> nn.Sequential:
    """Linear → GELU stack; ``sizes`` = [in, hidden..., out]."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_act:
            layers.append(nn.GELU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def scaled_sigmoid(z: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Map R onto (lo, hi) smoothly (bounded outputs with a gradient everywhere)."""
    return lo + (hi - lo) * torch.sigmoid(z)


def inverse_scaled_sigmoid(y: float, lo: float, hi: float) -> float:
    """The pre-activation giving ``y`` under :func:`scaled_sigmoid` (for bias initialisation)."""
    f = min(max((y - lo) / (hi - lo), 1e-6), 1 - 1e-6)
    return math.log(f / (1 - f))


def soft_bound(z: torch.Tensor, bound: float) -> torch.Tensor:
    """``bound·tanh(z/bound)``: identity near 0, never beyond ±bound."""
    return bound * torch.tanh(z / bound)


def gaussian_nll(mean: torch.Tensor, log_std: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Element-wise Gaussian negative log-likelihood (with the constant, so it is a true NLL)."""
    return 0.5 * ((target - mean) * torch.exp(-log_std)) ** 2 + log_std + 0.5 * LOG_2PI


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ``mask`` (0 with a gradient path when the mask is empty)."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


#: Set while a graph is exported (:func:`explicit_attention`); a list so that it is one mutable cell.
_EXPLICIT_ATTENTION = [False]


@contextlib.contextmanager
def explicit_attention() -> Iterator[None]:
    """Attention blocks write attention out (softmax of masked scores) instead of calling
    ``scaled_dot_product_attention`` while this is active: the same function, a smaller
    exported graph. (Not ``torch.onnx.is_in_onnx_export``: reading ``torch.onnx`` imports it,
    ~0.1-0.3 s on an agent's first round.)"""
    _EXPLICIT_ATTENTION[0] = True
    try:
        yield
    finally:
        _EXPLICIT_ATTENTION[0] = False


class AttentionBlock(nn.Module):
    """Pre-norm self-attention + MLP block over a set/sequence with a key mask.

    ``key_valid`` (B, L) bool: keys that take part. Every row must have at least one valid key
    (callers keep an always-valid context/global token in the sequence)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not a multiple of n_heads={n_heads}")
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = mlp([d_model, d_ff, d_model], dropout=dropout)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, key_valid: torch.Tensor, n_query: int | None = None) -> torch.Tensor:
        """(B, L, d) → (B, L, d); with ``n_query``, only the first ``n_query`` tokens' outputs
        (B, n_query, d): every token is still a key and a value, but queries, the projection and
        the MLP run on those tokens alone. A last block whose caller reads one token (L3's context
        token) so does a quarter of the work, with the same result."""
        b, n, d = x.shape
        h, dh = self.norm1(x), d // self.n_heads
        if n_query is None:
            q, k, v = self.qkv(h).view(b, n, 3, self.n_heads, dh).unbind(2)
            m = n
        else:
            m = n_query
            w, bias = self.qkv.weight, self.qkv.bias
            q = F.linear(h[:, :m], w[:d], bias[:d]).view(b, m, self.n_heads, dh)
            k, v = F.linear(h, w[d:], bias[d:]).view(b, n, 2, self.n_heads, dh).unbind(2)
            x = x[:, :m]
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, heads, L, d_head)
        attn_mask = key_valid[:, None, None, :]  # (B, 1, 1, L): True = attend
        if _EXPLICIT_ATTENTION[0]:
            # the same attention written out, for the ONNX export (explicit_attention): the
            # exporter's form of sdpa guards against rows with no valid key (ours always have
            # one) at the cost of ~20 more graph nodes
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(dh))
            y = torch.softmax(scores.masked_fill(~attn_mask, float("-inf")), dim=-1) @ v
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
            )
        x = x + self.proj(y.transpose(1, 2).reshape(b, m, d))
        return x + self.ff(self.norm2(x))


def as_tensors(arrays: dict[str, Any], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """numpy arrays → tensors (bool stays bool, integers → int64, floats → float32)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in arrays.items():
        t = torch.as_tensor(v)
        if t.is_floating_point():
            t = t.float()
        elif t.dtype != torch.bool:
            t = t.long()
        out[k] = t.to(device)
    return out


def config_from_dict(cls: type, d: dict[str, Any]) -> Any:
    """Rebuild a config dataclass from its stored dict (lists back to tuples; unknown keys rejected)."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {sorted(unknown)}")
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    return cls(**kw)
