"""hrlxf: SCML Standard-track tournaments turned into LitaAgent-HRL (HRL-XF).

The library part: simulation, tracking, state, layers, datasets, training, agent and
evaluation. It never imports dagster (the Dagster face lives in ``hrlxf_assets``).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``hrlxf_core.LitaAgentHRL`` without importing scml/negmas for every user of the library."""
    if name == "LitaAgentHRL":
        from hrlxf_core.agent import LitaAgentHRL

        return LitaAgentHRL
    raise AttributeError(f"module 'hrlxf_core' has no attribute {name!r}")
