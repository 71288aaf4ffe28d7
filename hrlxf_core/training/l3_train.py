"""L3: behaviour cloning on goal_hat micro samples, then advantage-weighted regression (AWR).

Outcome-weighted BC: each sample carries the weight ``outcomes.teacher_weights`` gives its
agent-world (``TrainConfig.teacher_weighting``: uniform, the top experts per level, or by score);
samples weighted 0 are dropped from every split.

AWR, stated: each decision's return R is the realised profit of its agent-day, as a discounted
return-to-go (``hrlxf_core.datasets.outcomes``: R = Σ_k γ^k r_{d+k}, r = the day's balance change
over the initial balance, γ = 0.9; a world's r sum to its score − 1). The value head V(s),
trained jointly with BC on R, is the baseline; the advantage is A = R − V(s). AWR re-weights the
BC terms of each sample by w = min(exp(A / β), W_MAX) × its outcome weight, normalised to mean 1,
so decisions of the expert that led to better-than-expected profit are imitated more. β is the
standard deviation of A (scale-free); W_MAX bounds the variance of the weighted loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from hrlxf_core.datasets.micro import MICRO_SCHEMA
from hrlxf_core.models.l3 import L3Config, L3Net, l3_bc_loss
from hrlxf_core.models.l3_inputs import l3_model_inputs, l3_targets
from hrlxf_core.training.checkpoint import load_model, save_checkpoint
from hrlxf_core.training.loop import TrainConfig, fit, resolve_device, to_tensors
from hrlxf_core.training.skeleton import (
    TrainedModel,
    _payload,
    finish_run,
    held_out,
    outcome_arrays,
    prepare_run,
    read_samples,
    run_dir,
)

AWR_W_MAX = 20.0
INPUT_KEYS = ("hist", "hist_len", "context", "time_mask", "op_mask")


def micro_arrays(files: Sequence[Path]) -> dict[str, np.ndarray]:
    df = read_samples(files, MICRO_SCHEMA)
    out = {**l3_model_inputs(df), **l3_targets(df)}
    out["returns"] = df["reward"].cast(pl.Float64).fill_null(0.0).to_numpy().astype(np.float32)
    out["base_delta"] = df["base_delta"].to_numpy().astype(np.int64)
    out.update(outcome_arrays(df))
    return out


def _loss(model: torch.nn.Module, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    out = model(*(b[k] for k in INPUT_KEYS))
    out = {k: (v.float() if v.is_floating_point() else v) for k, v in out.items()}
    return l3_bc_loss(out, b, b.get("awr_weight", b.get("sample_weight")))


def _forward_all(
    model: L3Net, arrays: dict[str, np.ndarray], device: torch.device, batch: int = 8192
) -> dict[str, np.ndarray]:
    model.eval()
    parts: dict[str, list[np.ndarray]] = {"op": [], "delta": [], "residual": [], "value": []}
    with torch.no_grad():
        for s in range(0, len(arrays["context"]), batch):
            t = to_tensors({k: np.asarray(arrays[k][s : s + batch]) for k in INPUT_KEYS}, device)
            out = model(*(t[k] for k in INPUT_KEYS))
            parts["op"].append(out["op_logits"].argmax(-1).cpu().numpy())
            parts["delta"].append(out["delta_logits"].argmax(-1).cpu().numpy())
            parts["residual"].append(out["residual_mean"].float().cpu().numpy())
            parts["value"].append(out["value"].float().cpu().numpy())
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}


def l3_metrics(
    pred: dict[str, np.ndarray], ev: dict[str, np.ndarray], train_op_majority: int
) -> dict[str, Any]:
    """Held-out metrics against naive baselines: op accuracy vs the majority class, residual MAE vs
    a zero residual (= playing the baseline), delivery-time accuracy vs the baseline δ."""
    op = ev["op_label"]
    counter = ev["has_counter"].astype(bool)
    dl = ev["delta_label"]
    res_t = ev["residual_target"]
    m: dict[str, Any] = {"rows": int(len(op))}
    m["op_accuracy"] = float((pred["op"] == op).mean()) if len(op) else float("nan")
    m["op_accuracy_majority"] = float((op == train_op_majority).mean()) if len(op) else float("nan")
    if counter.any():
        mae = np.abs(pred["residual"][counter] - res_t[counter]).mean(0)
        zero = np.abs(res_t[counter]).mean(0)
        m["residual_mae_q"], m["residual_mae_p"] = float(mae[0]), float(mae[1])
        m["residual_mae_q_zero"], m["residual_mae_p_zero"] = float(zero[0]), float(zero[1])
        sel = counter & (dl >= 0)
        m["delta_accuracy"] = float((pred["delta"][sel] == dl[sel]).mean()) if sel.any() else float("nan")
        m["delta_accuracy_baseline"] = (
            float((ev["base_delta"][sel] == dl[sel]).mean()) if sel.any() else float("nan")
        )
    m["beats_baseline"] = bool(
        m["op_accuracy"] > m["op_accuracy_majority"]
        and (
            not counter.any()
            or (
                m["residual_mae_q"] + m["residual_mae_p"]
                < m["residual_mae_q_zero"] + m["residual_mae_p_zero"]
            )
        )
    )
    return m


def train_l3(
    micro_files: Sequence[Path],
    out_path: Path,
    work_dir: Path,
    bc_cfg: TrainConfig,
    awr_epochs: int = 5,
    model_cfg: L3Config | None = None,
    lineage: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> TrainedModel:
    """BC then AWR of L3 on goal_hat micro samples; final checkpoint at ``out_path``."""
    model_cfg = model_cfg or L3Config()
    prep = prepare_run("l3", micro_files, work_dir, micro_arrays, bc_cfg, "micro samples", log)
    sub, weighting = prep.sub, prep.weighting
    torch.manual_seed(bc_cfg.seed)
    model = L3Net(model_cfg)
    rdir = run_dir(work_dir, "l3", prep, model_cfg, bc_cfg, awr_epochs=awr_epochs)
    bc = fit(model, sub["train"], sub["val"], _loss, bc_cfg, rdir / "bc", "l3", asdict(model_cfg), log)
    device = resolve_device(bc_cfg.device)
    ev_name = prep.eval_split
    majority = int(np.bincount(sub["train"]["op_label"], minlength=3).argmax())
    bc_path = bc_checkpoint_path(out_path)
    if awr_epochs > 0:  # the BC policy is a candidate of its own for model selection by play
        bc_metrics = l3_metrics(_forward_all(model, sub[ev_name], device), sub[ev_name], majority)
        bc_metrics.update(
            eval_split=ev_name, bc_best_epoch=bc.best_epoch, bc_best_val=bc.best_val, awr={"epochs": 0},
            train_op_majority=majority, weighting=weighting, phase="bc",
        )  # fmt: skip
        save_checkpoint(bc_path, _payload(model, model_cfg, bc_metrics, lineage, bc.history, "l3"))
    extra = []
    awr_info: dict[str, Any] = {"epochs": 0}
    if awr_epochs > 0:
        v_train = _forward_all(model, sub["train"], device)["value"]
        adv = sub["train"]["returns"] - v_train
        beta = float(adv.std()) or 1.0
        w = np.minimum(np.exp(adv / beta), AWR_W_MAX) * sub["train"]["sample_weight"]
        w = (w / w.mean()).astype(np.float32)
        train_w = {**sub["train"], "awr_weight": w}
        val_w = {**sub["val"], "awr_weight": sub["val"]["sample_weight"]}
        awr_cfg = replace(bc_cfg, max_epochs=awr_epochs, lr=bc_cfg.lr * 0.3, warmup_epochs=0)
        awr = fit(model, train_w, val_w, _loss, awr_cfg, rdir / "awr", "l3", asdict(model_cfg), log)
        extra = [("AWR", awr.history)]
        awr_info = {
            "epochs": len(awr.history),
            "beta": beta,
            "weight_max": float(w.max()),
            "advantage_mean": float(adv.mean()),
            "best_val": awr.best_val,
        }
    pred = _forward_all(model, sub[ev_name], device)
    metrics = l3_metrics(pred, sub[ev_name], majority)
    metrics.update(
        eval_split=ev_name,
        bc_best_epoch=bc.best_epoch,
        bc_best_val=bc.best_val,
        awr=awr_info,
        train_op_majority=majority,
        weighting=weighting,
    )
    return finish_run(
        "l3", out_path, model, model_cfg, metrics, lineage, bc.history, prep, bc.device, extra,
        awr_history=extra[0][1] if extra else [],
    )  # fmt: skip


def bc_checkpoint_path(out_path: Path) -> Path:
    """Where train_l3 keeps the behaviour-cloned policy before AWR (a selection candidate)."""
    return out_path.with_name(out_path.stem + "_bc" + out_path.suffix)


def load_l3(path: Path, device: str = "cpu") -> tuple[L3Net, dict[str, Any]]:
    return load_model(path, "l3", L3Net, L3Config, device)


def reproduce_l3_metrics(path: Path, micro_files: Sequence[Path], work_dir: Path) -> dict[str, Any]:
    model, ck = load_l3(path)
    ev = held_out("l3", micro_files, work_dir, micro_arrays, ck)
    return l3_metrics(_forward_all(model, ev, torch.device("cpu")), ev, ck["metrics"]["train_op_majority"])
