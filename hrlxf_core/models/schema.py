"""Feature schemas recorded in checkpoints (torch-free).

Why: a checkpoint is only meaningful together with the exact feature layout and normalisers
it was trained on (docs/design.md §7: "checkpoints that no longer load into the model", "unnormalised
raw inputs"). Every model exposes ``schema()``: input names and dims plus the constants below.
A loader compares the stored schema with the current one and refuses a mismatch, so changing a
normaliser or a feature silently can never feed a model inputs it has not seen.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hrlxf_core import normalization
from hrlxf_core.constants import N_OFFSETS, H
from hrlxf_core.labels import BUCKET_EDGES, GOAL_DIM, PRICE_RATIO_RANGE, QUANTITY_LABEL_MAX


def normalization_schema() -> dict[str, float]:
    """The normalisers of hrlxf_core.normalization (every UPPER_CASE float/int constant)."""
    return {
        k: float(v)
        for k, v in sorted(vars(normalization).items())
        if k.isupper() and isinstance(v, int | float)
    }


def common_schema() -> dict[str, Any]:
    """Constants every layer's inputs or outputs depend on."""
    return {
        "H": H,
        "n_offsets": N_OFFSETS,
        "goal_dim": GOAL_DIM,
        "bucket_edges": [list(e) for e in BUCKET_EDGES],
        "price_ratio_range": list(PRICE_RATIO_RANGE),
        "quantity_label_max": float(QUANTITY_LABEL_MAX),
        "normalization": normalization_schema(),
    }


def jsonable(x: Any) -> Any:
    """Tuples to lists, numpy scalars to Python (so a schema survives JSON and weights_only loads)."""
    return json.loads(json.dumps(x, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def schema_hash(schema: dict[str, Any]) -> str:
    """Short stable hash of a schema (sorted-key JSON), for metadata and file names."""
    blob = json.dumps(jsonable(schema), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def schema_diff(stored: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Human-readable differences between two schemas (empty when they agree)."""
    stored, current = jsonable(stored), jsonable(current)
    out: list[str] = []
    for k in sorted(set(stored) | set(current)):
        a, b = stored.get(k, "<missing>"), current.get(k, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += schema_diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: checkpoint {a!r} != code {b!r}")
    return out
