"""L4: distil the heuristic teacher's α into the attention coordinator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from hrlxf_core.l4_features import N_GLOBAL, N_THREAD
from hrlxf_core.models.l4 import L4Config, L4Net, l4_distill_loss
from hrlxf_core.training.checkpoint import load_model
from hrlxf_core.training.loop import TrainConfig, fit, resolve_device, to_tensors
from hrlxf_core.training.skeleton import TrainedModel, finish_run, held_out, prepare_run, run_dir

#: Rounds with more live threads are truncated to this many (std agents rarely exceed ~12).
MAX_THREADS = 32


def l4_arrays(files: Sequence[Path]) -> dict[str, np.ndarray]:
    df = pl.concat([pl.read_parquet(f) for f in files], how="vertical").sort(["set_id", "seq"])
    df = df.with_columns(pl.int_range(pl.len()).over("set_id").alias("pos")).filter(
        pl.col("pos") < MAX_THREADS
    )
    sets = df.select("set_id", "world_id").unique(subset="set_id", maintain_order=True).with_row_index("s")
    df = df.join(sets.select("set_id", "s"), on="set_id", how="left", maintain_order="left")
    n_sets = sets.height
    s, pos = df["s"].to_numpy(), df["pos"].to_numpy()
    feats = np.zeros((n_sets, MAX_THREADS, N_THREAD), np.float32)
    valid = np.zeros((n_sets, MAX_THREADS), bool)
    teacher = np.zeros((n_sets, MAX_THREADS), np.float32)
    glob = np.zeros((n_sets, N_GLOBAL), np.float32)
    feats[s, pos] = df["thread_feats"].to_numpy().reshape(-1, N_THREAD)
    valid[s, pos] = True
    teacher[s, pos] = df["teacher_alpha"].to_numpy()
    glob[s] = df["global_feats"].to_numpy().reshape(-1, N_GLOBAL)
    teacher /= np.maximum(teacher.sum(1, keepdims=True), 1e-12)
    return {
        "thread_feats": feats,
        "thread_valid": valid,
        "global_feats": glob,
        "teacher_alpha": teacher,
        "world_id": sets["world_id"].to_numpy().astype(str),
    }


def _loss(model: torch.nn.Module, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    alpha = model(b["thread_feats"], b["thread_valid"], b["global_feats"]).float()
    loss = l4_distill_loss(alpha, b["teacher_alpha"], b["thread_valid"])
    return loss, {"kl": float(loss.detach())}


def _alpha(
    model: L4Net, arrays: dict[str, np.ndarray], device: torch.device, batch: int = 4096
) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(arrays["global_feats"]), batch):
            t = to_tensors(
                {
                    k: np.asarray(arrays[k][s : s + batch])
                    for k in ("thread_feats", "thread_valid", "global_feats")
                },
                device,
            )
            out.append(model(t["thread_feats"], t["thread_valid"], t["global_feats"]).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, MAX_THREADS))


def l4_metrics(alpha: np.ndarray, ev: dict[str, np.ndarray]) -> dict[str, Any]:
    """Distillation error: KL(teacher‖student), top-1 agreement, against a uniform α baseline."""
    valid, t = ev["thread_valid"], ev["teacher_alpha"]
    uniform = valid / np.maximum(valid.sum(1, keepdims=True), 1)

    def kl(p: np.ndarray) -> float:
        terms = np.where(
            valid & (t > 0), t * (np.log(np.maximum(t, 1e-12)) - np.log(np.maximum(p, 1e-12))), 0.0
        )
        return float(terms.sum(1).mean()) if len(t) else float("nan")

    top = (
        float((np.where(valid, alpha, -1).argmax(1) == np.where(valid, t, -1).argmax(1)).mean())
        if len(t)
        else float("nan")
    )
    return {
        "rows": int(len(t)),
        "kl": kl(alpha),
        "kl_uniform": kl(uniform),
        "top1_agreement": top,
        "mae_alpha": float(np.abs(alpha - t)[valid].mean()) if valid.any() else float("nan"),
        "beats_baseline": bool(kl(alpha) < kl(uniform)),
    }


def train_l4(
    distill_files: Sequence[Path],
    out_path: Path,
    work_dir: Path,
    cfg: TrainConfig,
    model_cfg: L4Config | None = None,
    lineage: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> TrainedModel:
    model_cfg = model_cfg or L4Config()
    prep = prepare_run("l4", distill_files, work_dir, l4_arrays, cfg, "thread sets", log, weighted=False)
    sub = prep.sub
    torch.manual_seed(cfg.seed)
    model = L4Net(model_cfg)
    rdir = run_dir(work_dir, "l4", prep, model_cfg, cfg)
    res = fit(model, sub["train"], sub["val"], _loss, cfg, rdir / "distill", "l4", asdict(model_cfg), log)
    ev_name = prep.eval_split
    metrics = l4_metrics(_alpha(model, sub[ev_name], resolve_device(cfg.device)), sub[ev_name])
    metrics.update(
        eval_split=ev_name, best_epoch=res.best_epoch, best_val_kl=res.best_val, weighting=prep.weighting
    )
    return finish_run("l4", out_path, model, model_cfg, metrics, lineage, res.history, prep, res.device)


def load_l4(path: Path, device: str = "cpu") -> tuple[L4Net, dict[str, Any]]:
    return load_model(path, "l4", L4Net, L4Config, device)


def reproduce_l4_metrics(path: Path, files: Sequence[Path], work_dir: Path) -> dict[str, Any]:
    model, ck = load_l4(path)
    ev = held_out("l4", files, work_dir, l4_arrays, ck, weighted=False)
    return l4_metrics(_alpha(model, ev, torch.device("cpu")), ev)
