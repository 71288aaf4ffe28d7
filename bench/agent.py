"""Benchmark: LitaAgentHRL's per-round planning latency (the body of ``counter_all``) in neural mode,
and the share of a real world's time the agent takes.

    python bench/agent.py                              # default-size untrained networks
    python bench/agent.py --checkpoints-dir data       # the trained checkpoints (<asset>/current.json)
    python bench/agent.py --world-share                # + one evaluation world: the agent's share of its time
    python bench/agent.py --world-share --iters 0      # the world only

Rounds are captured from a real world (threads with real negotiation mechanisms), replicated to
exactly ``--threads`` live threads, and planned ``--iters`` times on one core (torch and BLAS
single-threaded). Targets (issues 5 and 13): p50 ≤ 2 ms, p99 ≤ 20 ms for 10 live threads. The
figures are those of the steady state, after the stack has traced its networks (NeuralStack
runs them eagerly for its first ``trace_after`` rounds, then through traced graphs); the first
rounds and the round that traces are reported on their own. Besides wall-clock percentiles it
prints the CPU time per round (``time.process_time``) and the load average while it ran: on a
machine shared with other work the wall clock moves with the load. Then it splits a round: the
networks' graphs timed inside ``min(--iters, 1000)`` more rounds against the rest (the shared
numpy functions: state, L1, features, the reservation loop), and each graph called back to back
on one round's inputs (its floor on this machine).

``--world-share`` runs one evaluation world (``--world-days`` days; the contenders of
``--world-contenders``, LitaAgentHRL-neural on the same checkpoints, fillers as the evaluation
draws them) and prints the agent's planning time (the sum of its ``hrlxf_stats()`` latencies:
every ``first_proposals`` / ``counter_all`` round), the time it spends in all its callbacks
(life cycle and negotiation callbacks, timed from outside, nested calls counted once) and both as
a share of the world's wall time.
"""

from __future__ import annotations

import os
import sys

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS"):
    os.environ[_v] = "1"

from hrlxf_core.sim.worker import PYTHONHASHSEED  # noqa: E402  (after the thread settings: it loads polars)

if os.environ.get("PYTHONHASHSEED") != PYTHONHASHSEED:
    # the captured world iterates over sets of strings (some agents do): without the workers'
    # fixed hash seed every run captures other rounds, and the percentiles move with them
    os.environ["PYTHONHASHSEED"] = PYTHONHASHSEED
    os.execv(sys.executable, [sys.executable, *sys.argv])

import argparse  # noqa: E402
import copy  # noqa: E402
import dataclasses  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def _default_checkpoints(tmp: Path) -> dict[str, str]:
    """Untrained default-size networks (latency depends on the architecture, not the weights)."""
    from hrlxf_core.models.l2 import L2Config, L2Net
    from hrlxf_core.models.l3 import L3Config, L3Net
    from hrlxf_core.models.l4 import L4Config, L4Net
    from hrlxf_core.training.checkpoint import CHECKPOINT_FORMAT, feature_schema, save_checkpoint

    out = {}
    for kind, model, cfg in (
        ("l2", L2Net(L2Config()), L2Config()),
        ("l3", L3Net(L3Config()), L3Config()),
        ("l4", L4Net(L4Config()), L4Config()),
    ):
        path = tmp / f"{kind}.pt"
        save_checkpoint(
            path,
            {
                "format": CHECKPOINT_FORMAT,
                "state_dict": model.state_dict(),
                "config": dataclasses.asdict(cfg),
                "schema": feature_schema(kind),
            },
        )
        out[f"{kind}_path"] = str(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints-dir", default=None)
    ap.add_argument("--threads", type=int, default=10)
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=20, help="distinct captured rounds to cycle through")
    ap.add_argument("--world-share", action="store_true", help="also run one world: the agent's share")
    ap.add_argument("--world-days", type=int, default=20)
    ap.add_argument("--world-seed", type=int, default=0)
    ap.add_argument(
        "--world-contenders",
        default="LitaAgentHRL-neural,PenguinAgent,AS0,XenoSotaAgent,UltraSuperMiracleSoraFinalAgentZ",
        help="comma-separated evaluation contender names (hrlxf_core.evaluation)",
    )
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from hrlxf_core.sim.world_run import apply_sandbox_env

    tmp = Path(tempfile.mkdtemp(prefix="hrlxf-bench-agent-"))
    apply_sandbox_env(tmp)
    ck = {"checkpoints_dir": args.checkpoints_dir} if args.checkpoints_dir else _default_checkpoints(tmp)
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread")
    print(f"checkpoints: {args.checkpoints_dir or 'default-size untrained networks'}")
    if args.iters > 0:
        _latency(args, ck, tmp)
    if args.world_share:
        _world_share(args, ck, tmp)


