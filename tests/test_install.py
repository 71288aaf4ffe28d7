"""A lean, repeatable install (issue 14, item 11).

scripts/setup.sh installs scml and scml-agents without their declared dependencies (tensorflow,
mip/cbcbox, xgboost, stable-baselines3, tensorboard, jupyter, papermill: ~3.7 GB) and pins every
version with requirements/constraints.txt. These tests keep that honest: every roster agent
imports in a fresh interpreter without any of the skipped packages, and every requirement of scml
and scml-agents is either declared by us or skipped on purpose.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import requires, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Declared by scml / scml-agents, imported by nothing we run (roster agents, worlds, our code).
SKIPPED = {
    "tensorflow", "mip", "xgboost", "stable-baselines3", "tensorboard",  # scml-agents
    "torch",  # installed first by setup.sh (CPU wheel), declared by us with a range
    "pulp", "python-constraint", "prettytable", "tqdm",  # scml-agents: no std finalist imports them
    "jupyter", "papermill", "pytest", "hypothesis",  # scml: notebooks and its own tests
}  # fmt: skip
HEAVY_MODULES = ("tensorflow", "mip", "xgboost", "stable_baselines3", "tensorboard", "cbcbox", "jupyter",
                 "notebook", "jupyterlab", "papermill", "pulp")  # fmt: skip

_IMPORT_ALL = """
import json, sys
from hrlxf_core.sim.roster import KNOWN_AGENTS, load_class
failed = {}
for name, path in KNOWN_AGENTS.items():
    try:
        load_class(path)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1].split(',')))
print(json.dumps({"failed": failed, "heavy": heavy}))
"""


def _name(req: str) -> str:
    return re.split(r"[ ;<>=!~\[(]", req.strip())[0].lower().replace("_", "-")


def test_every_roster_agent_imports_in_a_fresh_interpreter_without_the_skipped_packages() -> None:
    res = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, ",".join(HEAVY_MODULES)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=True,
    )
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["failed"] == {}, out["failed"]  # a missing dependency shows here, by agent
    assert out["heavy"] == [], out["heavy"]


def test_every_requirement_of_scml_and_scml_agents_is_declared_or_skipped_on_purpose() -> None:
    declared = {
        _name(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    assert not {"scml", "scml-agents"} & declared  # installed with --no-deps by setup.sh
    for dist in ("scml", "scml-agents"):
        for req in requires(dist) or []:
            if "extra ==" in req:
                continue
            n = _name(req)
            assert n in declared or n in SKIPPED or n in ("negmas", "scml"), (
                f"{dist} requires {req!r}: declare it or skip it"
            )


def test_setup_installs_the_pinned_scml_versions_and_uses_the_constraints() -> None:
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    no_deps = re.search(r"NO_DEPS=\(([^)]*)\)", setup)
    assert no_deps, "scripts/setup.sh: NO_DEPS=(...) not found"
    pins = dict(p.split("==") for p in no_deps.group(1).split())
    assert pins == {"scml": version("scml"), "scml-agents": version("scml-agents")}
    assert '-c "$CONSTRAINTS"' in setup
    lines = [
        ln
        for ln in (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
        if ln and not ln.startswith("#")
    ]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", ln) for ln in lines), lines[:5]
    names = {ln.split("==")[0].lower().replace("_", "-") for ln in lines}
    assert "torch==2.13.0" in lines and {"negmas", "dagster", "polars"} <= names
    assert not names & {"tensorflow", "xgboost", "mip", "jupyter", "stable-baselines3"}
