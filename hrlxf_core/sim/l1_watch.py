"""Home module of the L1-*watched* expert classes (``hrlxf_core.sim.l1_guard``, enforce=False).

Why a module of its own: negmas names an agent type by module + ``__name__``, and a watched and a
filtered PenguinAgent both keep the expert's ``__name__`` (so that agent ids stay the same); two
modules keep their full names apart, so a world rebuilds each from its name correctly.
"""

from __future__ import annotations


def __getattr__(name: str) -> type:
    """Rebuild watched classes by name in any process (PEP 562)."""
    if name.startswith("__"):
        raise AttributeError(name)
    from hrlxf_core.sim.l1_guard import resolve_guarded

    return resolve_guarded(name, enforce=False)
