"""The L3 contract: its op codes and the offer-history encoding, shared by the live agent, the
models and the dataset builders (docs/design.md §6.3).

Why one module: the history L3 reads at play time must be encoded exactly as the micro samples
it was trained on. Both sides call :func:`encode_history` on the raw entries of a thread (the
agent keeps them with :class:`ThreadHistory`; ``datasets.micro`` gathers them vectorised), so the
layout cannot drift. numpy only: the agent and the dataset builders import it without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hrlxf_core.normalization import INVENTORY_DAYS_NORM

#: Offers of the history kept per sample (most recent last); a std negotiation has ≤ 40 offers.
HIST_LEN = 16
#: Features per history entry: quantity / n_lines, δ / 10, price / market, sender (1 = self).
HIST_FEATURES = 4
OP_ACCEPT, OP_OFFER, OP_END = 0, 1, 2
OP_NAMES = ("ACCEPT", "OFFER", "END")


def encode_history(
    q: np.ndarray,
    t: np.ndarray,
    p: np.ndarray,
    who: np.ndarray,
    valid: np.ndarray,
    n_lines: np.ndarray,
    market: np.ndarray,
    day: np.ndarray,
) -> np.ndarray:
    """(N, HIST_LEN*HIST_FEATURES) features of right-aligned raw entries.

    ``q``, ``t`` (absolute delivery day), ``p``, ``who`` (1 = the agent's own offer) and ``valid``
    are (N, HIST_LEN), newest last; ``n_lines``, ``market`` and ``day`` are (N,). Invalid slots are 0.
    """
    n = len(n_lines)
    hist = np.zeros((n, HIST_LEN, HIST_FEATURES))
    hist[..., 0] = q / np.maximum(np.asarray(n_lines, np.float64), 1e-9)[:, None]
    hist[..., 1] = (t - np.asarray(day, np.float64)[:, None]) / INVENTORY_DAYS_NORM
    hist[..., 2] = p / np.maximum(np.asarray(market, np.float64), 1e-9)[:, None]
    hist[..., 3] = who
    hist *= np.asarray(valid, bool)[..., None]
    return hist.reshape(n, -1)


@dataclass
class ThreadHistory:
    """The offers of one thread in the order they were made (the agent's live ledger).

    The offer being answered is added before the decision; the agent's own offer after it, so a
    decision never sees its own counter-offer (the same rule as the micro samples)."""

    entries: list[tuple[float, float, float, float]] = field(default_factory=list)

    def add(self, q: float, t: float, p: float, own: bool) -> None:
        self.entries.append((float(q), float(t), float(p), 1.0 if own else 0.0))

    def features(self, n_lines: float, market: float, day: int) -> tuple[np.ndarray, int]:
        """(HIST_LEN*HIST_FEATURES,) encoding of the newest HIST_LEN entries and their count."""
        enc, n = histories_features([self], np.array([n_lines]), np.array([market]), np.array([day]))
        return enc[0], int(n[0])


def histories_features(
    histories: Sequence[ThreadHistory | None], n_lines: np.ndarray, market: np.ndarray, day: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(N, HIST_LEN*HIST_FEATURES) encodings of N threads' newest HIST_LEN entries (one
    :func:`encode_history` call; None = no entry yet) and their counts (N,)."""
    n = len(histories)
    raw = np.zeros((4, n, HIST_LEN))
    valid = np.zeros((n, HIST_LEN), bool)
    counts = np.zeros(n, np.int64)
    for i, h in enumerate(histories):
        last = h.entries[-HIST_LEN:] if h is not None else []
        if last:
            raw[:, i, HIST_LEN - len(last) :] = np.asarray(last, np.float64).T
            valid[i, HIST_LEN - len(last) :] = True
            counts[i] = len(last)
    enc = encode_history(raw[0], raw[1], raw[2], raw[3], valid, n_lines, market, day)
    return enc, counts
