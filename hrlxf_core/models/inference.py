"""Play-time graphs of L3 and L4: the modules' own methods exported to ONNX and run by onnxruntime.

Why: the agent runs L3's ``act`` and L4's forward once per negotiation round on a handful of
threads (issue 13: p50 ≤ 2 ms for a round of 10 threads). At that size a call is mostly
per-operation overhead: torch's dispatcher (eager, or a TorchScript replay of the same aten
operations) costs several microseconds an operation, and the tensors cost a conversion each way.
onnxruntime runs the graph of the very same module (exported from its method, so there is one
definition of each network: the one training uses) on numpy arrays, with fused kernels and about
a microsecond an operation: 2-3 times faster for L4 and a third faster for L3 (``bench/agent.py``).

Its kernels are not torch's, so the outputs are equal to the module's up to float rounding, not
to the bit: every time a graph is made it is checked on a random batch of another size than the
exported one (argmax outputs equal, float outputs within ``ATOL``), and where export fails or the
check does not hold the module's own method is used. The graph holds a copy of the weights taken
when it is made; a stack that loads new weights makes a new graph (``NeuralStack`` counts calls
per module object).

Both kinds of callable here take and return numpy arrays (the agent's side is numpy), so the
stack calls an eager module and a graph alike.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from hrlxf_core.constants import N_OFFSETS
from hrlxf_core.l4_features import N_GLOBAL, N_THREAD
from hrlxf_core.models.common import explicit_attention
from hrlxf_core.models.l3_inputs import HIST_FEATURES, HIST_LEN, N_CONTEXT, N_OPS

KINDS = ("l3", "l4")
#: Inputs of the play-time call of each kind, in order (the stack passes them so).
INPUT_NAMES = {
    "l3": ("hist", "hist_len", "context", "time_mask", "op_mask"),
    "l4": ("thread_feats", "thread_valid", "global_feats"),
}
#: Outputs: L3's ``act`` dict keys; L4's α.
OUTPUT_NAMES = {"l3": ("op", "delta", "residual"), "l4": ("alpha",)}
#: Largest |graph − module| allowed on a float output of the check batch.
ATOL = 1e-5
#: ONNX opset of the export (onnxruntime ≥ 1.20 runs it; LayerNormalization needs ≥ 17).
OPSET = 17

PlayFn = Callable[..., Any]


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


def as_play_inputs(kind: str, arrays: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """The dtypes both callables take: float32 features, int64 counts, bool masks."""
    if kind == "l3":
        hist, hist_len, context, time_mask, op_mask = arrays
        return (
            np.ascontiguousarray(hist, np.float32).reshape(len(hist), HIST_LEN, HIST_FEATURES),
            np.ascontiguousarray(hist_len, np.int64),
            np.ascontiguousarray(context, np.float32),
            np.ascontiguousarray(time_mask, bool),
            np.ascontiguousarray(op_mask, bool),
        )
    thread_feats, thread_valid, global_feats = arrays
    return (
        np.ascontiguousarray(thread_feats, np.float32),
        np.ascontiguousarray(thread_valid, bool),
        np.ascontiguousarray(global_feats, np.float32),
    )


class _PlayOutputs(torch.nn.Module):
    """The play-time method of a module as a forward returning a tuple (what export takes)."""

    def __init__(self, model: torch.nn.Module, kind: str) -> None:
        super().__init__()
        self.model, self.kind = model, kind

    def forward(self, *x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.kind == "l4":
            return (self.model(*x),)
        out = self.model.act(*x)
        return tuple(out[k] for k in OUTPUT_NAMES["l3"])


def _named_outputs(kind: str, out: list[np.ndarray]) -> Any:
    """What both callables return: L3 → dict of op / delta / residual arrays, L4 → α (B, T)."""
    return dict(zip(OUTPUT_NAMES["l3"], out, strict=True)) if kind == "l3" else out[0]


def eager_inference(model: torch.nn.Module, kind: str) -> PlayFn:
    """The module's own play-time method (L3's ``act``, L4's forward) on numpy arrays: L3 → dict
    of op / delta / residual arrays, L4 → α (B, T)."""
    device = next(model.parameters()).device
    play = _PlayOutputs(model, kind)

    def run(*arrays: np.ndarray) -> Any:
        x = tuple(torch.from_numpy(a).to(device) for a in as_play_inputs(kind, arrays))
        with torch.inference_mode():
            out = play(*x)
        out = [o.cpu().numpy() for o in out]
        return _named_outputs(kind, out)

    run.module = model  # type: ignore[attr-defined]  (what it runs: for the tests and for logs)
    return run


def _export(model: torch.nn.Module, kind: str) -> bytes:
    """The ONNX graph of the module's play-time method, with a free batch (L3) / thread (L4) axis."""
    names = INPUT_NAMES[kind]
    free = {
        n: ({0: "batch"} if kind == "l3" else ({1: "threads"} if n != "global_feats" else {})) for n in names
    }
    buf = io.BytesIO()
    with torch.inference_mode(), warnings.catch_warnings(), explicit_attention():
        warnings.simplefilter("ignore")  # the exporter's TracerWarnings and deprecation notices
        torch.onnx.export(
            _PlayOutputs(model, kind).eval(),
            example_inputs(kind, 2),
            buf,
            input_names=list(names),
            output_names=list(OUTPUT_NAMES[kind]),
            dynamic_axes={n: a for n, a in free.items() if a},
            opset_version=OPSET,
            dynamo=False,
        )
    return buf.getvalue()


def close_outputs(a: Any, b: Any, atol: float = ATOL) -> bool:
    """Integer / bool outputs equal, float outputs within ``atol`` (arrays, or dicts of them)."""
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and a.keys() == b.keys() and all(close_outputs(a[k], b[k], atol) for k in a)
        )
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
        return False
    if a.dtype.kind == "f":
        return bool(np.all(np.abs(a.astype(np.float64) - b.astype(np.float64)) <= atol))
    return bool(np.array_equal(a, b))


def onnx_inference(model: torch.nn.Module, kind: str) -> PlayFn:
    """The play-time method of a CPU module as an onnxruntime graph on numpy arrays (one thread),
    or :func:`eager_inference` when export fails, onnxruntime is missing, or the graph's outputs
    are not close to the module's on a check batch (see the module doc)."""
    eager = eager_inference(model, kind)
    if next(model.parameters()).device.type != "cpu":
        return eager  # a GPU module stays on torch
    try:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # a world worker is one core
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only
        session = ort.InferenceSession(_export(model, kind), opts, providers=["CPUExecutionProvider"])
        names = INPUT_NAMES[kind]

        def run(*arrays: np.ndarray) -> Any:
            out = session.run(None, dict(zip(names, as_play_inputs(kind, arrays), strict=True)))
            return _named_outputs(kind, out)

        check = tuple(t.numpy() for t in example_inputs(kind, 5, seed=1))  # another size than exported
        if not close_outputs(run(*check), eager(*check)):
            return eager
    except Exception:
        return eager
    run.module = model  # type: ignore[attr-defined]
    run.session = session  # type: ignore[attr-defined]
    return run
