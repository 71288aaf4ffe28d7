"""L2 behaviour cloning on macro samples, held-out metrics, and goal_hat backfill of micro samples."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from hrlxf_core.datasets.macro import MACRO_SCHEMA
from hrlxf_core.labels import GOAL_DIM, GOAL_NAMES
from hrlxf_core.models.l2 import L2Config, L2Net, l2_loss
from hrlxf_core.state import N_TEMPORAL, K
from hrlxf_core.training.checkpoint import load_model
from hrlxf_core.training.loop import TrainConfig, fit, resolve_device, to_tensors
from hrlxf_core.training.skeleton import (  # noqa: F401  (re-exported: the layers' shared names)
    OUTCOME_KEYS,
    TrainedModel,
    _payload,
    finish_run,
    held_out,
    outcome_arrays,
    prepare_run,
    read_samples,
    run_dir,
    run_dir_for,
    weighted_splits,
)


def macro_arrays(files: Sequence[Path]) -> dict[str, np.ndarray]:
    df = read_samples(files, MACRO_SCHEMA)
    n = df.height
    return {
        "x_static": df["x_static"].to_numpy().reshape(n, -1).astype(np.float32),
        "x_temporal": df["x_temporal"].to_numpy().reshape(n, K, N_TEMPORAL).astype(np.float32),
        "x_role": df["x_role"].to_numpy().reshape(n, -1).astype(np.float32),
        "goal": df["goal"].to_numpy().reshape(n, -1).astype(np.float32),
        "goal_mask": df["goal_mask"].to_numpy().reshape(n, -1).astype(np.float32),
        **outcome_arrays(df),
    }


def _l2_loss(model: torch.nn.Module, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    mean, log_std = model(b["x_static"], b["x_temporal"], b["x_role"])
    w = b.get("sample_weight")
    loss = l2_loss(mean.float(), log_std.float(), b["goal"], b["goal_mask"], weights=w)
    return loss, {"loss": float(loss.detach())}


def _predict(
    model: L2Net, arrays: dict[str, np.ndarray], device: torch.device, batch: int = 8192
) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(arrays["x_static"]), batch):
            t = to_tensors(
                {k: np.asarray(arrays[k][s : s + batch]) for k in ("x_static", "x_temporal", "x_role")},
                device,
            )
            out.append(model(t["x_static"], t["x_temporal"], t["x_role"])[0].float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, GOAL_DIM), np.float32)


def l2_metrics(
    pred: np.ndarray, goal: np.ndarray, mask: np.ndarray, train_mean: np.ndarray
) -> dict[str, Any]:
    """Per-dimension MAE of the model and of predicting the training mean, on masked entries."""
    m = mask > 0
    err = np.abs(pred - goal)
    base = np.abs(train_mean[None, :] - goal)
    per_dim = {}
    for i, name in enumerate(GOAL_NAMES):
        sel = m[:, i]
        if sel.any():
            mae, bmae = float(err[sel, i].mean()), float(base[sel, i].mean())
            per_dim[name] = {
                "mae": mae,
                "mae_train_mean": bmae,
                "relative": mae / bmae if bmae > 0 else float("nan"),
            }
    mae = float(err[m].mean()) if m.any() else float("nan")
    bmae = float(base[m].mean()) if m.any() else float("nan")
    return {
        "mae": mae,
        "mae_train_mean": bmae,
        "relative_error": mae / bmae if bmae else float("nan"),
        "beats_baseline": bool(mae < bmae),
        "per_dim": per_dim,
        "rows": int(len(goal)),
    }


def train_l2(
    macro_files: Sequence[Path],
    out_path: Path,
    work_dir: Path,
    cfg: TrainConfig,
    model_cfg: L2Config | None = None,
    lineage: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> TrainedModel:
    """BC of L2 on the macro samples of ``macro_files``; writes the final checkpoint to ``out_path``."""
    model_cfg = model_cfg or L2Config()
    prep = prepare_run("l2", macro_files, work_dir, macro_arrays, cfg, "macro samples", log)
    sub = prep.sub
    torch.manual_seed(cfg.seed)
    model = L2Net(model_cfg)
    res = fit(
        model, sub["train"], sub["val"], _l2_loss, cfg, run_dir(work_dir, "l2", prep, model_cfg, cfg) / "bc",
        "l2", asdict(model_cfg), log,
    )  # fmt: skip
    ev = sub[prep.eval_split]
    pred = _predict(model, ev, resolve_device(cfg.device))
    train_mean = _masked_mean(sub["train"]["goal"], sub["train"]["goal_mask"])
    metrics = l2_metrics(pred, ev["goal"], ev["goal_mask"], train_mean)
    metrics.update(
        eval_split=prep.eval_split,
        best_epoch=res.best_epoch,
        best_val_nll=res.best_val,
        weighting=prep.weighting,
    )
    return finish_run(
        "l2", out_path, model, model_cfg, metrics, lineage, res.history, prep, res.device,
        train_mean=torch.as_tensor(train_mean),
    )  # fmt: skip


def _masked_mean(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    return (x * (m > 0)).sum(0) / np.maximum((m > 0).sum(0), 1)


def load_l2(path: Path, device: str = "cpu") -> tuple[L2Net, dict[str, Any]]:
    return load_model(path, "l2", L2Net, L2Config, device)


def backfill_goal_hat(
    l2_path: Path, micro: pl.DataFrame, macro: pl.DataFrame, device: str = "cpu"
) -> pl.DataFrame:
    """Micro samples with ``goal`` = L2's goal_hat for their agent-day (from its day-start state)."""
    model, _ = load_l2(l2_path, device)
    key = ["world_id", "agent_id", "day"]
    days = micro.select(key).unique(maintain_order=True)
    joined = days.join(
        macro.select(*key, "x_static", "x_temporal", "x_role"), on=key, how="left", maintain_order="left"
    )
    if joined["x_static"].null_count():
        row = joined.filter(pl.col("x_static").is_null()).row(0, named=True)
        raise ValueError(f"goal_hat backfill: no macro sample for decision agent-day {row}")
    n = joined.height
    arrays = {
        "x_static": joined["x_static"].to_numpy().reshape(n, -1).astype(np.float32),
        "x_temporal": joined["x_temporal"].to_numpy().reshape(n, K, N_TEMPORAL).astype(np.float32),
        "x_role": joined["x_role"].to_numpy().reshape(n, -1).astype(np.float32),
    }
    goal = _predict(model, arrays, torch.device(device))
    goals = days.with_columns(pl.Series("goal_hat", goal.astype(np.float32)))
    out = micro.join(goals, on=key, how="left", maintain_order="left")
    return out.with_columns(pl.col("goal_hat").cast(micro.schema["goal"]).alias("goal")).drop("goal_hat")


def reproduce_l2_metrics(path: Path, macro_files: Sequence[Path], work_dir: Path) -> dict[str, Any]:
    """Reload a checkpoint into a fresh model and recompute its held-out metrics (asset check)."""
    model, ck = load_l2(path)
    ev = held_out("l2", macro_files, work_dir, macro_arrays, ck)
    pred = _predict(model, ev, torch.device("cpu"))
    return l2_metrics(pred, ev["goal"], ev["goal_mask"], ck["train_mean"].numpy())
