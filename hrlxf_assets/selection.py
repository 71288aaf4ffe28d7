"""``policy_selection``: the L3 checkpoint the agent plays, chosen by play, not by loss.

Candidates are the current L3 run's final (BC + AWR) checkpoint, its behaviour-cloned checkpoint
before AWR, and any further L3 checkpoints named in the config (e.g. other outcome weightings).
They play with the current L2 and L4 in the same short worlds beside fixed opponents
(``hrlxf_core.selection``); the winner is copied with the selection in its lineage and published
in ``policy_selection/current.json``, which ``agent_evaluation`` and
``LitaAgentHRL(checkpoints_dir=...)`` read.
"""

import json
import time
from pathlib import Path

import dagster as dg
from pydantic import Field

from hrlxf_assets.automation import follow_on_cron
from hrlxf_assets.lineage import git_commit
from hrlxf_assets.models import current_checkpoint, l2_model, l3_model, l4_model
from hrlxf_assets.resources import DataStore
from hrlxf_core.io import write_text_atomic
from hrlxf_core.selection import SELECTION_FILE

CODE_VERSION = "selection-v1"


class PolicySelectionConfig(dg.Config):
    n_worlds: int = Field(default=4, description="Worlds of the selection tournament.")
    n_steps_min: int = Field(default=15, description="Shortest world (days).")
    n_steps_max: int = Field(default=25, description="Longest world (days).")
    seed: int = Field(default=0, description="Seed of the world draw (not the evaluation's seed).")
    n_processes_min: int = Field(default=2, description="Fewest production levels of a world.")
    n_processes_max: int = Field(default=3, description="Most production levels of a world.")
    opponents: list[str] = Field(
        default=["PenguinAgent"], description="Roster agents that play beside the candidates in every world."
    )
    include_bc: bool = Field(
        default=True, description="Also play the L3 run's behaviour-cloned checkpoint (before AWR)."
    )
    candidates: dict[str, str] = Field(
        default={}, description="Further L3 candidates: name -> checkpoint path (same L2 / L4)."
    )
    workers: int = Field(default=2, description="Worlds run in parallel.")


@dg.asset(
    deps=[l2_model, l3_model, l4_model],
    automation_condition=follow_on_cron(),
    group_name="models",
    kinds={"python", "pytorch"},
    code_version=CODE_VERSION,
    check_specs=[
        dg.AssetCheckSpec(
            "selected_policy_loads",
            asset="policy_selection",
            blocking=True,
            description="the selected L2 / L3 / L4 load together into the agent's neural stack",
        )
    ],
    description="Model selection by play: L3 candidates (BC+AWR, BC, configured variants) with the current L2/L4 "
    "play the same short worlds; the best level-balanced mean is published with the choice in its lineage.",
)
def policy_selection(
    context: dg.AssetExecutionContext, config: PolicySelectionConfig, data_store: DataStore
) -> dg.MaterializeResult:
    from hrlxf_core.agent_layers import NeuralStack
    from hrlxf_core.selection import Candidate, select_by_play, selected_checkpoint
    from hrlxf_core.training.l3_train import bc_checkpoint_path

    t0 = time.perf_counter()
    l2, l3, l4 = (str(current_checkpoint(data_store, a)) for a in ("l2_model", "l3_model", "l4_model"))
    cands = [Candidate("awr", l2, l3, l4)]
    bc = bc_checkpoint_path(Path(l3))
    if config.include_bc and bc.exists():
        cands.append(Candidate("bc", l2, str(bc), l4))
    for name, path in config.candidates.items():
        if not Path(path).is_file():
            raise dg.Failure(f"policy_selection: candidate {name!r}: {path} is not a file")
        cands.append(Candidate(name, l2, path, l4))
    run_key = f"select-{context.run_id[:8]}"
    out = data_store.asset_dir("policy_selection") / "runs" / run_key
    sel = select_by_play(
        cands, out, run_key, data_store.root(), opponents=tuple(config.opponents), n_worlds=config.n_worlds,
        n_steps_min=config.n_steps_min, n_steps_max=config.n_steps_max, seed=config.seed,
        n_processes_min=config.n_processes_min, n_processes_max=config.n_processes_max,
        workers=config.workers, progress=context.log.info,
    )  # fmt: skip
    chosen = out / "l3_selected.pt"
    sha = selected_checkpoint(sel, chosen)
    loads, error = True, ""
    try:
        NeuralStack(Path(sel.winner.l2), chosen, Path(sel.winner.l4))
    except Exception as exc:  # reported by the blocking check, never published
        loads, error = False, f"{type(exc).__name__}: {exc}"
    current = {
        "l2": sel.winner.l2, "l3": str(chosen), "l4": sel.winner.l4, "l3_sha256": sha,
        "winner": sel.winner.name, "scores": sel.scores, "run": run_key, "git_commit": git_commit(),
    }  # fmt: skip
    if loads:
        write_text_atomic(json.dumps(current, indent=1), data_store.root() / SELECTION_FILE)
    table = "| candidate | level-balanced mean (selection worlds) |\n|---|---:|\n" + "\n".join(
        f"| {'**' + n + '**' if n == sel.winner.name else n} | {s:.3f} |" for n, s in sel.scores.items()
    )
    return dg.MaterializeResult(
        metadata={
            "winner": sel.winner.name,
            "scores": dg.MetadataValue.md(table),
            "selected_checkpoint": dg.MetadataValue.path(str(chosen)),
            "selected_sha256": sha,
            "selection": dg.MetadataValue.json(sel.record()),
            "worlds_ok": sel.worlds_ok,
            "wall_time_s": round(time.perf_counter() - t0, 1),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="selected_policy_loads",
                asset_key="policy_selection",
                passed=loads,
                metadata={"error": error or "none"},
            )
        ],
    )
