"""hrlxf: SCML Standard-track tournaments turned into LitaAgent-HRL (HRL-XF).

The library part: simulation, tracking, state, layers, datasets, training, agent and
evaluation. It never imports dagster (the Dagster face lives in ``hrlxf_assets``).
"""

__version__ = "0.1.0"
