"""The L1 guard on real experts in real tiny worlds: ``PenguinAgent+L1`` (the ceiling contender)
filters and counts what it filters, its agreements never break L1's invariant, and the watch mode
(every plain expert of an evaluation) changes nothing in the world."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from negmas.helpers import get_class, get_full_type_name

from hrlxf_core.sim.l1_guard import L1GuardMixin, guarded_class, guarded_class_path
from hrlxf_core.sim.roster import KNOWN_AGENTS, load_class
from hrlxf_core.sim.tracked import expert_path_of
from hrlxf_core.sim.world_run import apply_sandbox_env, run_world
from hrlxf_core.sim.world_spec import WorldSpec

PENGUIN = KNOWN_AGENTS["PenguinAgent"]
FILLERS = [KNOWN_AGENTS[n] for n in ("GreedyStdAgent", "RandomStdAgent", "SyncRandomStdAgent")]


def _spec(expert_path: str, seed: int, world_id: str, n_steps: int = 14) -> WorldSpec:
    """3 levels × 4 factories; the expert (labelled) at each level, fillers elsewhere."""
    paths, levels, labels = [], [], []
    for level in range(3):
        paths.append(expert_path), levels.append(level), labels.append("expert")
        for j in range(3):
            paths.append(FILLERS[(level + j) % 3]), levels.append(level), labels.append("filler")
    return WorldSpec(
        world_id=world_id,
        index=0,
        seed=seed,
        n_steps=n_steps,
        n_processes=3,
        agent_paths=tuple(paths),
        agent_levels=tuple(levels),
        competitor=tuple(False for _ in paths),
        agent_labels=tuple(labels),
    )


@pytest.mark.parametrize("enforce", [True, False])
def test_guarded_class_is_importable_by_full_name(enforce: bool) -> None:
    expert = load_class(PENGUIN)
    cls = guarded_class(PENGUIN, enforce)
    assert guarded_class(expert, enforce) is cls and issubclass(cls, expert) and issubclass(cls, L1GuardMixin)
    assert cls.__name__ == expert.__name__  # same agent ids as the plain expert
    assert cls._hrlxf_l1_enforce is enforce and expert_path_of(cls) == PENGUIN
    assert get_class(guarded_class_path(PENGUIN, enforce)) is cls
    assert get_class(get_full_type_name(cls)) is cls  # filtered and watched: two full names
    assert pickle.loads(pickle.dumps(cls)) is cls
    assert cls.propose is L1GuardMixin.propose and cls.respond is L1GuardMixin.respond
    assert guarded_class(PENGUIN, not enforce) is not cls


def test_guarded_classes_rebuild_in_a_fresh_process() -> None:
    code = textwrap.dedent(
        f"""
        from negmas.helpers import get_class
        from hrlxf_core.sim.l1_guard import guarded_class_path
        for enforce in (True, False):
            cls = get_class(guarded_class_path({PENGUIN!r}, enforce))
            assert cls.__name__ == "PenguinAgent" and cls._hrlxf_l1_enforce is enforce
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_penguin_behind_l1_plays_and_its_filter_acts(tmp_path: Path) -> None:
    """In real worlds the filter changes some of PenguinAgent's actions (counted), none of its
    agreements breaks L1's invariant, and the world still trades."""
    apply_sandbox_env(tmp_path)
    path = guarded_class_path(PENGUIN, enforce=True)
    totals = {"decisions": 0, "changed": 0, "violations": 0, "agreements": 0, "errors": 0}
    for seed in (3, 4):
        out = run_world(_spec(path, seed, f"l1f-{seed}"), "guard", tmp_path / f"log{seed}", tracked=False)
        assert out.tables["worlds"]["status"][0] == "ok"
        stats = [json.loads(s) for s in out.tables["agent_stats"]["stats_json"]]
        mine = [s for s in stats if s.get("mode") == "l1-filter"]
        assert len(mine) == 3
        for s in mine:
            totals["decisions"] += s["decisions"]
            totals["changed"] += s["clip_changed"] + s["forbidden"]
            totals["violations"] += s["violations"]
            totals["agreements"] += s["agreements"]
            totals["errors"] += s["errors"]
            assert s["sold_units"] >= s["shortfall_units"] >= 0
    assert totals["errors"] == 0, totals
    assert totals["decisions"] > 0 and totals["agreements"] > 0, totals
    assert totals["changed"] > 0, totals  # the filter demonstrably acts
    assert totals["violations"] == 0, totals


_RUN = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from hrlxf_core.sim.world_run import apply_sandbox_env, run_world
    from hrlxf_core.sim.world_spec import WorldSpec

    spec, base, out_file = WorldSpec.from_json(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    apply_sandbox_env(base)
    res = run_world(spec, "watch", log_dir=base / "log", tracked=False, keep_world=True)
    w = res.world
    contracts = sorted(
        [c["concluded_at"], c["seller"], c["buyer"], int(c["quantity"]), int(c["delivery_time"]),
         float(c["unit_price"])] for c in w.saved_contracts
    )
    row = res.tables["worlds"].row(0, named=True)
    watched = [json.loads(s) for s in res.tables["agent_stats"]["stats_json"]] if "agent_stats" in res.tables else []
    Path(out_file).write_text(json.dumps({"contracts": contracts, "balances": row["final_balances"],
                                          "ids": row["agent_ids"], "watched": watched}))
    """
)


@pytest.mark.slow  # long (the filter test stays in the default run)
def test_the_watch_changes_nothing_in_the_world(tmp_path: Path) -> None:
    """The same world with plain PenguinAgent and with PenguinAgent behind the L1 watch, each in
    a fresh interpreter with PYTHONHASHSEED fixed, gives the same agent ids, contracts and
    balances; the watch reports what L1 would have changed."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    results = {}
    for name, path in (("plain", PENGUIN), ("watch", guarded_class_path(PENGUIN, enforce=False))):
        out = tmp_path / f"{name}.json"
        cmd = [
            sys.executable,
            "-c",
            _RUN,
            _spec(path, 5, "watch", n_steps=10).to_json(),
            str(tmp_path / name),
            str(out),
        ]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[name] = json.loads(out.read_text())
    plain, watch = results["plain"], results["watch"]
    assert plain["ids"] == watch["ids"]
    assert plain["contracts"] and plain["contracts"] == watch["contracts"]
    assert plain["balances"] == watch["balances"]
    watched = [s for s in watch["watched"] if s.get("mode") == "l1-watch"]
    assert len(watched) == 3 and sum(s["decisions"] for s in watched) > 0
