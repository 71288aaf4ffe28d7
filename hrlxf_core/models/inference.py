"""Play-time graphs of L3 and L4: TorchScript traces of the modules' own methods.

Why: the agent runs L3's ``act`` and L4's forward once per negotiation round on a handful of
threads, where the Python side of ``nn.Module`` calls and of each small tensor operation is a
large part of the time (issue 13). A trace records the aten operations that the module's own
method runs and replays them without Python: the same computation, so bit-for-bit the same
outputs. That is checked here, on a random batch of another size than the traced one, every time
a graph is made (and in the tests, on rounds of real worlds); where tracing fails or the check
does not hold, the module's own method is used. The graph shares the module's parameters (weights
loaded into the module later are used), and nothing in these methods branches on values, so
the trace holds for every batch size.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from hrlxf_core.constants import N_OFFSETS
from hrlxf_core.l4_features import N_GLOBAL, N_THREAD
from hrlxf_core.models.l3_inputs import HIST_FEATURES, HIST_LEN, N_CONTEXT, N_OPS

KINDS = ("l3", "l4")


def example_inputs(kind: str, n: int, device: Any = "cpu", seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs of the play-time call of ``kind`` for ``n`` threads (own generator: the
    global torch RNG is left alone)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "l3":
        x = (
            torch.randn(n, HIST_LEN, HIST_FEATURES, generator=g),
            torch.randint(0, HIST_LEN + 1, (n,), generator=g),
            torch.randn(n, N_CONTEXT, generator=g),
            torch.rand(n, N_OFFSETS, generator=g) > 0.3,
            torch.rand(n, N_OPS, generator=g) > 0.3,
        )
    elif kind == "l4":
        x = (
            torch.randn(1, n, N_THREAD, generator=g),
            torch.ones(1, n, dtype=torch.bool),
            torch.randn(1, N_GLOBAL, generator=g),
        )
    else:
        raise ValueError(f"no play-time graph for {kind!r}; one of {KINDS}")
    return tuple(t.to(device) for t in x)


def eager_inference(model: torch.nn.Module, kind: str) -> Callable[..., Any]:
    """The module's own play-time method: L3's ``act``, L4's forward."""
    return model.act if kind == "l3" else model  # type: ignore[return-value]


def same_outputs(a: Any, b: Any) -> bool:
    """Bit-for-bit equality of two outputs (tensors, or dicts of tensors with the same keys)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_outputs(a[k], b[k]) for k in a)
    return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


def traced_inference(model: torch.nn.Module, kind: str, device: Any = "cpu") -> Callable[..., Any]:
    """A traced graph of the module's play-time method, or the method itself when tracing fails
    or the graph's outputs differ from the module's (in any bit) on a check batch."""
    eager = eager_inference(model, kind)
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarning / the deprecation notice of torch.jit
            example = example_inputs(kind, 2, device, seed=0)
            if kind == "l3":
                graph = torch.jit.trace_module(model, {"act": example}, check_trace=False, strict=False).act
            else:
                graph = torch.jit.trace(model, example, check_trace=False)
            check = example_inputs(kind, 5, device, seed=1)  # another batch size than the traced one
            graph(*check)  # the first call of a graph profiles it; compare the optimised run
            if not same_outputs(graph(*check), eager(*check)):
                return eager
    except Exception:
        return eager
    return graph
