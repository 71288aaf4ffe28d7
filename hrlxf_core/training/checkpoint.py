"""Checkpoints: ``{state_dict, config, schema, metrics, lineage, ...}`` written atomically and
read with ``torch.load(weights_only=True)``.

The schema records the input feature layout (dims, normalisers, label constants) and its hash.
Loading a checkpoint whose schema differs from the code, or whose tensors do not fit the model,
is a clear error naming the file and the mismatch, never a silently wrong model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hrlxf_core.io import atomic_write, file_sha256
from hrlxf_core.models.checkpoint import (  # the readers live with the models (the agent loads them)
    CHECKPOINT_FORMAT,
    CheckpointError,
    feature_schema,
    load_checkpoint,
    load_model,
    load_state_strict,
)
from hrlxf_core.models.schema import schema_hash

__all__ = [
    "schema_hash",
    "feature_schema",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
    "CheckpointError",
    "CHECKPOINT_FORMAT",
    "load_state_strict",
    "file_sha256",
]


def save_checkpoint(path: Path, payload: dict[str, Any]) -> str:
    """Write atomically; returns the sha256 of the file."""
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return file_sha256(path)
