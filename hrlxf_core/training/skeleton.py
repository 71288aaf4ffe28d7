"""The skeleton every layer's training shares: prepare, split, fit, metrics, checkpoint.

Why one skeleton: L2, L3 and L4 each did the same five steps in three copies (prepared-array
cache, world split with outcome weights, run directory keyed on the full config, the loop, the
checkpoint payload), and a fix in one copy did not reach the others. A layer module now supplies
only what is its own — how its arrays are built from files, its model and loss, and its held-out
metrics — and calls :func:`prepare_run` and :func:`finish_run` around ``loop.fit``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from hrlxf_core.datasets.outcomes import expert_name, teacher_weights
from hrlxf_core.io import read_parquet_checked
from hrlxf_core.models.schema import jsonable
from hrlxf_core.training.checkpoint import CHECKPOINT_FORMAT, feature_schema, save_checkpoint, schema_hash
from hrlxf_core.training.loop import TrainConfig
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


@dataclass
class PreparedRun:
    """What :func:`prepare_run` hands a layer: its arrays per split (model inputs and targets,
    ``sample_weight`` included), the world split, the weighting summary and the cache entry."""

    sub: dict[str, dict[str, np.ndarray]]
    split: dict[str, np.ndarray]
    weighting: dict[str, Any]
    prepared_dir: Path
    reused: bool

    @property
    def eval_split(self) -> str:
        """Held-out metrics are on the test worlds, or on validation when there are none."""
        return "test" if len(next(iter(self.sub["test"].values()), ())) else "val"


def prepare_run(
    kind: str,
    files: Sequence[Path],
    work_dir: Path,
    build: Callable[[Sequence[Path]], dict[str, np.ndarray]],
    cfg: TrainConfig,
    what: str,
    log: Callable[[str], None] = print,
    weighted: bool = True,
) -> PreparedRun:
    """Prepared arrays of ``files`` (cached by content and feature schema), split by world, with
    outcome weights when the layer imitates experts (``weighted``); a layer that does not (L4
    distils a heuristic teacher) refuses any weighting but ``uniform`` instead of ignoring it."""
    arrays, pdir, reused = prepared(
        kind, files, schema_hash(feature_schema(kind)), work_dir / "prepared", build
    )
    n = len(np.asarray(arrays["world_id"]))
    log(f"[{kind}] {n:,} {what} ({'reused' if reused else 'prepared'} {pdir})")
    if weighted:
        sub, split, weighting = weighted_splits(arrays, cfg.teacher_weighting, log, cfg.max_train_worlds)
    else:
        if cfg.teacher_weighting != "uniform":
            raise ValueError(
                f"{kind}: teacher_weighting={cfg.teacher_weighting!r} does not apply: {kind} distils a "
                "heuristic teacher's output, not an expert's actions (use 'uniform')"
            )
        split = split_indices(np.asarray(arrays["world_id"]))
        sub = {
            s: {k: np.asarray(v[idx]) for k, v in arrays.items() if k != "world_id"}
            for s, idx in split.items()
        }
        weighting = {
            "weighting": "uniform",
            "rows_kept": {s: len(i) for s, i in split.items()},
            "rows_total": n,
        }
    sizes = {s: len(next(iter(d.values()), ())) for s, d in sub.items()}
    if sizes["train"] == 0 or sizes["val"] == 0:
        raise ValueError(f"{kind.upper()} needs worlds in train and validation splits; got {sizes} {what}")
    return PreparedRun(sub, split, weighting, pdir, reused)


def run_dir(
    work_dir: Path, kind: str, prep: PreparedRun, model_cfg: Any, cfg: TrainConfig, **extra: Any
) -> Path:
    """The run directory of this layer's training (``run_dir_for`` on the full config)."""
    return run_dir_for(work_dir, kind, prep.prepared_dir, asdict(model_cfg), {**cfg.run_key(), **extra})


def finish_run(
    kind: str,
    out_path: Path,
    model: torch.nn.Module,
    model_cfg: Any,
    metrics: dict[str, Any],
    lineage: dict[str, Any] | None,
    history: list[dict[str, float]],
    prep: PreparedRun,
    device: str,
    extra_history: list[tuple[str, list[dict[str, float]]]] | None = None,
    **payload_extra: Any,
) -> TrainedModel:
    """Write the layer's final checkpoint and describe it."""
    payload = {**_payload(model, model_cfg, metrics, lineage, history, kind), **payload_extra}
    sha = save_checkpoint(out_path, payload)
    return TrainedModel(
        out_path,
        sha,
        metrics,
        history,
        list(extra_history or []),
        len(prep.split["train"]),
        len(prep.split["val"]),
        len(prep.split["test"]),
        str(prep.prepared_dir),
        prep.reused,
        device,
    )


def held_out(
    kind: str,
    files: Sequence[Path],
    work_dir: Path,
    build: Callable[[Sequence[Path]], dict[str, np.ndarray]],
    ck: dict[str, Any],
    weighted: bool = True,
) -> dict[str, np.ndarray]:
    """The held-out arrays a checkpoint's metrics were computed on (its recorded eval split and
    weighting), rebuilt from the files: what a reload check recomputes its metrics on."""
    w = (ck["metrics"].get("weighting") or {}).get("weighting", "uniform")
    cfg = TrainConfig(teacher_weighting=w)
    prep = prepare_run(kind, files, work_dir, build, cfg, "samples", lambda _m: None, weighted)
    return prep.sub[ck["metrics"]["eval_split"]]
