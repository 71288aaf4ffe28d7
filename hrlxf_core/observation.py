"""The day-start observation record: what an agent knows when a day begins.

Why one function: the tracker records this record for expert agents (offline data), and the
HRL agent builds the very same record from its own AWI (online). The state builder consumes
only this record plus the day's earlier agreements, so online and offline states cannot drift.

It must be taken in ``before_step`` (after exogenous contracts, before negotiations). A record
taken in ``step()`` already holds the day's contracts and would leak labels into inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hrlxf_core.constants import N_OFFSETS

#: Scalar fields of the day-start record, in table order (name -> polars dtype name).
DAY_STATE_SCALARS: dict[str, str] = {
    "day": "Int32",
    "n_steps": "Int32",
    "balance": "Float64",
    "initial_balance": "Float64",
    "inventory_input": "Float64",
    "inventory_output": "Float64",
    "n_lines": "Int32",
    "level": "Int32",
    "n_processes": "Int32",
    "input_product": "Int32",
    "output_product": "Int32",
    "is_first_level": "Boolean",
    "is_last_level": "Boolean",
    "needed_supplies": "Float64",
    "needed_sales": "Float64",
    "exo_input_quantity": "Float64",
    "exo_input_price_total": "Float64",
    "exo_output_quantity": "Float64",
    "exo_output_price_total": "Float64",
    "trading_price_input": "Float64",
    "trading_price_output": "Float64",
    "catalog_price_input": "Float64",
    "catalog_price_output": "Float64",
    "production_cost": "Float64",
    "storage_cost": "Float64",
    "shortfall_penalty": "Float64",
    "disposal_cost": "Float64",
    "horizon": "Int32",
}

#: Commitment vectors by delivery offset δ = 0..H (quantities, and total money values).
DAY_STATE_VECTORS: tuple[str, ...] = (
    "supplies_by_offset",  # input units due to arrive at today + δ (negotiated contracts)
    "sales_by_offset",  # output units due to leave at today + δ
    "payables_by_offset",  # money owed for those supplies
    "receivables_by_offset",  # money due for those sales
)

#: List fields of the record (full market vectors, one entry per product).
DAY_STATE_PRODUCT_VECTORS: tuple[str, ...] = ("trading_prices", "catalog_prices")


def _by_offset(
    today: dict[str, Any] | None, future: dict[int, dict[str, Any]] | None, day: int
) -> list[float]:
    """Sum a per-partner commitment dict (today + future days keyed by absolute day) by δ."""
    out = [0.0] * N_OFFSETS
    if today:
        out[0] += float(sum(today.values()))
    if future:
        for abs_day, per_partner in future.items():
            delta = int(abs_day) - day
            if 0 <= delta < N_OFFSETS and per_partner:
                out[delta] += float(sum(per_partner.values()))
    return out


def day_start_record(awi: Any, initial_balance: float) -> dict[str, Any]:
    """Build the day-start observation record from a live std AWI.

    ``initial_balance`` is the balance the agent saw in ``init()`` (before any trade); the
    score of a world is balance / initial balance, so every record carries it.
    """
    day = int(awi.current_step)
    inp, outp = int(awi.my_input_product), int(awi.my_output_product)
    trading = np.asarray(awi.trading_prices, dtype=float)
    catalog = np.asarray(awi.catalog_prices, dtype=float)
    rec: dict[str, Any] = {
        "day": day,
        "n_steps": int(awi.n_steps),
        "balance": float(awi.current_balance),
        "initial_balance": float(initial_balance),
        "inventory_input": float(awi.current_inventory_input),
        "inventory_output": float(awi.current_inventory_output),
        "n_lines": int(awi.n_lines),
        "level": int(awi.level),
        "n_processes": int(awi.n_processes),
        "input_product": inp,
        "output_product": outp,
        "is_first_level": bool(awi.is_first_level),
        "is_last_level": bool(awi.is_last_level),
        "needed_supplies": float(awi.needed_supplies),
        "needed_sales": float(awi.needed_sales),
        "exo_input_quantity": float(awi.current_exogenous_input_quantity),
        "exo_input_price_total": float(awi.current_exogenous_input_price),
        "exo_output_quantity": float(awi.current_exogenous_output_quantity),
        "exo_output_price_total": float(awi.current_exogenous_output_price),
        "trading_price_input": float(trading[inp]),
        "trading_price_output": float(trading[outp]),
        "catalog_price_input": float(catalog[inp]),
        "catalog_price_output": float(catalog[outp]),
        "production_cost": float(awi.profile.cost),
        "storage_cost": float(awi.current_storage_cost),
        "shortfall_penalty": float(awi.current_shortfall_penalty),
        "disposal_cost": float(awi.current_disposal_cost),
        "horizon": int(awi.horizon),
        "supplies_by_offset": _by_offset(awi.supplies, awi.future_supplies, day),
        "sales_by_offset": _by_offset(awi.sales, awi.future_sales, day),
        "payables_by_offset": _by_offset(awi.supplies_cost, awi.future_supplies_cost, day),
        "receivables_by_offset": _by_offset(awi.sales_cost, awi.future_sales_cost, day),
        "trading_prices": trading.tolist(),
        "catalog_prices": catalog.tolist(),
    }
    return rec
