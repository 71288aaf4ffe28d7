"""Reading checkpoints: ``torch.load(weights_only=True)``, then the format, the model kind and the
feature schema checked against the code, and the tensors fitted strictly to the model.

Why in ``models/``: the agent loads its networks at play time and must not import training code
(optimisers, data preparation, polars); ``training.checkpoint`` writes checkpoints and re-exports
these readers. Loading a checkpoint whose schema differs from the code, or whose tensors do not
fit the model, is a clear error naming the file and the mismatch, never a silently wrong model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hrlxf_core.models.common import config_from_dict
from hrlxf_core.models.schema import jsonable, schema_diff

CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used with this code."""


def feature_schema(kind: str) -> dict[str, Any]:
    """The input/label layout a model of ``kind`` (l2 / l3 / l4) is built for: the model's own
    ``schema()`` (dims, feature names, normalisers, label constants) plus its kind."""
    if kind == "l2":
        from hrlxf_core.models.l2 import l2_schema as schema_fn
    elif kind == "l3":
        from hrlxf_core.models.l3 import l3_schema as schema_fn
    elif kind == "l4":
        from hrlxf_core.models.l4 import l4_schema as schema_fn
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    return jsonable({"kind": kind, **schema_fn()})


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
    got = ckpt["schema"]
    if got.get("kind") != kind:
        raise CheckpointError(
            f"{path}: field 'schema.kind' is {got.get('kind')!r}, expected a {kind!r} checkpoint"
        )
    diff = schema_diff(got, feature_schema(kind))
    if diff:
        raise CheckpointError(f"{path}: feature schema differs from the code ({'; '.join(diff[:4])})")
    return ckpt


def load_model(
    path: Path, kind: str, model_cls: type, config_cls: type, device: str = "cpu"
) -> tuple[Any, dict[str, Any]]:
    """Checked checkpoint -> model in eval mode on ``device`` (and the checkpoint dict)."""
    ckpt = load_checkpoint(path, kind)
    try:
        config = config_from_dict(config_cls, ckpt["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: field 'config' does not fit {config_cls.__name__} ({exc})") from exc
    model = model_cls(config)
    load_state_strict(model, ckpt["state_dict"], path)
    return model.to(device).eval(), ckpt


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


def load_l2(path: Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """A checked L2 checkpoint -> L2Net in eval mode (and the checkpoint dict)."""
    from hrlxf_core.models.l2 import L2Config, L2Net

    return load_model(path, "l2", L2Net, L2Config, device)


def load_l3(path: Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """A checked L3 checkpoint -> L3Net in eval mode (and the checkpoint dict)."""
    from hrlxf_core.models.l3 import L3Config, L3Net

    return load_model(path, "l3", L3Net, L3Config, device)


def load_l4(path: Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """A checked L4 checkpoint -> L4Net in eval mode (and the checkpoint dict)."""
    from hrlxf_core.models.l4 import L4Config, L4Net

    return load_model(path, "l4", L4Net, L4Config, device)
