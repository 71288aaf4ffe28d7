"""L3: behaviour cloning on goal_hat micro samples, then advantage-weighted regression (AWR).

AWR, stated: each decision's return R is its thread's outcome reward
(``hrlxf_core.datasets.micro.thread_reward``: volume agreed, in days of production, scaled by the
price advantage over the trading price; 0 for a failed thread). The value head V(s), trained
jointly with BC on R, is the baseline; the advantage is A = R − V(s). AWR re-weights the BC terms
of each sample by w = min(exp(A / β), W_MAX), normalised to mean 1, so decisions of the expert
that led to better-than-expected outcomes are imitated more. β is the standard deviation of A
(scale-free); W_MAX bounds the variance of the weighted loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from hrlxf_core.models.l3 import L3Config, L3Net, l3_bc_loss
from hrlxf_core.models.l3_inputs import l3_model_inputs, l3_targets
from hrlxf_core.training.checkpoint import feature_schema, load_model, save_checkpoint, schema_hash
from hrlxf_core.training.l2_train import TrainedModel, _payload, run_dir_for
from hrlxf_core.training.loop import TrainConfig, fit, resolve_device, to_tensors
from hrlxf_core.training.prepare import prepared
from hrlxf_core.training.split import split_indices

AWR_W_MAX = 20.0
INPUT_KEYS = ("hist", "hist_len", "context", "time_mask", "op_mask")


def micro_arrays(files: Sequence[Path]) -> dict[str, np.ndarray]:
    df = pl.concat([pl.read_parquet(f) for f in files], how="vertical")
    out = {**l3_model_inputs(df), **l3_targets(df)}
    out["returns"] = df["reward"].to_numpy().astype(np.float32)
    out["base_delta"] = df["base_delta"].to_numpy().astype(np.int64)
    out["world_id"] = df["world_id"].to_numpy().astype(str)
    return out


def _loss(model: torch.nn.Module, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    out = model(*(b[k] for k in INPUT_KEYS))
    out = {k: (v.float() if v.is_floating_point() else v) for k, v in out.items()}
    return l3_bc_loss(out, b, b.get("awr_weight"))


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
    arrays, pdir, reused = prepared(
        "l3", micro_files, schema_hash(feature_schema("l3")), work_dir / "prepared", micro_arrays
    )
    log(f"[l3] {len(arrays['context']):,} micro samples ({'reused' if reused else 'prepared'} {pdir})")
    split = split_indices(np.asarray(arrays["world_id"]))
    sub = {
        s: {k: np.asarray(v[idx]) for k, v in arrays.items() if k != "world_id"} for s, idx in split.items()
    }
    if len(sub["train"]["context"]) == 0 or len(sub["val"]["context"]) == 0:
        raise ValueError(
            f"L3 needs worlds in train and validation splits; got {[len(i) for i in split.values()]} rows"
        )
    torch.manual_seed(bc_cfg.seed)
    model = L3Net(model_cfg)
    run_dir = run_dir_for(work_dir, "l3", pdir, asdict(model_cfg))
    bc = fit(model, sub["train"], sub["val"], _loss, bc_cfg, run_dir / "bc", "l3", asdict(model_cfg), log)
    device = resolve_device(bc_cfg.device)
    extra = []
    awr_info: dict[str, Any] = {"epochs": 0}
    if awr_epochs > 0:
        v_train = _forward_all(model, sub["train"], device)["value"]
        adv = sub["train"]["returns"] - v_train
        beta = float(adv.std()) or 1.0
        w = np.minimum(np.exp(adv / beta), AWR_W_MAX)
        w = (w / w.mean()).astype(np.float32)
        train_w = {**sub["train"], "awr_weight": w}
        val_w = {**sub["val"], "awr_weight": np.ones(len(sub["val"]["context"]), np.float32)}
        awr_cfg = replace(bc_cfg, max_epochs=awr_epochs, lr=bc_cfg.lr * 0.3, warmup_epochs=0)
        awr = fit(model, train_w, val_w, _loss, awr_cfg, run_dir / "awr", "l3", asdict(model_cfg), log)
        extra = [("AWR", awr.history)]
        awr_info = {
            "epochs": len(awr.history),
            "beta": beta,
            "weight_max": float(w.max()),
            "advantage_mean": float(adv.mean()),
            "best_val": awr.best_val,
        }
    ev_name = "test" if len(sub["test"]["context"]) else "val"
    pred = _forward_all(model, sub[ev_name], device)
    majority = int(np.bincount(sub["train"]["op_label"], minlength=3).argmax())
    metrics = l3_metrics(pred, sub[ev_name], majority)
    metrics.update(
        eval_split=ev_name,
        bc_best_epoch=bc.best_epoch,
        bc_best_val=bc.best_val,
        awr=awr_info,
        train_op_majority=majority,
    )
    payload = _payload(model, model_cfg, metrics, lineage, bc.history, "l3")
    payload["awr_history"] = extra[0][1] if extra else []
    sha = save_checkpoint(out_path, payload)
    return TrainedModel(
        out_path,
        sha,
        metrics,
        bc.history,
        extra,
        len(split["train"]),
        len(split["val"]),
        len(split["test"]),
        str(pdir),
        reused,
        bc.device,
    )


def load_l3(path: Path, device: str = "cpu") -> tuple[L3Net, dict[str, Any]]:
    return load_model(path, "l3", L3Net, L3Config, device)


def reproduce_l3_metrics(path: Path, micro_files: Sequence[Path], work_dir: Path) -> dict[str, Any]:
    model, ck = load_l3(path)
    arrays, _, _ = prepared(
        "l3", micro_files, schema_hash(feature_schema("l3")), work_dir / "prepared", micro_arrays
    )
    split = split_indices(np.asarray(arrays["world_id"]))
    ev = {k: np.asarray(v[split[ck["metrics"]["eval_split"]]]) for k, v in arrays.items() if k != "world_id"}
    return l3_metrics(_forward_all(model, ev, torch.device("cpu")), ev, ck["metrics"]["train_op_majority"])
