"""Tournament evaluation of LitaAgentHRL against the experts it learned from (docs/design.md §8).

Every contender plays in every world (same worlds for all): each world draws an anac2024_std
configuration, spreads the contenders over its production levels in a fresh random order
(so every contender meets every level), and fills the levels with the std default agents.
Score per world = balance / initial balance (anac2024_std); per contender: mean, negmas'
``truncated_mean`` (the tournament statistic), a 95 % t confidence interval, and, for the HRL
agent, its own counters (realised safety violations, fallbacks, clip changes, latency).
Worlds run on the hang-proof runner of the collection (per-world timeout, resume by id).
"""

from __future__ import annotations

import io
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from hrlxf_core.datasets.expert_clip import LEVELS as LEVEL_NAMES
from hrlxf_core.datasets.expert_clip import level_class
from hrlxf_core.sim.collect import CollectionResult, run_specs
from hrlxf_core.sim.l1_guard import FILTER_SUFFIX, guarded_class_path
from hrlxf_core.sim.roster import FILLER_AGENTS, KNOWN_AGENTS, resolve_agent
from hrlxf_core.sim.world_spec import WorldSpec

AGENT_PATH = "hrlxf_core.agent.LitaAgentHRL"
HRL_PREFIX = "LitaAgentHRL-"
#: Modes of LitaAgentHRL a contender name may ask for (``LitaAgentHRL-<mode>``; agent.py);
#: ``online`` is neural mode on the fine-tuned policy (``hrl_online_policy/current.json``).
HRL_MODES = ("neural", "heuristic", "l1", "online")
ONLINE_FILE = "hrl_online_policy/current.json"
DEFAULT_CONTENDERS = (
    "LitaAgentHRL-neural",
    "LitaAgentHRL-online",
    "LitaAgentHRL-heuristic",
    "LitaAgentHRL-l1",
    "PenguinAgent",
    "PenguinAgent+L1",
    "AS0",
    "XenoSotaAgent",
    "UltraSuperMiracleSoraFinalAgentZ",
    # the 2026 std finalists (scml-agents 0.5.2)
    "HorizonAwareAgent",
    "Rohn",
    "SBD",
    "HeyStd",
    "TakaLinkAgent",
    "COW",
)


@dataclass
class EvalConfig:
    contenders: tuple[str, ...] = DEFAULT_CONTENDERS
    n_worlds: int = 4
    n_steps_min: int = 15
    n_steps_max: int = 25
    seed: int = 0
    n_processes_min: int = 2
    n_processes_max: int = 3
    min_factories_per_level: int = 4
    world_timeout_s: float = 600.0
    workers: int = 2
    checkpoints_dir: str | None = None  # data dir holding <model>/current.json (neural mode)
    checkpoints: dict[str, str] = field(default_factory=dict)  # or explicit l2/l3/l4 paths
    #: named checkpoint sets: contender ``LitaAgentHRL-neural:<name>`` plays variants[name]
    #: ({"l2": path, "l3": path, "l4": path}); model selection by play compares them
    variants: dict[str, dict[str, str]] = field(default_factory=dict)


def contender_slot(name: str, cfg: EvalConfig) -> tuple[str, dict[str, Any] | None]:
    """Class path and constructor params of a contender name.

    ``LitaAgentHRL-<mode>`` is the HRL agent; ``<Expert>+L1`` is the expert with every offer and
    accept filtered through L1 (the architecture's ceiling); a plain expert plays unchanged
    behind an L1 *watch* that only counts what L1 would have changed (comparable counters)."""
    if name.startswith(HRL_PREFIX):
        mode = name[len(HRL_PREFIX) :]
        if mode.startswith("neural:"):
            tag = mode.split(":", 1)[1]
            if tag not in cfg.variants:
                raise ValueError(
                    f"contender {name!r}: no checkpoint set {tag!r} (known: {sorted(cfg.variants)})"
                )
            return AGENT_PATH, {"mode": "neural", **{f"{k}_path": v for k, v in cfg.variants[tag].items()}}
        if mode == "online":
            return AGENT_PATH, {"mode": "neural", **{f"{k}_path": v for k, v in online_paths(cfg).items()}}
        params: dict[str, Any] = {"mode": mode}
        if mode == "neural":
            if cfg.checkpoints:
                params.update({f"{k}_path": v for k, v in cfg.checkpoints.items()})
            else:
                params["checkpoints_dir"] = cfg.checkpoints_dir
        return AGENT_PATH, params
    if name.endswith(FILTER_SUFFIX):
        return guarded_class_path(resolve_agent(name[: -len(FILTER_SUFFIX)]).class_path, enforce=True), None
    return guarded_class_path(resolve_agent(name).class_path, enforce=False), None


