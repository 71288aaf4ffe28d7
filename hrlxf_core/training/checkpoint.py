"""Checkpoints: ``{state_dict, config, schema, metrics, lineage, ...}`` written atomically and
read with ``torch.load(weights_only=True)``.

The schema records the input feature layout (dims, normalisers, label constants) and its hash.
Loading a checkpoint whose schema differs from the code, or whose tensors do not fit the model,
is a clear error naming the file and the mismatch, never a silently wrong model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from hrlxf_core import constants, labels, normalization
from hrlxf_core.datasets import micro
from hrlxf_core.io import atomic_write
from hrlxf_core.l4_features import N_GLOBAL, N_THREAD
from hrlxf_core.state import N_STATIC, N_TEMPORAL

CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used with this code."""


def feature_schema(kind: str) -> dict[str, Any]:
    """The input/label layout a model of ``kind`` (l2 / l3 / l4) was trained on."""
    common = {
        "kind": kind,
        "H": constants.H,
        "normalizers": {k: getattr(normalization, k) for k in dir(normalization) if k.isupper()},
    }
    if kind == "l2":
        return {
            **common,
            "n_static": N_STATIC,
            "n_temporal": N_TEMPORAL,
            "n_role": 2,
            "goal_dim": labels.GOAL_DIM,
            "bucket_edges": [list(e) for e in labels.BUCKET_EDGES],
            "quantity_label_max": labels.QUANTITY_LABEL_MAX,
            "price_ratio_range": list(labels.PRICE_RATIO_RANGE),
        }
    if kind == "l3":
        from hrlxf_core.models.l3_inputs import L3_CONTEXT_NAMES

        return {
            **common,
            "hist_len": micro.HIST_LEN,
            "hist_features": micro.HIST_FEATURES,
            "context": list(L3_CONTEXT_NAMES),
            "ops": list(micro.OP_NAMES),
            "goal_dim": labels.GOAL_DIM,
        }
    if kind == "l4":
        from hrlxf_core.l4_features import THREAD_FEATURE_NAMES

        return {
            **common,
            "thread_features": list(THREAD_FEATURE_NAMES),
            "n_thread": N_THREAD,
            "n_global": N_GLOBAL,
        }
    raise ValueError(f"unknown model kind {kind!r}")


def schema_hash(schema: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(schema, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_checkpoint(path: Path, payload: dict[str, Any]) -> str:
    """Write atomically; returns the sha256 of the file."""
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return file_sha256(path)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_checkpoint(path: Path, kind: str) -> dict[str, Any]:
    """Load and check a checkpoint of ``kind``; raises CheckpointError naming the mismatch."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file is missing")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    for key in ("state_dict", "config", "schema", "format"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: field {key!r} is missing")
    if ckpt["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: field 'format' is {ckpt['format']}, this code reads {CHECKPOINT_FORMAT}"
        )
    want = feature_schema(kind)
    got = ckpt["schema"]
    if got.get("kind") != kind:
        raise CheckpointError(f"{path}: field 'schema.kind' is {got.get('kind')!r}, expected {kind!r}")
    diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    if diff:
        detail = "; ".join(f"{k}: checkpoint {got.get(k)!r} vs code {want.get(k)!r}" for k in diff[:4])
        raise CheckpointError(f"{path}: feature schema differs from the code ({detail})")
    return ckpt


def load_state_strict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """load_state_dict with an error that names the first mismatching tensor and both shapes."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    extra = [k for k in state_dict if k not in own]
    shape = [
        (k, tuple(state_dict[k].shape), tuple(own[k].shape))
        for k in own
        if k in state_dict and state_dict[k].shape != own[k].shape
    ]
    if missing or extra or shape:
        parts = []
        if shape:
            k, a, b = shape[0]
            parts.append(f"tensor {k!r} has shape {a} in the checkpoint but {b} in the model")
        if missing:
            parts.append(f"missing tensors {missing[:3]}")
        if extra:
            parts.append(f"unexpected tensors {extra[:3]}")
        raise CheckpointError(f"{path}: checkpoint does not fit the model: " + "; ".join(parts))
    model.load_state_dict(state_dict)
