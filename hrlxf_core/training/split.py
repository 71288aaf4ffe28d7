"""Train / validation / test split by world (never by row: rows of one world are correlated)."""

from __future__ import annotations

import hashlib

import numpy as np

SPLITS = ("train", "val", "test")


def world_split(world_id: str, val_frac: float = 0.1, test_frac: float = 0.1, salt: str = "hrlxf") -> str:
    """Stable assignment of a world to a split from a hash of its id (independent of row order)."""
    u = int(hashlib.sha256(f"{salt}:{world_id}".encode()).hexdigest()[:12], 16) / float(16**12)
    if u < test_frac:
        return "test"
    if u < test_frac + val_frac:
        return "val"
    return "train"


def split_indices(
    world_ids: np.ndarray, val_frac: float = 0.1, test_frac: float = 0.1
) -> dict[str, np.ndarray]:
    """Row indices of each split. With fewer than 3 worlds every split still gets at least one
    world when possible (tiny test collections), by falling back to a round-robin of worlds."""
    uniq = list(dict.fromkeys(world_ids.tolist()))
    assign = {w: world_split(w, val_frac, test_frac) for w in uniq}
    if len(uniq) >= 3 and any(s not in assign.values() for s in SPLITS):
        ordered = sorted(uniq, key=lambda w: hashlib.sha256(w.encode()).hexdigest())
        assign = {w: ("val" if i == 0 else "test" if i == 1 else "train") for i, w in enumerate(ordered)}
    lab = np.array([assign[w] for w in world_ids.tolist()])
    return {s: np.nonzero(lab == s)[0] for s in SPLITS}


def first_worlds(world_ids: np.ndarray, n: int) -> set[str]:
    """A stable subset of ``n`` distinct worlds (by a hash of their ids, not their order), so that
    a learning curve's smaller sets are nested in its larger ones."""
    uniq = sorted(set(world_ids.tolist()), key=lambda w: hashlib.sha256(f"subset:{w}".encode()).hexdigest())
    return set(uniq[:n])
