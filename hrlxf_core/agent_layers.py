"""The three layer stacks the agent can run: ``l1`` (residual 0), ``heuristic`` and ``neural``.

Each stack answers three questions for a round, on numpy batches built by the same functions
as the offline datasets: the day's goal (L2), each live thread's weight α (L4), and each
thread's op / residual / delivery offset (L3). L1 (limits, baseline, clip, reservation) is
applied by the planner around them, identically for every stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hrlxf_core.heuristics import heuristic_l2_goal, heuristic_l3_residual, heuristic_l4_alpha
from hrlxf_core.l3_contract import OP_ACCEPT, OP_END, OP_OFFER
from hrlxf_core.labels import GOAL_DIM
from hrlxf_core.state import Observation

MODES = ("l1", "heuristic", "neural")


def rule_ops(cols: dict[str, np.ndarray], target_p: np.ndarray, offer_safe: np.ndarray) -> np.ndarray:
    """ACCEPT a safe offer whose price is at least as good as what we would ask now; END when no
    delivery offset is safe; OFFER otherwise."""
    has = cols["has_offer"].astype(bool)
    buyer = cols["x_role"][:, 0] > 0.5
    good = np.where(buyer, cols["recv_p"] <= target_p + 1e-9, cols["recv_p"] >= target_p - 1e-9)
    feasible = cols["base_feasible"].astype(bool)
    op = np.where(has & offer_safe & good, OP_ACCEPT, np.where(feasible, OP_OFFER, OP_END))
    return op.astype(np.int64)


class L1Stack:
    """Residual 0: the agent plays the L1 baseline (docs/design.md §6.3 mode `l1`: seed §1.1 with L3 at zero)."""

    mode = "l1"

    def goal(self, obs: Observation) -> np.ndarray:
        return np.zeros((obs.size, GOAL_DIM))

    def alpha(self, thread_feats: np.ndarray, global_feats: np.ndarray) -> np.ndarray:
        return np.full(len(thread_feats), 1.0 / max(len(thread_feats), 1))

    def residual(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        return np.zeros((len(cols["base_q"]), 2))

    def decide(
        self, cols: dict[str, np.ndarray], offer_safe: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        res = self.residual(cols)
        target_p = cols["base_p"] + res[:, 1] * cols["market_price"]
        return rule_ops(cols, target_p, offer_safe), res, cols["base_delta"].astype(np.int64)


class HeuristicStack(L1Stack):
    """Rule-based L2 goal, concession L3 residual, heuristic L4 (the distillation teacher)."""

    mode = "heuristic"

    def goal(self, obs: Observation) -> np.ndarray:
        return heuristic_l2_goal(obs)

    def alpha(self, thread_feats: np.ndarray, global_feats: np.ndarray) -> np.ndarray:
        return heuristic_l4_alpha(thread_feats, global_feats)

    def residual(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        return heuristic_l3_residual(
            cols["base_q"], cols["base_p"], cols["has_offer"], cols["recv_q"], cols["recv_p"],
            cols["relative_time"], cols["n_lines"], cols["market_price"],
        )  # fmt: skip


class NeuralStack:
    """L2 / L3 / L4 networks loaded from checkpoints (schema-checked at construction).

    Play runs L3's ``act`` and L4's forward on the modules for their first ``trace_after`` calls,
    then through onnxruntime graphs exported from the very same modules
    (:func:`~hrlxf_core.models.inference.onnx_inference`: one definition of each network, equal
    outputs up to float rounding, checked when the graph is made). Making the graphs costs about
    what a few thousand rounds gain (0.5-1 s against a few milliseconds per round), so an agent
    that plays few rounds never pays for it. Both callables take the round's numpy arrays as they
    are. A graph holds the weights of its module at the time it is made: replacing ``l3`` / ``l4``
    starts over for that network (weights are never loaded into a playing stack's modules)."""

    mode = "neural"
    #: Calls of a network's play-time method before its graph is made (see the class doc).
    trace_after = 500

    def __init__(self, l2_path: Path, l3_path: Path, l4_path: Path, device: str = "cpu") -> None:
        import torch

        from hrlxf_core.models.checkpoint import load_l2, load_l3, load_l4

        torch.set_num_threads(1)  # a world worker is one core; threads only add latency here
        self.torch = torch
        self.l2, _ = load_l2(Path(l2_path), device)
        self.l3, _ = load_l3(Path(l3_path), device)
        self.l4, _ = load_l4(Path(l4_path), device)
        self.device = device
        self._graphs: dict[str, list[Any]] = {}  # kind -> [module, eager calls, eager fn, graph or None]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_graphs"] = {}  # graphs are not picklable: counted and made again
        return state

    def _t(self, a: np.ndarray) -> Any:
        return self.torch.as_tensor(np.ascontiguousarray(a), dtype=self.torch.float32).to(self.device)

    def _graph(self, kind: str) -> Any:
        """The play-time callable of ``l3`` (its ``act``) or ``l4`` (its forward) on numpy arrays:
        the module's own method for its first ``trace_after`` calls, then the onnxruntime graph."""
        from hrlxf_core.models.inference import eager_inference, onnx_inference

        model = getattr(self, kind)
        entry = self._graphs.get(kind)
        if entry is None or entry[0] is not model:  # first call, or the module was replaced
            entry = self._graphs[kind] = [model, 0, eager_inference(model, kind), None]
        if entry[3] is None:
            if entry[1] < self.trace_after:
                entry[1] += 1
                return entry[2]
            entry[3] = onnx_inference(model, kind)
        return entry[3]

    def goal(self, obs: Observation) -> np.ndarray:
        from hrlxf_core.state import build_state

        s = build_state(obs)
        with self.torch.inference_mode():
            mean, _ = self.l2(self._t(s.x_static), self._t(s.x_temporal), self._t(s.x_role))
        return mean.float().cpu().numpy().astype(np.float64)

    def alpha(self, thread_feats: np.ndarray, global_feats: np.ndarray) -> np.ndarray:
        t = len(thread_feats)
        a = self._graph("l4")(thread_feats[None], np.ones((1, t), bool), np.asarray(global_feats)[None])
        return a[0].astype(np.float64)

    def decide(
        self, cols: dict[str, np.ndarray], offer_safe: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from hrlxf_core.models.l3_inputs import l3_model_inputs

        x = l3_model_inputs(cols)
        out = self._graph("l3")(x["hist"], x["hist_len"], x["context"], x["time_mask"], x["op_mask"])
        return (
            out["op"].astype(np.int64),
            out["residual"].astype(np.float64),
            out["delta"].astype(np.int64),
        )


def make_stack(
    mode: str,
    l2_path: str | Path | None = None,
    l3_path: str | Path | None = None,
    l4_path: str | Path | None = None,
    checkpoints_dir: str | Path | None = None,
    device: str = "cpu",
) -> Any:
    """The layer stack of ``mode``; neural mode resolves checkpoints by path or from a data
    directory: its ``policy_selection/current.json`` (the policy chosen by play) when there is
    one, else each model's ``<asset>/current.json``. It fails here (at construction) when one is missing
    or does not fit the code."""
    if mode == "l1":
        return L1Stack()
    if mode == "heuristic":
        return HeuristicStack()
    if mode != "neural":
        raise ValueError(f"unknown LitaAgentHRL mode {mode!r}; choose one of {MODES}")
    paths = {"l2_model": l2_path, "l3_model": l3_path, "l4_model": l4_path}
    if checkpoints_dir is not None and all(p is None for p in paths.values()):
        from hrlxf_core.selection import selected_policy

        chosen = selected_policy(checkpoints_dir)  # the policy chosen by play, when there is one
        if chosen is not None:
            return NeuralStack(Path(chosen["l2"]), Path(chosen["l3"]), Path(chosen["l4"]), device)
    for asset, p in list(paths.items()):
        if p is None:
            if checkpoints_dir is None:
                raise ValueError(
                    f"neural mode needs a checkpoint for {asset}: pass its path or checkpoints_dir"
                )
            import json

            cur = Path(checkpoints_dir) / asset / "current.json"
            if not cur.exists():
                raise FileNotFoundError(
                    f"{cur}: no current checkpoint of {asset} (materialize {asset} first)"
                )
            paths[asset] = json.loads(cur.read_text())["path"]
    return NeuralStack(Path(paths["l2_model"]), Path(paths["l3_model"]), Path(paths["l4_model"]), device)
