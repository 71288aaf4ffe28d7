"""The one training loop used by L2, L3 (BC and AWR) and L4.

Why it is written this way:
- Exact resume: every epoch's shuffling and dropout draw from generators seeded by
  (seed, epoch), and the last checkpoint holds model, optimizer, scheduler, epoch and history,
  so training resumed after epoch k ends with the same weights as uninterrupted training.
- The configured learning rate wins on resume (the older implementation kept the old one):
  the schedule is a pure function of (configured lr, epoch), re-applied after loading.
- CPU and CUDA: tensors live on the chosen device; bf16 autocast on CUDA.
- Early stopping on the validation loss; the best epoch's weights are restored at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrlxf_core.training.checkpoint import (
    CHECKPOINT_FORMAT,
    feature_schema,
    load_checkpoint,
    load_state_strict,
    save_checkpoint,
)

Batch = dict[str, torch.Tensor]
LossFn = Callable[[torch.nn.Module, Batch], tuple[torch.Tensor, dict[str, float]]]


@dataclass
class TrainConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 512
    max_epochs: int = 30
    patience: int = 5
    min_delta: float = 1e-4
    warmup_epochs: int = 1
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"  # auto / cpu / cuda
    #: outcome weighting of the BC samples (``hrlxf_core.datasets.outcomes.WEIGHTINGS``)
    teacher_weighting: str = "uniform"
    #: train on at most this many training-split worlds (0 = all): a learning curve's x axis;
    #: the validation and test worlds stay the same
    max_train_worlds: int = 0

    def run_key(self) -> dict[str, Any]:
        """What decides a run's result: every field but the device. Two launches with the same
        key on the same data resume one run; any other knob starts a fresh one."""
        return {k: v for k, v in asdict(self).items() if k != "device"}


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val: float = math.inf
    stopped_early: bool = False
    resumed_from_epoch: int = 0
    device: str = "cpu"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    return torch.device(name)


def lr_factor(epoch: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to 5 % of the configured lr."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    span = max(cfg.max_epochs - cfg.warmup_epochs, 1)
    t = min((epoch - cfg.warmup_epochs) / span, 1.0)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))


def to_tensors(arrays: dict[str, np.ndarray], device: torch.device) -> Batch:
    out = {}
    for k, v in arrays.items():
        t = torch.from_numpy(np.ascontiguousarray(v))
        if t.dtype == torch.float64:
            t = t.float()
        out[k] = t.to(device)
    return out


def _n_rows(batch: Batch) -> int:
    return int(next(iter(batch.values())).shape[0])


def _take(batch: Batch, idx: torch.Tensor) -> Batch:
    return {k: v[idx] for k, v in batch.items()}


class _TermMeans:
    """Row-weighted means of the loss terms a loss function reports (its ``parts``), per epoch.

    Why: the total alone hides which head stops learning (op CE, residual NLL, δ CE, value);
    every term is logged and plotted. Row counts (``*_rows``) are summed, not averaged."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.n = 0

    def add(self, parts: dict[str, float], rows: int) -> None:
        self.n += rows
        for k, v in parts.items():
            if k == "loss":  # the total is logged as train_loss / val_loss already
                continue
            self.sums[k] = self.sums.get(k, 0.0) + (float(v) if k.endswith("_rows") else float(v) * rows)

    def means(self, prefix: str) -> dict[str, float]:
        n = max(self.n, 1)
        return {f"{prefix}{k}": (v if k.endswith("_rows") else v / n) for k, v in self.sums.items()}


