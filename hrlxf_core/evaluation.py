"""Tournament evaluation of LitaAgentHRL against the experts it learned from (DESIGN §8).

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

from hrlxf_core.sim.collect import CollectionResult, run_specs
from hrlxf_core.sim.roster import FILLER_AGENTS, KNOWN_AGENTS, resolve_agent
from hrlxf_core.sim.world_spec import WorldSpec, _split

AGENT_PATH = "hrlxf_core.agent.LitaAgentHRL"
HRL_PREFIX = "LitaAgentHRL-"
DEFAULT_CONTENDERS = (
    "LitaAgentHRL-neural",
    "LitaAgentHRL-heuristic",
    "LitaAgentHRL-l1",
    "PenguinAgent",
    "AS0",
    "XenoSotaAgent",
    "UltraSuperMiracleSoraFinalAgentZ",
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


def contender_slot(name: str, cfg: EvalConfig) -> tuple[str, dict[str, Any] | None]:
    """Class path and constructor params of a contender name."""
    if name.startswith(HRL_PREFIX):
        mode = name[len(HRL_PREFIX) :]
        params: dict[str, Any] = {"mode": mode}
        if mode == "neural":
            if cfg.checkpoints:
                params.update({f"{k}_path": v for k, v in cfg.checkpoints.items()})
            else:
                params["checkpoints_dir"] = cfg.checkpoints_dir
        return AGENT_PATH, params
    return resolve_agent(name).class_path, None


def draw_eval_specs(cfg: EvalConfig, run_id: str) -> list[WorldSpec]:
    rng = random.Random(f"hrlxf-eval-{cfg.seed}")
    fillers = [KNOWN_AGENTS[n] for n in FILLER_AGENTS]
    slots = {c: contender_slot(c, cfg) for c in cfg.contenders}
    specs = []
    for i in range(cfg.n_worlds):
        n_steps = rng.randint(cfg.n_steps_min, cfg.n_steps_max)
        n_proc = rng.randint(cfg.n_processes_min, cfg.n_processes_max)
        order = list(cfg.contenders)
        rng.shuffle(order)
        per_level = _split(len(order), n_proc, rng)
        paths, levels, params, labels = [], [], [], []
        it = iter(order)
        for level, n_c in enumerate(per_level):
            for _ in range(n_c):
                name = next(it)
                path, p = slots[name]
                paths.append(path), levels.append(level), params.append(p), labels.append(name)
            for _ in range(max(cfg.min_factories_per_level - n_c, 0)):
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
                            "score": None,
                            "status": w["status"],
                        }
                    )
            continue
        for aid, score in zip(w["agent_ids"], w["scores"], strict=True):
            slot = int("".join(ch for ch in aid[:3] if ch.isdigit()))
            label = spec.agent_labels[slot]
            if label != "filler":
                rows.append(
                    {
                        "world_id": w["world_id"],
                        "contender": label,
                        "agent_id": aid,
                        "level": spec.agent_levels[slot],
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
            "score": pl.Float64,
            "status": pl.String,
        },
    )


def summarise(*out_dirs: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per-contender summary sorted by truncated mean, per-world table) of one or several
    evaluation runs (e.g. several seeds) pooled."""
    from negmas.helpers.numeric import truncated_mean

    per_world = pl.concat([per_world_scores(d) for d in out_dirs], how="vertical")
    agent_stats: dict[str, list[dict[str, Any]]] = {}
    for d in out_dirs:
        if (d / "agent_stats.parquet").exists():
            for r in pl.read_parquet(d / "agent_stats.parquet").iter_rows(named=True):
                agent_stats.setdefault(r["label"], []).append(json.loads(r["stats_json"]))
    rows = []
    for name in per_world["contender"].unique(maintain_order=True):
        s = per_world.filter((pl.col("contender") == name) & (pl.col("status") == "ok"))["score"].to_numpy()
        st = agent_stats.get(name, [])
        rows.append({
            "contender": name,
            "worlds": int(len(s)),
            "mean": float(s.mean()) if len(s) else float("nan"),
            "truncated_mean": float(truncated_mean(s)) if len(s) else float("nan"),
            "ci95": t_ci95(s),
            "min": float(s.min()) if len(s) else float("nan"),
            "max": float(s.max()) if len(s) else float("nan"),
            "unsafe_actions": int(sum(x["violations"] for x in st)) if st else None,
            "fallbacks": int(sum(x["fallbacks"] for x in st)) if st else None,
            "clip_changed": int(sum(x["clip_changed"] for x in st)) if st else None,
            "decisions": int(sum(x["decisions"] for x in st)) if st else None,
            "latency_p50_ms": float(np.median([x["latency_p50_ms"] for x in st])) if st else None,
            "latency_p99_ms": float(np.max([x["latency_p99_ms"] for x in st])) if st else None,
        })  # fmt: skip
    summary = pl.DataFrame(rows).sort("truncated_mean", descending=True, nulls_last=True)
    return summary, per_world


def markdown_table(summary: pl.DataFrame) -> str:
    head = "| contender | worlds | mean ± 95% CI | truncated mean | unsafe | fallbacks | p50 / p99 ms |\n|---|---:|---:|---:|---:|---:|---:|"
    lines = [head]
    for r in summary.iter_rows(named=True):
        lat = "" if r["latency_p50_ms"] is None else f"{r['latency_p50_ms']:.2f} / {r['latency_p99_ms']:.2f}"
        unsafe = "" if r["unsafe_actions"] is None else str(r["unsafe_actions"])
        fb = "" if r["fallbacks"] is None else str(r["fallbacks"])
        lines.append(
            f"| {r['contender']} | {r['worlds']} | {r['mean']:.3f} ± {r['ci95']:.3f} | {r['truncated_mean']:.3f} | {unsafe} | {fb} | {lat} |"
        )
    return "\n".join(lines)


def scores_png(summary: pl.DataFrame, title: str) -> bytes:
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(os.environ.get("HRLXF_DATA_DIR", "data"), ".mpl"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    names = summary["contender"].to_list()
    mean = summary["mean"].to_numpy()
    ci = np.nan_to_num(summary["ci95"].to_numpy())
    colors = ["tab:orange" if n.startswith(HRL_PREFIX) else "tab:blue" for n in names]
    ax.barh(range(len(names)), mean, xerr=ci, color=colors, capsize=3)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("score = balance / initial balance (mean ± 95% CI)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
