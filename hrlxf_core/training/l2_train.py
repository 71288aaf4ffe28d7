"""L2 behaviour cloning on macro samples, held-out metrics, and goal_hat backfill of micro samples."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from hrlxf_core.datasets.macro import MACRO_SCHEMA
from hrlxf_core.datasets.outcomes import expert_name, teacher_weights
from hrlxf_core.io import read_parquet_checked
from hrlxf_core.labels import GOAL_DIM, GOAL_NAMES
from hrlxf_core.models.l2 import L2Config, L2Net, l2_loss
from hrlxf_core.models.schema import jsonable
from hrlxf_core.state import N_TEMPORAL, K
from hrlxf_core.training.checkpoint import (
    CHECKPOINT_FORMAT,
    feature_schema,
    load_model,
    save_checkpoint,
    schema_hash,
)
from hrlxf_core.training.loop import TrainConfig, fit, resolve_device, to_tensors
from hrlxf_core.training.prepare import prepared
from hrlxf_core.training.split import first_worlds, split_indices


@dataclass
class TrainedModel:
    """A trained layer: where its checkpoint is, and what it scored."""

    path: Path
    sha256: str
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    extra_history: list[tuple[str, list[dict[str, float]]]] = field(default_factory=list)
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    prepared_dir: str = ""
    prepared_reused: bool = False
    device: str = "cpu"


def read_samples(files: Sequence[Path], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """The sample files concatenated; a file written by an older dataset version (a missing or
    mistyped column) is named with the field, not left to a shape error inside the concat."""
    return pl.concat(
        [read_parquet_checked(Path(f), schema).select(list(schema)) for f in files], how="vertical"
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


def outcome_arrays(df: pl.DataFrame) -> dict[str, np.ndarray]:
    """What outcome weighting needs of each sample (never a model input): its world, its
    (world, agent) key, the expert's roster name, its level and its world score."""
    return {
        "world_id": df["world_id"].to_numpy().astype(str),
        "world_agent": (df["world_id"] + "/" + df["agent_id"]).to_numpy().astype(str),
        "expert": np.array([expert_name(t) for t in df["agent_type"].to_list()], dtype=str),
        "level": df["level"].to_numpy().astype(str),
        "agent_score": df["agent_score"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
    }


#: Keys of :func:`outcome_arrays` (never given to a model).
OUTCOME_KEYS = ("world_id", "world_agent", "expert", "level", "agent_score")


def weighted_splits(
    arrays: dict[str, np.ndarray],
    weighting: str,
    log: Callable[[str], None] = print,
    max_train_worlds: int = 0,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray], dict[str, Any]]:
    """Split by world, attach each sample's outcome weight as ``sample_weight`` and drop the
    samples weighted 0 (the ``top`` filter), in every split alike; with ``max_train_worlds``,
    keep only that many training worlds (``split.first_worlds``: nested subsets).

    Returns (model arrays per split, the world split, a summary for the checkpoint's metrics)."""
    split = split_indices(np.asarray(arrays["world_id"]))
    if max_train_worlds > 0:
        wid = np.asarray(arrays["world_id"])
        keep = first_worlds(wid[split["train"]], max_train_worlds)
        split["train"] = split["train"][np.isin(wid[split["train"]], list(keep))]
    w = teacher_weights(
        arrays["expert"], arrays["level"], arrays["agent_score"], arrays["world_agent"], weighting
    )
    sub: dict[str, dict[str, np.ndarray]] = {}
    kept: dict[str, int] = {}
    for s, idx in split.items():
        idx = idx[w[idx] > 0]
        kept[s] = len(idx)
        sub[s] = {k: np.asarray(v[idx]) for k, v in arrays.items() if k not in OUTCOME_KEYS}
        sub[s]["sample_weight"] = w[idx]
    teachers = sorted({str(e) for e in arrays["expert"][w > 0]})
    info = {
        "weighting": weighting,
        "rows_kept": kept,
        "rows_total": int(len(w)),
        "teachers": teachers,
        "train_worlds": int(len(set(np.asarray(arrays["world_id"])[split["train"]].tolist()))),
    }
    log(f"[weights] {weighting}: kept {kept} of {len(w):,} rows; teachers {teachers}")
    return sub, split, info


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
    arrays, pdir, reused = prepared(
        "l2", macro_files, schema_hash(feature_schema("l2")), work_dir / "prepared", macro_arrays
    )
    log(f"[l2] {len(arrays['goal']):,} macro samples ({'reused' if reused else 'prepared'} {pdir})")
    sub, split, weighting = weighted_splits(arrays, cfg.teacher_weighting, log, cfg.max_train_worlds)
    if len(sub["train"]["goal"]) == 0 or len(sub["val"]["goal"]) == 0:
        raise ValueError(
            f"L2 needs worlds in train and validation splits; got {[len(i) for i in split.values()]} rows"
        )
    torch.manual_seed(cfg.seed)
    model = L2Net(model_cfg)
    run_dir = run_dir_for(work_dir, "l2", pdir, asdict(model_cfg), cfg.run_key())
    res = fit(model, sub["train"], sub["val"], _l2_loss, cfg, run_dir / "bc", "l2", asdict(model_cfg), log)
    device = resolve_device(cfg.device)
    eval_split = "test" if len(sub["test"]["goal"]) else "val"
    pred = _predict(model, sub[eval_split], device)
    train_mean = _masked_mean(sub["train"]["goal"], sub["train"]["goal_mask"])
    metrics = l2_metrics(pred, sub[eval_split]["goal"], sub[eval_split]["goal_mask"], train_mean)
    metrics.update(
        eval_split=eval_split, best_epoch=res.best_epoch, best_val_nll=res.best_val, weighting=weighting
    )
    sha = save_checkpoint(
        out_path, _payload(model, model_cfg, metrics, lineage, res.history, "l2", train_mean)
    )
    return TrainedModel(
        out_path,
        sha,
        metrics,
        res.history,
        n_train=len(split["train"]),
        n_val=len(split["val"]),
        n_test=len(split["test"]),
        prepared_dir=str(pdir),
        prepared_reused=reused,
        device=res.device,
    )