def evaluate_loss(
    model: torch.nn.Module,
    data: Batch,
    loss_fn: LossFn,
    batch_size: int,
    device: torch.device,
    terms: _TermMeans | None = None,
) -> float:
    model.eval()
    n, total = _n_rows(data), 0.0
    if n == 0:
        return math.nan
    with torch.no_grad(), _autocast(device):
        for s in range(0, n, batch_size):
            idx = torch.arange(s, min(s + batch_size, n), device=device)
            loss, parts = loss_fn(model, _take(data, idx))
            total += float(loss) * len(idx)
            if terms is not None:
                terms.add(parts, len(idx))
    return total / n


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def fit(
    model: torch.nn.Module,
    train: dict[str, np.ndarray],
    val: dict[str, np.ndarray],
    loss_fn: LossFn,
    cfg: TrainConfig,
    ckpt_dir: Path,
    kind: str,
    model_config: dict[str, Any],
    log: Callable[[str], None] = print,
    resume: bool = True,
    stop_after_epochs: int | None = None,
) -> FitResult:
    """Train ``model`` with early stopping; ``ckpt_dir/last.pt`` allows resuming, ``best.pt`` holds
    the best epoch. ``stop_after_epochs`` interrupts after that many epochs of this call (tests)."""
    device = resolve_device(cfg.device)
    model.to(device)
    tr, va = to_tensors(train, device), to_tensors(val, device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    result = FitResult(device=str(device))
    start_epoch, bad_epochs = 0, 0
    last = ckpt_dir / "last.pt"
    if resume and last.exists():
        ck = load_checkpoint(last, kind)
        load_state_strict(model, ck["state_dict"], last)
        opt.load_state_dict(ck["optimizer"])
        start_epoch = int(ck["epoch"]) + 1
        result.history = list(ck["history"])
        result.best_epoch, result.best_val = int(ck["best_epoch"]), float(ck["best_val"])
        bad_epochs = int(ck["bad_epochs"])
        result.resumed_from_epoch = start_epoch
        log(
            f"[{kind}] resumed from {last} at epoch {start_epoch} (lr re-derived from the configured {cfg.lr:g})"
        )
    n = _n_rows(tr)
    calls = 0
    for epoch in range(start_epoch, cfg.max_epochs):
        if bad_epochs >= cfg.patience:
            result.stopped_early = True
            break
        for g in opt.param_groups:  # the configured lr always wins, also after a resume
            g["lr"] = cfg.lr * lr_factor(epoch, cfg)
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=gen).to(device)
        model.train()
        t0, seen, total = time.perf_counter(), 0, 0.0
        train_terms, val_terms = _TermMeans(), _TermMeans()
        for s in range(0, n, cfg.batch_size):
            idx = perm[s : s + cfg.batch_size]
            with _autocast(device):
                loss, parts = loss_fn(model, _take(tr, idx))
            train_terms.add(parts, len(idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        secs = time.perf_counter() - t0
        val_loss = evaluate_loss(model, va, loss_fn, max(cfg.batch_size, 4096), device, val_terms)
        row = {
            "epoch": epoch,
            "train_loss": total / max(seen, 1),
            "val_loss": val_loss,
            "lr": opt.param_groups[0]["lr"],
            "seconds": secs,
            "samples_per_s": seen / max(secs, 1e-9),
            **train_terms.means("train_"),
            **val_terms.means("val_"),
        }
        result.history.append(row)
        # a non-finite validation loss never becomes the best (the first epoch's only keeps a
        # best.pt on disk, with best_val = inf, so any finite epoch after it replaces it)
        finite_val = math.isfinite(val_loss)
        improved = finite_val and (
            not math.isfinite(result.best_val) or val_loss < result.best_val - cfg.min_delta
        )
        if improved or result.best_epoch < 0:
            result.best_val = val_loss if finite_val else math.inf
            result.best_epoch, bad_epochs = epoch, 0
            _save(ckpt_dir / "best.pt", model, opt, epoch, result, bad_epochs, kind, model_config, cfg)
        else:
            bad_epochs += 1
        _save(last, model, opt, epoch, result, bad_epochs, kind, model_config, cfg)
        log(
            f"[{kind}] epoch {epoch}: train {row['train_loss']:.4f} val {val_loss:.4f} lr {row['lr']:.2e} "
            f"({row['samples_per_s']:,.0f} samples/s on {device})"
        )
        calls += 1
        if stop_after_epochs is not None and calls >= stop_after_epochs:
            return result
    if not math.isfinite(result.best_val):
        raise ValueError(
            f"[{kind}] the validation loss was not finite in any of {len(result.history)} epoch(s) "
            f"(last: {result.history[-1]['val_loss'] if result.history else 'none'}); no weights are "
            f"restored from {ckpt_dir}. Check the data for NaN/inf values or lower the learning rate."
        )
    best = load_checkpoint(ckpt_dir / "best.pt", kind)
    load_state_strict(model, best["state_dict"], ckpt_dir / "best.pt")
    return result


def _save(path: Path, model, opt, epoch, result: FitResult, bad_epochs, kind, model_config, cfg) -> None:
    save_checkpoint(
        path,
        {
            "format": CHECKPOINT_FORMAT,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "config": model_config,
            "schema": feature_schema(kind),
            "optimizer": opt.state_dict(),
            "epoch": epoch,
            "history": result.history,
            "best_epoch": result.best_epoch,
            "best_val": result.best_val,
            "bad_epochs": bad_epochs,
            "train_config": asdict(cfg),
        },
    )
