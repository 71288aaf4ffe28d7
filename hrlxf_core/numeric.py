"""Small numeric helpers shared by the layers."""

from __future__ import annotations

import numpy as np

#: Infinite inputs are clipped to this magnitude (every consumer clips to far smaller ranges).
FINITE_BOUND = 1e12


def finite(x: object, nan: float = 0.0) -> np.ndarray:
    """float64 array with NaN replaced by ``nan`` and ±inf clipped to ±FINITE_BOUND.

    Same role as ``np.nan_to_num`` at a fraction of its cost on the agent's small arrays."""
    a = np.asarray(x, dtype=np.float64)
    # ndarray.clip: the very ufunc np.clip calls, without its two wrapper frames
    return np.where(np.isnan(a), nan, a).clip(-FINITE_BOUND, FINITE_BOUND)
