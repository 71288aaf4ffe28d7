"""Prepared training arrays, cached on disk by the content of their sources.

Why: parquet → model arrays costs time on every launch; a relaunch of training on the same
data must not redo it (issue 4). The cache key is the sha256 of the source files plus the
feature schema, so new data or a changed feature layout gets a new entry, and an entry is
written as one atomic directory (a killed preparation leaves nothing half-written).
Arrays are .npy files opened with ``mmap_mode='r'``: large datasets are not copied into RAM
as Python objects.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from hrlxf_core.io import file_sha256, write_dir_atomic


def cache_key(kind: str, sources: Sequence[Path], schema_hash: str) -> str:
    h = hashlib.sha256(f"{kind}|{schema_hash}".encode())
    for p in sorted(str(s) for s in sources):
        h.update(file_sha256(Path(p)).encode())
    return h.hexdigest()[:20]


def prepared(
    kind: str,
    sources: Sequence[Path],
    schema_hash: str,
    cache_root: Path,
    build: Callable[[Sequence[Path]], dict[str, np.ndarray]],
) -> tuple[dict[str, np.ndarray], Path, bool]:
    """Arrays for ``sources`` (built once, then memory-mapped). Returns (arrays, dir, reused)."""
    key = cache_key(kind, sources, schema_hash)
    target = cache_root / kind / key
    reused = (target / "manifest.json").exists()
    if not reused:
        arrays = build(sources)
        files = {
            f"{name}.npy": (lambda p, a=a: np.save(p, a, allow_pickle=False)) for name, a in arrays.items()
        }
        manifest = {
            "kind": kind,
            "sources": [str(s) for s in sources],
            "arrays": sorted(arrays),
            "rows": int(len(next(iter(arrays.values())))) if arrays else 0,
        }
        files["manifest.json"] = lambda p: p.write_text(json.dumps(manifest, indent=2))
        if not target.exists():
            write_dir_atomic(target, files)
    manifest = json.loads((target / "manifest.json").read_text())
    arrays = {
        name: np.load(target / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        for name in manifest["arrays"]
    }
    return arrays, target, reused
