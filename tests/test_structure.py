"""Module structure the issue asked for, checked on the source: no import cycle between the
collection backends, and the agent's modules free of training code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(module: str) -> set[str]:
    """hrlxf modules imported anywhere in ``module``'s source (top level or inside functions)."""
    src = (ROOT / (module.replace(".", "/") + ".py")).read_text()
    out: set[str] = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hrlxf"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("hrlxf")}
    return out


def test_the_ray_backend_does_not_import_the_local_runner() -> None:
    """collect -> ray_backend only; both share the part writers and the worker body."""
    ray = _imports("hrlxf_core.sim.ray_backend")
    assert "hrlxf_core.sim.collect" not in ray
    assert {"hrlxf_core.sim.parts", "hrlxf_core.sim.worker"} <= ray
    assert "hrlxf_core.sim.collect" not in _imports("hrlxf_core.sim.parts") | _imports(
        "hrlxf_core.sim.worker"
    )


def test_the_ray_backend_imports_first_without_a_cycle() -> None:
    code = "import hrlxf_core.sim.ray_backend, hrlxf_core.sim.collect; print('ok')"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_the_l3_contract_is_torch_free_and_shared() -> None:
    """OP_* / HIST_* and the history encoder live in l3_contract, which imports no torch or
    polars; the agent, its layers, the L3 model and the micro builder all take them from there."""
    code = (
        "import sys, hrlxf_core.l3_contract as c; "
        "print(c.HIST_LEN, c.OP_NAMES, 'torch' in sys.modules, 'polars' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["16", "('ACCEPT',", "'OFFER',", "'END')", "False", "False"], r.stderr
    for module in (
        "hrlxf_core.agent",
        "hrlxf_core.agent_layers",
        "hrlxf_core.models.l3",
        "hrlxf_core.models.l3_inputs",
        "hrlxf_core.datasets.micro",
    ):
        assert "hrlxf_core.l3_contract" in _imports(module), module
        assert "hrlxf_core.datasets.micro" not in _imports(module), module


def test_the_agent_loads_its_networks_without_training_code() -> None:
    """agent_layers takes its checkpoint loaders from models/; importing the agent and the
    loaders imports nothing of hrlxf_core.training (which re-exports the same readers)."""
    assert not any(m.startswith("hrlxf_core.training") for m in _imports("hrlxf_core.agent_layers"))
    assert "hrlxf_core.models.checkpoint" in _imports("hrlxf_core.agent_layers")
    code = (
        "import sys, hrlxf_core.agent, hrlxf_core.agent_layers; "
        "from hrlxf_core.models.checkpoint import load_l2, load_l3, load_l4; "
        "print(sorted(m for m in sys.modules if m.startswith('hrlxf_core.training')))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
    from hrlxf_core.models import checkpoint as readers
    from hrlxf_core.training import checkpoint as writers

    assert writers.CheckpointError is readers.CheckpointError  # one error type to catch
    assert writers.load_checkpoint is readers.load_checkpoint