def run_dir_for(
    work_dir: Path,
    kind: str,
    prepared_dir: Path,
    model_config: dict[str, Any],
    train_key: dict[str, Any],
) -> Path:
    """Checkpoints of a training run live under (data, architecture, training config): relaunching
    the same config on the same data resumes; new data, another architecture or any other knob
    (seed, batch size, weight decay, lr, epochs, weighting: ``TrainConfig.run_key``, plus what the
    caller adds, e.g. AWR's epochs) starts afresh, so no knob is silently ignored and foreign
    weights are never resumed."""
    key = schema_hash({"model_config": model_config, "train": train_key})[:10]
    return work_dir / "runs" / kind / f"{prepared_dir.name}-{key}"


def _masked_mean(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    return (x * (m > 0)).sum(0) / np.maximum((m > 0).sum(0), 1)


def _payload(model, model_cfg, metrics, lineage, history, kind, train_mean=None) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": asdict(model_cfg),
        "schema": feature_schema(kind),
        "metrics": jsonable(metrics),
        "lineage": jsonable(lineage or {}),
        "history": history,
        "train_mean": None if train_mean is None else torch.as_tensor(train_mean),
    }


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
    arrays, _, _ = prepared(
        "l2", macro_files, schema_hash(feature_schema("l2")), work_dir / "prepared", macro_arrays
    )
    sub, _, _ = weighted_splits(arrays, ck["metrics"]["weighting"]["weighting"], lambda _m: None)
    ev = sub[ck["metrics"]["eval_split"]]
    pred = _predict(model, ev, torch.device("cpu"))
    return l2_metrics(pred, ev["goal"], ev["goal_mask"], ck["train_mean"].numpy())