def online_paths(cfg: EvalConfig) -> dict[str, str]:
    """The fine-tuned policy's l2 / l3 / l4 checkpoints (``hrl_online_policy/current.json`` of the
    data directory), or a clear error when none has been published."""
    if cfg.checkpoints_dir is None:
        raise ValueError("contender 'LitaAgentHRL-online' needs checkpoints_dir (the data directory)")
    f = Path(cfg.checkpoints_dir) / ONLINE_FILE
    if not f.exists():
        raise FileNotFoundError(
            f"{f}: no online policy published: materialize hrl_online_policy first, "
            "or leave 'LitaAgentHRL-online' out of the contenders"
        )
    cur = json.loads(f.read_text())
    return {k: str(cur[k]) for k in ("l2", "l3", "l4")}


def level_name(level: int, n_processes: int) -> str:
    """first / middle / last of a production level (the datasets' ``level_class``)."""
    return str(level_class(np.array([level == 0]), np.array([level == n_processes - 1]))[0])


def balanced_levels(n_contenders: int, n_processes: int, position: int, perm: list[int]) -> list[int]:
    """Level of each contender in one world of a balanced block: contender c sits at level
    (rank of c in ``perm`` + position) mod n_processes, so over the n_processes worlds of a block
    (positions 0..n-1) every contender plays every level exactly once, and each world's levels
    hold ⌊C/n⌋ or ⌈C/n⌉ contenders."""
    rank = {c: r for r, c in enumerate(perm)}
    return [(rank[c] + position) % n_processes for c in range(n_contenders)]


def draw_eval_specs(cfg: EvalConfig, run_id: str) -> list[WorldSpec]:
    """A level-balanced design: worlds cycle over the level counts n_processes_min..max; within
    each level count, consecutive blocks of n_processes worlds rotate the contenders over the
    levels (``balanced_levels``), with a fresh random contender order per block so that who meets
    whom varies. So each contender's count at each level differs by at most 1 (exactly equal once
    the blocks are complete), and a contender's mean no longer depends on how often it drew the
    first level."""
    if not 5 <= cfg.n_steps_min <= cfg.n_steps_max:
        raise ValueError(
            f"EvalConfig n_steps_min/n_steps_max [{cfg.n_steps_min}, {cfg.n_steps_max}] invalid: need 5 <= min <= max"
        )
    rng = random.Random(f"hrlxf-eval-{cfg.seed}")
    fillers = [KNOWN_AGENTS[n] for n in FILLER_AGENTS]
    names = list(cfg.contenders)
    slots = {c: contender_slot(c, cfg) for c in names}
    cycle = list(range(cfg.n_processes_min, cfg.n_processes_max + 1))
    perms: dict[tuple[int, int], list[int]] = {}
    specs = []
    for i in range(cfg.n_worlds):
        n_proc = cycle[i % len(cycle)]
        j = i // len(cycle)
        block, position = divmod(j, n_proc)
        if (n_proc, block) not in perms:
            perm = list(range(len(names)))
            rng.shuffle(perm)
            perms[(n_proc, block)] = perm
        levels_of = balanced_levels(len(names), n_proc, position, perms[(n_proc, block)])
        n_steps = rng.randint(cfg.n_steps_min, cfg.n_steps_max)
        paths, levels, params, labels = [], [], [], []
        for level in range(n_proc):
            here = [c for c in perms[(n_proc, block)] if levels_of[c] == level]
            for c in here:
                path, p = slots[names[c]]
                paths.append(path), levels.append(level), params.append(p), labels.append(names[c])
            for _ in range(max(cfg.min_factories_per_level - len(here), 0)):
                f = rng.choice(fillers)
                paths.append(f), levels.append(level), params.append(None), labels.append("filler")
        specs.append(
            WorldSpec(
                world_id=f"{run_id}-w{i:04d}",
                index=i,
                seed=rng.randrange(2**31 - 1),
                n_steps=n_steps,
                n_processes=n_proc,
                agent_paths=tuple(paths),
                agent_levels=tuple(levels),
                competitor=tuple(False for _ in paths),
                agent_params=tuple(params),
                agent_labels=tuple(labels),
            )
        )
    return specs