def _latency(args: argparse.Namespace, ck: dict, tmp: Path) -> None:
    """p50 / p99 of plan_round on rounds captured from a real world, replicated to --threads."""
    import hrlxf_core.agent as agent_mod
    from hrlxf_core.agent_layers import make_stack
    from hrlxf_core.sim.roster import KNOWN_AGENTS
    from hrlxf_core.sim.world_run import run_world
    from hrlxf_core.sim.world_spec import WorldSpec

    stack = make_stack("neural", **ck)
    captured = []
    real = agent_mod.plan_round

    def recording(st, obs, goal, my_id, inputs, ledger):
        # counter_all rounds (some partner made an offer) of two threads or more, with each
        # thread's history as it stood (the ledger is the agent's and grows after the call)
        if len(inputs) >= 2 and any(x.offer is not None for x in inputs):
            hist = {x.nid: copy.deepcopy(ledger[x.nid]) for x in inputs if x.nid in ledger}
            captured.append((obs.copy(), goal.copy(), my_id, list(inputs), hist))
        return real(st, obs, goal, my_id, inputs, ledger)

    agent_mod.plan_round = recording
    a, p, g = "hrlxf_core.agent.LitaAgentHRL", KNOWN_AGENTS["PenguinAgent"], KNOWN_AGENTS["GreedyStdAgent"]
    spec = WorldSpec(
        world_id="bench-agent",
        index=0,
        seed=1,
        n_steps=12,
        n_processes=2,
        agent_paths=(a, p, g, g) + (p, g, g, g, g, g),
        agent_levels=(0, 0, 0, 0) + (1,) * 6,
        competitor=(False,) * 10,
        agent_params=({"mode": "heuristic"},) + (None,) * 9,
    )
    run_world(spec, "bench", tmp / "log", tracked=False)
    agent_mod.plan_round = real
    if not captured:
        raise SystemExit("no multi-thread round captured")
    rounds = []
    # --rounds of them, evenly spaced over the world (early rounds have short histories, later
    # ones long: the first few alone would flatter L3), each replicated to --threads threads
    # that keep their thread's history
    for j in np.linspace(0, len(captured) - 1, min(args.rounds, len(captured))).round().astype(int):
        obs, goal, my_id, inputs, ledger = captured[j]
        many, hist = [], {}
        for i in range(args.threads):
            x = inputs[i % len(inputs)]
            many.append(dataclasses.replace(x, nid=f"{x.nid}#{i}"))
            if x.nid in ledger:
                hist[f"{x.nid}#{i}"] = ledger[x.nid]
        rounds.append((obs, goal, my_id, many, hist))
    lens = np.asarray([len(r[4][x.nid].entries) if x.nid in r[4] else 0 for r in rounds for x in r[3]])

    def timed(n: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        lat, cpu = [], []
        for i in range(start, start + n):
            obs, goal, my_id, inputs, ledger = rounds[i % len(rounds)]
            t0, c0 = time.perf_counter(), time.process_time()
            real(stack, obs, goal, my_id, inputs, ledger)
            lat.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        return np.asarray(lat), np.asarray(cpu)

    load0 = os.getloadavg()[0]
    # the stack runs its networks eagerly for its first trace_after rounds, then traces them
    eager = stack.trace_after if hasattr(stack, "trace_after") else 0
    first = timed(eager) if eager else None
    t0 = time.perf_counter()
    real(stack, *rounds[0])  # the round that traces the graphs (if the stack does)
    trace_ms = (time.perf_counter() - t0) * 1000
    timed(3)  # warm-up of the graphs
    lat, cpu = timed(args.iters)
    print(
        f"{args.threads} live threads, {args.iters} rounds ({len(rounds)} distinct rounds of "
        f"{len(captured)} captured); offers in a thread's history: median {np.median(lens):.0f}, "
        f"max {lens.max()} (L3 reads the last 16)"
    )
    print(
        f"counter_all planning latency: p50 {np.percentile(lat, 50):.2f} ms (target <= 2), "
        f"p99 {np.percentile(lat, 99):.2f} ms (target <= 20), mean {lat.mean():.2f} ms"
    )
    print(
        f"  CPU time per round: p50 {np.percentile(cpu, 50):.2f} ms, p99 {np.percentile(cpu, 99):.2f} ms; "
        f"load average {load0:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    if first is not None:
        print(
            f"  the agent's first {eager} rounds (networks run eagerly, before tracing): "
            f"p50 {np.percentile(first[0], 50):.2f} ms, p99 {np.percentile(first[0], 99):.2f} ms; "
            f"the round that traced them {trace_ms:.0f} ms (once per agent)"
        )
    if getattr(stack, "_graphs", None):
        _network_split(stack, rounds, real, min(args.iters, 1000))


def _network_split(stack, rounds: list, real, n: int) -> None:
    """Where a round's time goes: the networks' graphs (L3's act, L4's forward) against the rest
    (state, L1, features, the reservation loop: the shared numpy functions), timed inside ``n``
    more rounds; and each graph called back to back on one round's inputs, its floor on this
    machine (in a round, the numpy work between the calls leaves the caches colder)."""
    spent: dict[str, list[float]] = {"l3": [], "l4": []}
    inputs: dict[str, tuple] = {}
    graphs = {k: stack._graphs[k][3] for k in spent if stack._graphs.get(k) and stack._graphs[k][3]}

    def timed_graph(kind: str, g):
        def run(*a):
            inputs.setdefault(kind, a)
            t0 = time.perf_counter()
            try:
                return g(*a)
            finally:
                spent[kind][-1] += (time.perf_counter() - t0) * 1000

        return run

    for k, g in graphs.items():
        stack._graphs[k][3] = timed_graph(k, g)
    total = []
    try:
        for i in range(n):
            for k in graphs:
                spent[k].append(0.0)
            t0 = time.perf_counter()
            real(stack, *rounds[i % len(rounds)])
            total.append((time.perf_counter() - t0) * 1000)
    finally:
        for k, g in graphs.items():
            stack._graphs[k][3] = g
    tot = np.asarray(total)
    nets = sum((np.asarray(spent[k]) for k in graphs), np.zeros(n))
    parts = ", ".join(f"{k.upper()} {np.percentile(spent[k], 50):.2f}" for k in graphs)
    print(
        f"  inside a round (p50 of {n}): the networks' graphs {np.percentile(nets, 50):.2f} ms ({parts}), "
        f"the rest (state, L1, features, reservation loop) {np.percentile(tot - nets, 50):.2f} ms"
    )
    floor = []
    for k, g in graphs.items():
        a = inputs[k]
        for _ in range(100):
            g(*a)
        t0 = time.perf_counter()
        for _ in range(1000):
            g(*a)
        floor.append(f"{k.upper()} {(time.perf_counter() - t0):.2f} ms")
    print(f"  each graph called back to back on one round's inputs (its floor here): {', '.join(floor)}")


class _CallbackTimer:
    """Wall time spent inside a class's methods, timed from outside; a call made while another
    timed call is running (the agent calling its own methods) is not counted twice."""

    def __init__(self, cls: type, names: tuple[str, ...]) -> None:
        self.cls, self.names, self.total, self.calls, self._depth = cls, names, 0.0, 0, 0
        self._orig = {n: cls.__dict__[n] for n in names if n in cls.__dict__}

    def __enter__(self) -> _CallbackTimer:
        for name, fn in self._orig.items():
            setattr(self.cls, name, self._timed(fn))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, fn in self._orig.items():
            setattr(self.cls, name, fn)

    def _timed(self, fn):
        def wrapper(*a, **kw):
            self._depth += 1
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.total += time.perf_counter() - t0
                    self.calls += 1

        return wrapper


def _world_share(args: argparse.Namespace, ck: dict, tmp: Path) -> None:
    """One evaluation world: LitaAgentHRL-neural's planning time and callback time ÷ the world's wall time."""
    from hrlxf_core.agent import LitaAgentHRL, lita_agents
    from hrlxf_core.evaluation import one_world_spec
    from hrlxf_core.sim.world_run import run_world

    contenders = tuple(c.strip() for c in args.world_contenders.split(",") if c.strip())
    if "LitaAgentHRL-neural" not in contenders:
        raise SystemExit("--world-contenders must name LitaAgentHRL-neural")
    paths = {k[: -len("_path")]: v for k, v in ck.items() if k.endswith("_path")}
    spec = one_world_spec(
        contenders, args.world_days, args.world_seed, "bench-share", paths, ck.get("checkpoints_dir")
    )
    names = (
        "init", "before_step", "step", "first_proposals", "counter_all", "propose",
        "on_negotiation_success", "on_negotiation_failure",
    )  # fmt: skip
    import hrlxf_core.agent as agent_mod

    obs_time = [0.0, 0]  # the agent's live_observation calls (in _plan, before_step, the safety check)
    live_observation = agent_mod.live_observation

    def timed_observation(*a, **kw):
        t0 = time.perf_counter()
        try:
            return live_observation(*a, **kw)
        finally:
            obs_time[0] += time.perf_counter() - t0
            obs_time[1] += 1

    load0 = os.getloadavg()[0]
    agent_mod.live_observation = timed_observation
    try:
        with _CallbackTimer(LitaAgentHRL, names) as timer:
            t0 = time.perf_counter()
            out = run_world(spec, "bench-share", tmp / "share-log", tracked=False, keep_world=True)
            wall = time.perf_counter() - t0
    finally:
        agent_mod.live_observation = live_observation
    agents = lita_agents(out.world)
    plan_ms = sum(sum(a.stats.latency_ms) for a in agents)
    rounds = sum(a.stats.rounds for a in agents)
    lat = np.concatenate([np.asarray(a.stats.latency_ms) for a in agents]) if rounds else np.zeros(1)
    world_s = float(out.tables["worlds"]["wall_time_s"][0])
    print(
        f"world: {spec.n_steps} days, {spec.n_processes} levels, {len(spec.agent_paths)} factories "
        f"({', '.join(contenders)} + fillers), seed {spec.seed}; wall {world_s:.1f} s "
        f"(run_world {wall:.1f} s); load average {load0:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    print(
        f"LitaAgentHRL-neural ({len(agents)} in the world): {rounds} planning rounds, "
        f"p50 {np.percentile(lat, 50):.2f} ms, p99 {np.percentile(lat, 99):.2f} ms"
    )
    print(
        f"  planning (hrlxf_stats latency sum) {plan_ms / 1000:.2f} s = {100 * plan_ms / 1000 / world_s:.1f} % "
        f"of the world's wall time"
    )
    print(
        f"  all its callbacks ({timer.calls} calls) {timer.total:.2f} s = {100 * timer.total / world_s:.1f} % "
        f"of the world's wall time; of which reading the AWI (live_observation, {obs_time[1]} calls) "
        f"{obs_time[0]:.2f} s"
    )


if __name__ == "__main__":
    main()
