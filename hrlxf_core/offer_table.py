"""The offers on the table: one encoding for the live agent and the offline rebuild.

Why: the Observation's ``offers_*`` vectors (what the partners currently offer, by side and
delivery offset) feed L1 and every state feature. The agent keeps an :class:`OfferTable` of the
latest offer of each open thread; ``datasets.offline_obs.active_offers`` rebuilds the same thing
from the records with prefix sums over :func:`offer_events`. Both place an offer into the vectors
with :func:`offer_events`, and the parity probe checks the two agree at every decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from hrlxf_core.state import K

#: The Observation fields of the table, in the column order of :func:`offer_events`.
OFFER_FIELDS = ("offers_buy_q", "offers_buy_value", "offers_sell_q", "offers_sell_value")


@dataclass(frozen=True)
class TableOffer:
    """An offer on the table in a live thread: what the partner last offered us."""

    is_buyer: bool  # our role in that thread
    delta: int  # delivery day − today
    quantity: float
    unit_price: float


def offer_events(is_buyer: np.ndarray, q: np.ndarray, value: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """(E, 4K) rows [buy q | buy value | sell q | sell value] by δ (clipped into 0..K-1), one per offer."""
    buy = np.asarray(is_buyer).astype(bool)
    d = np.clip(np.asarray(delta), 0, K - 1).astype(np.int64)
    rows = np.arange(len(buy))
    out = np.zeros((len(buy), 4, K))
    for col, (mask, v) in enumerate(((buy, q), (buy, value), (~buy, q), (~buy, value))):
        out[rows, col, d] = np.where(mask, v, 0.0)
    return out.reshape(len(buy), 4 * K)


def offers_arrays(offers: Iterable[TableOffer]) -> dict[str, np.ndarray]:
    """(1, K) arrays of the offers on the table, by side and δ (the Observation's offer fields)."""
    table = list(offers)
    q = np.array([o.quantity for o in table], np.float64)
    ev = offer_events(
        np.array([o.is_buyer for o in table], bool),
        q,
        q * np.array([o.unit_price for o in table], np.float64),
        np.array([int(o.delta) for o in table], np.int64),
    )
    total = np.zeros(4 * K)
    for row in ev:  # in table order, as the live sums always were
        total += row
    total = total.reshape(4, K)
    return {name: total[i][None].copy() for i, name in enumerate(OFFER_FIELDS)}


class OfferTable:
    """The agent's live table: per thread, the latest offer received; a thread that ended
    (agreement or failure) leaves it. Cleared at each day start."""

    def __init__(self) -> None:
        self._offers: dict[str, TableOffer] = {}

    def receive(self, thread: str, offer: TableOffer) -> None:
        self._offers[thread] = offer

    def end(self, thread: str) -> None:
        self._offers.pop(thread, None)

    def clear(self) -> None:
        self._offers.clear()

    def offers(self) -> list[TableOffer]:
        return list(self._offers.values())

    def arrays(self) -> dict[str, np.ndarray]:
        return offers_arrays(self._offers.values())