def one_world_spec(
    contenders: tuple[str, ...],
    n_steps: int,
    seed: int,
    run_id: str,
    checkpoints: dict[str, str] | None = None,
    checkpoints_dir: str | None = None,
) -> WorldSpec:
    """The single world an evaluation of ``contenders`` draws for ``n_steps`` days and ``seed``
    (levels, fillers and the world seed as in a real evaluation): the world that
    ``bench/agent.py --world-share`` times and ``scripts/same_play.py`` plays on two runtimes."""
    cfg = EvalConfig(
        contenders=contenders,
        n_worlds=1,
        n_steps_min=n_steps,
        n_steps_max=n_steps,
        seed=seed,
        checkpoints=dict(checkpoints or {}),
        checkpoints_dir=checkpoints_dir,
    )
    (spec,) = draw_eval_specs(cfg, run_id)
    return spec


def run_evaluation(
    cfg: EvalConfig, out_dir: Path, run_id: str, data_dir: Path, progress=print
) -> CollectionResult:
    specs = draw_eval_specs(cfg, run_id)
    return run_specs(
        specs,
        out_dir,
        run_id,
        data_dir,
        workers=cfg.workers,
        world_timeout_s=cfg.world_timeout_s,
        tracked=False,
        label=f"evaluation of {len(cfg.contenders)} contenders",
        progress=progress,
    )


def t_ci95(x: np.ndarray) -> float:
    """Half-width of the 95 % t confidence interval of the mean."""
    from scipy import stats

    n = len(x)
    if n < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / np.sqrt(n))


def per_world_scores(out_dir: Path) -> pl.DataFrame:
    """One row per (world, contender): the contender's score (balance / initial) in that world."""
    worlds = pl.read_parquet(out_dir / "worlds.parquet")
    rows = []
    for w in worlds.iter_rows(named=True):
        spec = WorldSpec.from_json(w["spec_json"])
        if w["status"] != "ok":
            for slot, label in enumerate(spec.agent_labels or ()):
                if label != "filler":
                    rows.append(
                        {
                            "world_id": w["world_id"],
                            "contender": label,
                            "agent_id": None,
                            "level": spec.agent_levels[slot],
                            "level_name": level_name(spec.agent_levels[slot], spec.n_processes),
                            "score": None,
                            "status": w["status"],
                        }
                    )
            continue
        for aid, slot, score in zip(w["agent_ids"], w["agent_slots"], w["scores"], strict=True):
            label = spec.agent_labels[slot]  # slot recorded when the world was built
            if label != "filler":
                rows.append(
                    {
                        "world_id": w["world_id"],
                        "contender": label,
                        "agent_id": aid,
                        "level": spec.agent_levels[slot],
                        "level_name": level_name(spec.agent_levels[slot], spec.n_processes),
                        "score": float(score),
                        "status": "ok",
                    }
                )
    return pl.DataFrame(
        rows,
        schema={
            "world_id": pl.String,
            "contender": pl.String,
            "agent_id": pl.String,
            "level": pl.Int64,
            "level_name": pl.String,
            "score": pl.Float64,
            "status": pl.String,
        },
    )


