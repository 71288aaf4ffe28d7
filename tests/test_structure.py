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
