"""Small numeric helpers shared by the layers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Infinite inputs are clipped to this magnitude (every consumer clips to far smaller ranges).
FINITE_BOUND = 1e12


def finite(x: object, nan: float = 0.0) -> np.ndarray:
    """float64 array with NaN replaced by ``nan`` and ±inf clipped to ±FINITE_BOUND.

    Same role as ``np.nan_to_num`` at a fraction of its cost on the agent's small arrays."""
    a = np.asarray(x, dtype=np.float64)
    # ndarray.clip: the very ufunc np.clip calls, without its two wrapper frames
    return np.where(np.isnan(a), nan, a).clip(-FINITE_BOUND, FINITE_BOUND)


#: Below this many elements per array, :func:`stack_last` skips np.stack's per-array Python work.
SMALL_STACK = 4096


def stack_last(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """``np.stack(arrays, axis=-1)``: the same values, C-contiguous. Small arrays (the agent's
    batches of one observation) go through one ``np.array`` call instead of np.stack's
    per-array Python work; large ones (the offline batches) through np.stack, copied once."""
    if np.asarray(arrays[0]).size > SMALL_STACK:
        return np.stack(arrays, axis=-1)
    a = np.array(arrays)
    return np.ascontiguousarray(a.transpose(*range(1, a.ndim), 0))