def balanced_mean(scores: np.ndarray, levels: np.ndarray) -> tuple[float, float]:
    """(level-balanced mean, half-width of its 95 % CI): the mean of the per-level means over the
    levels the contender played, with the CI of that combination (variance Σ s_l²/n_l / L², t
    quantile at the Welch-Satterthwaite degrees of freedom)."""
    from scipy import stats

    groups = [scores[levels == lv] for lv in LEVEL_NAMES if (levels == lv).any()]
    if not groups:
        return float("nan"), float("nan")
    mean = float(np.mean([g.mean() for g in groups]))
    if any(len(g) < 2 for g in groups):
        return mean, float("nan")
    terms = np.array([g.var(ddof=1) / len(g) for g in groups]) / len(groups) ** 2
    var = terms.sum()
    if var <= 0:
        return mean, 0.0
    dof = var**2 / np.sum(terms**2 / np.array([len(g) - 1 for g in groups]))
    return mean, float(stats.t.ppf(0.975, dof) * np.sqrt(var))


def _sum(st: list[dict[str, Any]], key: str) -> int | None:
    vals = [x[key] for x in st if key in x]
    return int(sum(vals)) if vals else None


def summarise(*out_dirs: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per-contender summary sorted by level-balanced mean, per-world table) of one or several
    evaluation runs (e.g. several seeds) pooled.

    Per contender: worlds, the level-balanced mean (headline) and its CI, the raw mean and its
    CI, negmas' truncated mean, the mean and count at each level, the realised shortfall (units
    short ÷ units sold, from the world's own accounting), agreements that broke L1's invariant,
    actions L1 changed or forbade (filtered, or counted by the watch on plain experts),
    fallbacks and decision latency."""
    from negmas.helpers.numeric import truncated_mean

    per_world = pl.concat([per_world_scores(d) for d in out_dirs], how="vertical")
    agent_stats: dict[str, list[dict[str, Any]]] = {}
    for d in out_dirs:
        if (d / "agent_stats.parquet").exists():
            for r in pl.read_parquet(d / "agent_stats.parquet").iter_rows(named=True):
                agent_stats.setdefault(r["label"], []).append(json.loads(r["stats_json"]))
    rows = []
    for name in per_world["contender"].unique(maintain_order=True):
        ok = per_world.filter((pl.col("contender") == name) & (pl.col("status") == "ok"))
        s = ok["score"].to_numpy()
        lv = ok["level_name"].to_numpy()
        st = agent_stats.get(name, [])
        bal, bal_ci = balanced_mean(s, lv) if len(s) else (float("nan"), float("nan"))
        short, sold = _sum(st, "shortfall_units"), _sum(st, "sold_units")
        row = {
            "contender": name,
            "worlds": int(len(s)),
            "balanced_mean": bal,
            "balanced_ci95": bal_ci,
            "mean": float(s.mean()) if len(s) else float("nan"),
            "ci95": t_ci95(s),
            "truncated_mean": float(truncated_mean(s)) if len(s) else float("nan"),
            "min": float(s.min()) if len(s) else float("nan"),
            "max": float(s.max()) if len(s) else float("nan"),
        }
        for level in LEVEL_NAMES:
            x = s[lv == level]
            row[f"mean_{level}"] = float(x.mean()) if len(x) else float("nan")
            row[f"n_{level}"] = int(len(x))
        changed, forbidden = _sum(st, "clip_changed"), _sum(st, "forbidden")
        row.update({
            "shortfall_ratio": (short / sold) if short is not None and sold else None,
            "unsafe_agreements": _sum(st, "violations"),
            "l1_changed": None if changed is None else changed + (forbidden or 0),
            "fallbacks": _sum(st, "fallbacks"),
            "decisions": _sum(st, "decisions"),
            "latency_p50_ms": float(np.median([x["latency_p50_ms"] for x in st])) if st and "latency_p50_ms" in st[0] else None,
            "latency_p99_ms": float(np.max([x["latency_p99_ms"] for x in st])) if st and "latency_p99_ms" in st[0] else None,
        })  # fmt: skip
        rows.append(row)
    summary = pl.DataFrame(rows).sort("balanced_mean", descending=True, nulls_last=True)
    return summary, per_world


def _f(x: Any, fmt: str = ".3f") -> str:
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, fmt)


def markdown_table(summary: pl.DataFrame) -> str:
    """The headline table (level-balanced mean first) and the per-level table."""
    head = (
        "| contender | worlds | level-balanced mean ± 95% CI | raw mean ± 95% CI | truncated mean "
        "| shortfall | unsafe agreements | L1 changed | fallbacks | p50 / p99 ms |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in summary.iter_rows(named=True):
        lat = "" if r["latency_p50_ms"] is None else f"{r['latency_p50_ms']:.2f} / {r['latency_p99_ms']:.2f}"
        short = "" if r["shortfall_ratio"] is None else f"{100 * r['shortfall_ratio']:.1f} %"
        lines.append(
            f"| {r['contender']} | {r['worlds']} | {_f(r['balanced_mean'])} ± {_f(r['balanced_ci95'])} "
            f"| {_f(r['mean'])} ± {_f(r['ci95'])} | {_f(r['truncated_mean'])} | {short} "
            f"| {_f(r['unsafe_agreements'], 'd')} | {_f(r['l1_changed'], 'd')} | {_f(r['fallbacks'], 'd')} | {lat} |"
        )
    lines += ["", "| contender | " + " | ".join(LEVEL_NAMES) + " |", "|---|" + "---:|" * len(LEVEL_NAMES)]
    for r in summary.iter_rows(named=True):
        cells = [f"{_f(r[f'mean_{lv}'])} (n={r[f'n_{lv}']})" for lv in LEVEL_NAMES]
        lines.append(f"| {r['contender']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scores_png(summary: pl.DataFrame, title: str) -> bytes:
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(os.environ.get("HRLXF_DATA_DIR", "data"), ".mpl"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    names = summary["contender"].to_list()
    mean = summary["balanced_mean"].to_numpy()
    ci = np.nan_to_num(summary["balanced_ci95"].to_numpy())
    colors = ["tab:orange" if n.startswith(HRL_PREFIX) else "tab:blue" for n in names]
    ax.barh(range(len(names)), mean, xerr=ci, color=colors, capsize=3)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("score = balance / initial balance (level-balanced mean ± 95% CI)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def ceiling_twin_specs(cfg: EvalConfig, run_id: str, expert: str) -> tuple[list[WorldSpec], list[WorldSpec]]:
    """Paired worlds for the L1 ceiling: the balanced draw of ``cfg`` (which must include
    ``expert``), and the same worlds (same seeds, same slots, same partners) with the expert
    replaced by ``<expert>+L1``. A per-world difference then measures only what L1 costs."""
    import dataclasses

    if expert not in cfg.contenders:
        raise ValueError(f"ceiling: {expert!r} is not among the contenders {list(cfg.contenders)}")
    plain = draw_eval_specs(cfg, run_id)
    filt_path, _ = contender_slot(expert + FILTER_SUFFIX, cfg)
    twins = []
    for s in plain:
        labels = s.agent_labels or ()
        twins.append(
            dataclasses.replace(
                s,
                world_id=s.world_id + "-l1",
                agent_paths=tuple(
                    filt_path if lab == expert else p for p, lab in zip(s.agent_paths, labels, strict=True)
                ),
                agent_labels=tuple(expert + FILTER_SUFFIX if lab == expert else lab for lab in labels),
            )
        )
    return plain, twins


def paired_ceiling(plain_dir: Path, twin_dir: Path, expert: str) -> pl.DataFrame:
    """Per level and overall: the expert's mean score, the filtered expert's, and the paired
    difference (filtered − plain) with its 95 % t CI, over the world pairs that both finished."""
    a = per_world_scores(plain_dir).filter((pl.col("contender") == expert) & (pl.col("status") == "ok"))
    b = per_world_scores(twin_dir).filter(
        (pl.col("contender") == expert + FILTER_SUFFIX) & (pl.col("status") == "ok")
    )
    b = b.with_columns(pl.col("world_id").str.replace(r"-l1$", ""))
    pairs = a.join(b, on="world_id", suffix="_l1")
    rows = []
    for level in (*LEVEL_NAMES, "all"):
        p = pairs if level == "all" else pairs.filter(pl.col("level_name") == level)
        if p.height == 0:
            continue
        diff = (p["score_l1"] - p["score"]).to_numpy()
        rows.append(
            {
                "level": level,
                "pairs": p.height,
                "expert": float(p["score"].mean()),
                "expert_l1": float(p["score_l1"].mean()),
                "difference": float(diff.mean()),
                "ci95": t_ci95(diff),
            }
        )
    return pl.DataFrame(rows)
