"""The neural layers L2, L3, L4 (torch), one module each, plus their torch-free input builders.

Why this package is torch-free at import time: ``hrlxf_core.models.l3_inputs`` and
``hrlxf_core.models.schema`` are used by the dataset code and the online agent, which must not
pay torch's import cost (or depend on it). The torch modules are imported explicitly:

- ``hrlxf_core.models.l2``: :class:`L2Net` (daily goal, Gaussian head) and ``l2_nll``;
- ``hrlxf_core.models.l3``: :class:`L3Net` (residual negotiator) and ``l3_bc_loss``;
- ``hrlxf_core.models.l4``: :class:`L4Net` (thread coordinator) and ``l4_distill_loss``;
- ``hrlxf_core.models.common``: shared blocks and the checkpoint payload / loader.
"""
