"""Outcomes of the recorded experts: world scores, daily profit and its return, teacher quality.

Why one module: three consumers need the same notion of "how well did this expert do".

- The **teacher table** ranks the experts by their score (balance / initial balance, the
  anac2024_std statistic) at each production level, in the collected worlds.
- **Outcome-weighted BC** weighs each expert's samples by that score (``teacher_weights``), so the
  imitator learns more from the agent-worlds that went well.
- **AWR's return** is the realised profit: the daily profit of an agent-day is
  r_d = (balance_{d+1} − balance_d) / initial balance (the balance after the last day is the
  world's final balance), so a world's r_d sum to its score − 1. A decision on day d gets the
  discounted return-to-go G_d = Σ_{k ≥ d} γ^(k−d) r_k with γ = ``PROFIT_GAMMA``: a purchase is
  paid on its delivery day and the sales it makes possible are paid a few days later, inside
  std's 10-day delivery horizon, so a horizon of ~1/(1−γ) = 10 days credits both. Unlike the
  former volume reward, buying more than can be sold lowers the return (it is paid for and
  earns nothing). Online fine-tuning's reward is the same r_d.

The return is shared by all decisions of an agent-day (profit is realised per factory, not per
thread): AWR then re-weights days whose outcome beat what the value head expected of their
state. That is a stated limitation, not a per-thread credit assignment.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from hrlxf_core.datasets.expert_clip import LEVELS, level_class
from hrlxf_core.sim.roster import KNOWN_AGENTS

#: Discount of the daily-profit return (see the module doc).
PROFIT_GAMMA = 0.9
#: Outcome weighting of BC: the choices ``teacher_weights`` understands.
WEIGHTINGS = ("uniform", "top", "score")
#: ``top``: the experts kept at each level (by mean score at that level).
TOP_TEACHERS = 3
#: ``score``: weights exp(z) of the within-level z-score, capped (the variance of the weighted loss).
SCORE_WEIGHT_MAX = 5.0
#: ``top``: a (type, level) needs this many agent-worlds to be ranked; fewer ones are kept as
#: they are (too little evidence to drop a teacher).
MIN_AGENT_WORLDS = 5

_NAME_OF_PATH = {path: name for name, path in KNOWN_AGENTS.items()}


def expert_name(agent_type: str) -> str:
    """The roster name of a class path (the path itself when it is not on the roster)."""
    return _NAME_OF_PATH.get(agent_type, agent_type)


def agent_world_scores(worlds: pl.DataFrame) -> pl.DataFrame:
    """One row per agent of every finished world: world_id, agent_id, agent_type, expert (roster
    name), tracked, level (first / middle / last), initial and final balance, score."""
    ok = worlds.filter(pl.col("status") == "ok")
    cols = [
        "agent_ids",
        "agent_types",
        "agent_levels",
        "tracked",
        "initial_balances",
        "final_balances",
        "scores",
    ]
    if ok.height == 0:
        return pl.DataFrame(
            schema={
                "world_id": pl.String, "agent_id": pl.String, "agent_type": pl.String, "expert": pl.String,
                "tracked": pl.Boolean, "level": pl.String, "initial_balance": pl.Float64,
                "final_balance": pl.Float64, "score": pl.Float64,
            }
        )  # fmt: skip
    e = ok.select("world_id", "n_processes", *cols).explode(cols)
    lv = e["agent_levels"].to_numpy()
    npr = e["n_processes"].to_numpy()
    return pl.DataFrame(
        {
            "world_id": e["world_id"],
            "agent_id": e["agent_ids"],
            "agent_type": e["agent_types"],
            "expert": [expert_name(t) for t in e["agent_types"].to_list()],
            "tracked": e["tracked"],
            "level": level_class(lv == 0, lv == npr - 1),
            "initial_balance": e["initial_balances"].cast(pl.Float64),
            "final_balance": e["final_balances"].cast(pl.Float64),
            "score": e["scores"].cast(pl.Float64),
        }
    )


def daily_profit(day_states: pl.DataFrame, worlds: pl.DataFrame, gamma: float = PROFIT_GAMMA) -> pl.DataFrame:
    """Per recorded agent-day: world_id, agent_id, day, profit r_d, return-to-go G_d (see the
    module doc) and the agent's world score.

    The balance after an agent's last recorded day is its final balance in the world record. An
    agent-world without a finished world record gets null profit (its outcome is unknown)."""
    key = ["world_id", "agent_id"]
    scores = agent_world_scores(worlds).select(*key, "final_balance", "score")
    ds = (
        day_states.select(*key, "day", "balance", "initial_balance")
        .sort([*key, "day"])
        .join(scores, on=key, how="left")
    )
    if ds.height == 0:
        return ds.select(*key, "day").with_columns(
            profit=pl.lit(None, pl.Float64),
            return_to_go=pl.lit(None, pl.Float64),
            agent_score=pl.lit(None, pl.Float64),
        )
    ds = ds.with_columns(
        next_balance=pl.col("balance").shift(-1).over(key).fill_null(pl.col("final_balance")),
    ).with_columns(
        profit=(pl.col("next_balance") - pl.col("balance")) / pl.col("initial_balance").clip(lower_bound=1e-9)
    )
    r = ds["profit"].to_numpy().astype(np.float64)
    day = ds["day"].to_numpy().astype(np.int64)
    grp = (ds["world_id"] + "\x00" + ds["agent_id"]).to_numpy()
    g = np.full(len(r), np.nan)
    nxt = np.nan
    for i in range(len(r) - 1, -1, -1):  # a reverse scan: ~50 k agent-days per 100 worlds
        same = i + 1 < len(r) and grp[i + 1] == grp[i]
        g[i] = r[i] + (gamma ** (day[i + 1] - day[i]) * nxt if same and np.isfinite(nxt) else 0.0)
        nxt = g[i]
    return ds.select(*key, "day", "profit").with_columns(return_to_go=pl.Series(g), agent_score=ds["score"])


def teacher_table(scores: pl.DataFrame) -> pl.DataFrame:
    """Score by expert × level over the agent-worlds of ``scores`` (``agent_world_scores`` rows,
    or any frame with expert, level, score): n, mean, 95 % t CI, and each expert's
    level-balanced mean over the levels it played. Sorted by that mean, best first."""
    from hrlxf_core.evaluation import t_ci95

    rows = []
    for name in scores["expert"].unique().sort().to_list():
        s = scores.filter(pl.col("expert") == name)
        row: dict = {"expert": name, "agent_worlds": s.height}
        means = []
        for lv in LEVELS:
            x = s.filter(pl.col("level") == lv)["score"].drop_nulls().to_numpy()
            row[f"n_{lv}"] = len(x)
            row[f"mean_{lv}"] = float(x.mean()) if len(x) else None
            row[f"ci95_{lv}"] = t_ci95(x) if len(x) > 1 else None
            if len(x):
                means.append(float(x.mean()))
        row["balanced_mean"] = float(np.mean(means)) if means else None
        rows.append(row)
    if not rows:
        return pl.DataFrame()
    return pl.DataFrame(rows).sort("balanced_mean", descending=True, nulls_last=True)


def teacher_markdown(table: pl.DataFrame) -> str:
    """The teacher table as markdown (mean ± CI (n) per level)."""
    lines = [
        "| expert | level-balanced mean | " + " | ".join(LEVELS) + " |",
        "|---|---:|" + "---:|" * len(LEVELS),
    ]
    for r in table.iter_rows(named=True):
        cells = []
        for lv in LEVELS:
            if r[f"mean_{lv}"] is None:
                cells.append("")
            else:
                ci = "" if r[f"ci95_{lv}"] is None else f" ± {r[f'ci95_{lv}']:.3f}"
                cells.append(f"{r[f'mean_{lv}']:.3f}{ci} (n={r[f'n_{lv}']})")
        bal = "" if r["balanced_mean"] is None else f"{r['balanced_mean']:.3f}"
        lines.append(f"| {r['expert']} | {bal} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def teacher_weights(
    expert: np.ndarray,
    level: np.ndarray,
    score: np.ndarray,
    world_agent: np.ndarray,
    mode: str,
    top: int = TOP_TEACHERS,
    min_agent_worlds: int = MIN_AGENT_WORLDS,
) -> np.ndarray:
    """(N,) float32 BC weights of N samples, each given its agent's roster name, level, world
    score and a (world, agent) key, normalised to mean 1 over the kept samples.

    - ``uniform``: 1 (plain BC);
    - ``top``: 1 for the samples of the ``top`` experts with the best mean score at the
      sample's level (per-agent-world means, so long worlds do not count more), 0 otherwise; an
      expert with fewer than ``min_agent_worlds`` agent-worlds at a level is kept unranked;
    - ``score``: exp(z) capped at ``SCORE_WEIGHT_MAX``, z = the agent-world's score standardised
      within its level over the agent-worlds present: the runs that went well teach more.
    Samples with an unknown score (null) get weight 0 under ``top`` and ``score``."""
    if mode not in WEIGHTINGS:
        raise ValueError(f"teacher weighting {mode!r}: choose one of {list(WEIGHTINGS)}")
    n = len(score)
    if mode == "uniform" or n == 0:
        return np.ones(n, np.float32)
    score = np.asarray(score, np.float64)
    known = np.isfinite(score)
    aw = pl.DataFrame(
        {"key": np.asarray(world_agent).astype(str), "expert": np.asarray(expert).astype(str),
         "level": np.asarray(level).astype(str), "score": score}
    ).filter(pl.col("score").is_not_nan()).unique("key")  # fmt: skip
    w = np.zeros(n)
    if mode == "top":
        stats = aw.group_by("expert", "level").agg(pl.col("score").mean().alias("m"), pl.len().alias("n"))
        keep: set[tuple[str, str]] = set()
        for lv in stats["level"].unique().to_list():
            s = stats.filter(pl.col("level") == lv)
            ranked = s.filter(pl.col("n") >= min_agent_worlds).sort("m", descending=True)
            keep |= {(e, lv) for e in ranked["expert"].head(top).to_list()}
            keep |= {(e, lv) for e in s.filter(pl.col("n") < min_agent_worlds)["expert"].to_list()}
        pairs = zip(np.asarray(expert).astype(str), np.asarray(level).astype(str), strict=True)
        w = np.array([1.0 if (e, lv) in keep else 0.0 for e, lv in pairs]) * known
    else:
        stats = aw.group_by("level").agg(pl.col("score").mean().alias("m"), pl.col("score").std().alias("s"))
        m = dict(zip(stats["level"].to_list(), stats["m"].to_list(), strict=True))
        sd = dict(zip(stats["level"].to_list(), stats["s"].fill_null(0.0).to_list(), strict=True))
        lv = np.asarray(level).astype(str)
        mu = np.array([m.get(x, 0.0) for x in lv])
        sig = np.array([sd.get(x, 0.0) or 1.0 for x in lv])
        z = np.where(known, (np.nan_to_num(score) - mu) / sig, -np.inf)
        w = np.minimum(np.exp(z), SCORE_WEIGHT_MAX)
    total = w.sum()
    if total <= 0:
        raise ValueError(f"teacher weighting {mode!r} kept no sample (no known scores)")
    return (w * (np.count_nonzero(w) / total)).astype(np.float32)
