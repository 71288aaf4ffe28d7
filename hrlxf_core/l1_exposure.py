"""How far the experts sell ahead of their inputs, and how often that ends short: the
measurement behind L1's sell-side allowance (``l1_safety.SELL_ALLOWANCE_LINES``).

Why a module and not a notebook: the allowance is a design constant of the safety layer, so the
figures it was chosen from must be reproducible from the logs by one command
(``python -m hrlxf_core.l1_exposure <partition folder>``), and re-checked on new data.

For every sell action of an expert (an accepted offer, a counter-offer or an opening offer) the
*need* is the number of units it sells for day δ beyond the sellable stock of that day (the
units that would be short if no more input arrived), in lines (÷ n_lines). The allowance a
refuses the actions whose need exceeds a. The realised shortfall is the engine's, recomputed
from the final contracts of each agent-day (``state.production_plan``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl

from hrlxf_core.datasets.expert_clip import action_kind, level_class
from hrlxf_core.datasets.offline_obs import decision_threads, observation_from_day_states
from hrlxf_core.l1_safety import limit_parts
from hrlxf_core.state import K, production_plan

#: Allowances tried, in lines per day.
ALLOWANCES = tuple(np.arange(0.0, 2.01, 0.25).round(2))
#: The allowance chosen for a level is the smallest tried under which at most this share of the
#: experts' sell actions at that level would be refused. (6 %: the allowances in use, 0.5 / 0.25,
#: were first chosen at 5 % by a version of ``sell_needs`` with a sign error; corrected, they
#: refuse 5.3 % / 5.9 %, and were kept: they were trained and evaluated, and cost PenguinAgent
#: −0.002 ± 0.021 in paired worlds. At 5 % the rule would pick 0.75 / 0.5; see docs/l1.md.)
REFUSAL_TARGET = 0.06


def sell_needs(tables) -> pl.DataFrame:
    """One row per expert sell action: level, kind, δ, quantity, need in lines."""
    dec, obs, threads = decision_threads(tables)
    day = dec["day"].to_numpy()
    has_recv = dec["recv_q"].is_not_null().to_numpy()
    has_sent = dec["sent_q"].is_not_null().to_numpy()
    kind = action_kind(dec["action"].to_numpy(), has_recv, has_sent)
    acc = kind == "accept"

    def col(name: str) -> np.ndarray:
        return dec[name].cast(pl.Float64).fill_null(np.nan).to_numpy()

    q = np.where(acc, col("recv_q"), col("sent_q"))
    d = np.where(acc, col("recv_t"), col("sent_t")) - day
    sel = ~threads.is_buyer & (kind != "end") & np.isfinite(d) & (d >= 0) & (d < K)
    parts = limit_parts(obs)
    rows = np.flatnonzero(sel)
    dd = d[sel].astype(np.int64)
    room = (parts.cap - parts.out)[rows, dd]  # sellable stock, negative when already exposed
    need = (q[sel] - room) / obs.n_lines[sel]
    return pl.DataFrame(
        {
            "agent_type": dec["agent_type"].to_numpy()[sel],
            "level": level_class(dec["is_first_level"].to_numpy(), dec["is_last_level"].to_numpy())[sel],
            "kind": kind[sel],
            "delta": dd,
            "quantity": q[sel],
            "need_lines": need,
        }
    )


def refusal_table(needs: pl.DataFrame) -> pl.DataFrame:
    """Share of sell actions an allowance would refuse, by level (rows) and allowance (columns)."""
    out = []
    for level in ("first", "middle"):
        x = needs.filter(pl.col("level") == level)["need_lines"].to_numpy()
        if len(x) == 0:
            continue
        row = {"level": level, "actions": len(x), "sells_ahead": float(np.mean(x > 1e-9))}
        row.update({f"a={a:g}": float(np.mean(x > a + 1e-9)) for a in ALLOWANCES})
        out.append(row)
    return pl.DataFrame(out)


def chosen_allowance(table: pl.DataFrame) -> dict[str, float]:
    """The smallest allowance per level whose refusal share is at most REFUSAL_TARGET."""
    chosen = {}
    for r in table.iter_rows(named=True):
        ok = [a for a in ALLOWANCES if r[f"a={a:g}"] <= REFUSAL_TARGET]
        chosen[r["level"]] = float(min(ok)) if ok else float(ALLOWANCES[-1])
    return chosen


def realised_shortfall(tables) -> pl.DataFrame:
    """By level and expert: units short ÷ units sold and the share of agent-days short, from the
    final contracts due each day (the engine's production)."""
    ds = tables.day_states.sort(["world_id", "agent_id", "day"])
    ct = tables.contracts
    obs = observation_from_day_states(ds)
    key = ["world_id", "agent_id", "day"]
    due = ct.group_by(["world_id", "agent_id", "delivery_day", "is_buyer"]).agg(pl.col("quantity").sum())
    for buyer, field in ((True, "supplies"), (False, "sales")):
        q = (
            ds.select(key)
            .join(
                due.filter(pl.col("is_buyer") == buyer).drop("is_buyer").rename({"delivery_day": "day"}),
                on=key,
                how="left",
                maintain_order="left",
            )["quantity"]
            .fill_null(0)
            .to_numpy()
        )
        getattr(obs, field)[:, 0] = q
    made, _ = production_plan(obs)
    sold = obs.sales[:, 0] + obs.exo_output_quantity
    short = np.maximum(sold - made[:, 0], 0.0)
    frame = pl.DataFrame(
        {
            "agent_type": ds["agent_type"].str.split(".").list.last(),
            "level": level_class(ds["is_first_level"].to_numpy(), ds["is_last_level"].to_numpy()),
            "sold": sold,
            "short": short,
        }
    )
    return (
        frame.filter(pl.col("level") != "last")
        .group_by("level", "agent_type")
        .agg(
            (pl.col("short").sum() / pl.col("sold").sum()).alias("shortfall_ratio"),
            (pl.col("short") > 0).mean().alias("days_short"),
            pl.len().alias("agent_days"),
        )
        .sort("level", "agent_type")
    )


def main(argv: list[str] | None = None) -> int:
    from hrlxf_core.datasets.partition import load_partition

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m hrlxf_core.l1_exposure <tournament_logs partition folder> [expert ...]")
        return 2
    tables = load_partition(Path(args[0]), args[1:] or None)
    needs = sell_needs(tables)
    table = refusal_table(needs)
    with pl.Config(tbl_rows=50, tbl_cols=20, float_precision=3):
        print("Share of expert sell actions beyond the sellable stock, refused by allowance a (lines/day):")
        print(table)
        print("need (lines) quantiles of the actions that sell ahead, by level:")
        print(
            needs.filter(pl.col("need_lines") > 1e-9)
            .group_by("level")
            .agg([pl.col("need_lines").quantile(q).alias(f"q{int(100 * q)}") for q in (0.5, 0.9, 0.95, 0.99)])
        )
        print(f"chosen allowance (≤ {REFUSAL_TARGET:.0%} refused):", chosen_allowance(table))
        print("realised shortfall of the experts (units short ÷ units sold), by level:")
        print(realised_shortfall(tables))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
