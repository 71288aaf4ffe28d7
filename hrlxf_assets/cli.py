"""``hrlxf`` command line: the headless demo of the asset graph and the Dagster UI.

Both use the same project-local Dagster instance (``.dagster_home/`` unless ``DAGSTER_HOME`` is
set), so what ``hrlxf demo`` materialized is visible in ``hrlxf ui``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_TEMPLATE = PROJECT_ROOT / "deploy" / "dagster.yaml"


class UsageError(Exception):
    """A user's mistake on the command line: reported as one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (``hrlxf collect: error: ...``), not usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _split(text: str | None) -> list[str] | None:
    """'A, B,C' -> ['A', 'B', 'C']; None or '' -> None."""
    items = [x.strip() for x in (text or "").split(",") if x.strip()]
    return items or None


def _check_steps(steps_min: int | None, steps_max: int | None) -> None:
    if steps_min is not None and steps_min < 5:
        raise UsageError(f"--steps-min {steps_min}: a world needs at least 5 days")
    if steps_min is not None and steps_max is not None and steps_min > steps_max:
        raise UsageError(f"--steps-min {steps_min} is above --steps-max {steps_max}")


def _check_agents(names: list[str], flag: str) -> None:
    from hrlxf_core.sim.roster import RosterError, resolve_agent

    for name in names:
        try:
            resolve_agent(name)
        except RosterError as exc:
            raise UsageError(f"{flag}: {exc}") from None


def prepare_instance_env(dagster_home: str | None = None, data_dir: str | None = None) -> Path:
    """Point DAGSTER_HOME at a project-local folder holding our instance config; quiet telemetry."""
    home = Path(dagster_home or os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if INSTANCE_TEMPLATE.exists() and not target.exists():
        shutil.copyfile(INSTANCE_TEMPLATE, target)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["DAGSTER_DISABLE_TELEMETRY"] = "yes"
    if data_dir:
        os.environ["HRLXF_DATA_DIR"] = str(Path(data_dir).resolve())
    os.environ.setdefault("HRLXF_DATA_DIR", str(PROJECT_ROOT / "data"))
    return home


def run_demo(partition: str, profile: str, log=print) -> int:
    """Materialize the whole asset graph that exists so far, headless, at ``profile`` scale."""
    import dagster as dg

    from hrlxf_assets.definitions import defs
    from hrlxf_assets.partitions import COLLECTION_RUNS

    instance = dg.DagsterInstance.get()
    if not instance.has_dynamic_partition(COLLECTION_RUNS, partition):
        instance.add_dynamic_partitions(COLLECTION_RUNS, [partition])
    t0 = time.perf_counter()
    log(
        f"hrlxf demo: DAGSTER_HOME={os.environ['DAGSTER_HOME']} HRLXF_DATA_DIR={os.environ['HRLXF_DATA_DIR']}"
    )
    # The graph mixes partitioned and unpartitioned assets, so it runs as steps in the seed's
    # order: each step is one Dagster run on the same instance (all visible in the UI).
    steps: list[tuple[list[str], str | None, dict]] = [
        (["tournament_logs", "macro_samples", "micro_samples"], partition,
         {"tournament_logs": {"config": {"profile": profile}}}),
        (["teacher_table"], None, {}),
        (["l2_model"], None, {}),
        (["micro_samples_goal_hat"], partition, {}),
        (["l3_model"], None, {}),
        (["l4_distill_set"], partition, {}),
        (["l4_model"], None, {}),
        (["policy_selection"], None, {"policy_selection": {"config": {"n_worlds": 2}}} if profile == "smoke" else {}),
        (["hrl_online_policy"], None, {}),
        (["agent_evaluation"], None, {"agent_evaluation": {"config": {"n_worlds": 2}}} if profile == "smoke" else {}),
    ]  # fmt: skip
    keys = (
        "worlds_ok",
        "worlds_failed",
        "worlds_timed_out",
        "rows",
        "mae_vs_train_mean",
        "checkpoint_path",
        "path",
    )
    specs = _check_specs()
    produced: dict[str, dict] = {}
    warnings: list[str] = []
    for assets, key, ops in steps:
        log(
            f"hrlxf demo: materializing {', '.join(assets)}"
            + (f" [{key}]" if key else "")
            + f" ({profile} profile)"
        )
        result = dg.materialize(
            [defs.get_assets_def(a) for a in assets],
            instance=instance,
            partition_key=key,
            resources={"data_store": defs.resources["data_store"]},
            run_config={"ops": ops},
            raise_on_error=False,
        )
        for asset in assets:
            for mat in result.asset_materializations_for_node(asset):
                md = mat.metadata
                log(f"  {asset}: " + ", ".join(f"{k}={md[k].value}" for k in keys if k in md))
            for mat in result.asset_materializations_for_node(asset):
                produced[asset] = {k: v.value for k, v in mat.metadata.items()}
        for check in result.get_asset_check_evaluations():
            log("  " + check_line(check, specs))
            if not check.passed and check.severity == dg.AssetCheckSeverity.WARN:
                warnings.append(check_line(check, specs))
        if not result.success:
            log(f"hrlxf demo: run {result.run_id} FAILED after {time.perf_counter() - t0:.0f}s")
            return 1
    log(f"hrlxf demo: the whole asset graph materialized in {time.perf_counter() - t0:.0f}s")
    for line in demo_report(produced, warnings, profile):
        log(line)
    return 0


def _check_specs() -> dict[tuple[str, str], str]:
    """(asset, check name) -> the check's description, for the reason of a failed check."""
    from hrlxf_assets.definitions import defs

    out: dict[tuple[str, str], str] = {}
    for a in defs.resolve_asset_graph().assets_defs:
        for spec in a.check_specs:
            out[(spec.asset_key.to_user_string(), spec.name)] = spec.description or ""
    return out


def check_line(check, specs: dict[tuple[str, str], str]) -> str:
    """One line per check; a failed one says why (its description and its metadata), and a failed
    warning-only check is labelled a warning, not a failure."""
    import dagster as dg

    asset = check.asset_key.to_user_string()
    name = f"check {asset}:{check.check_name}"
    if check.passed:
        return f"{name} passed"
    warn = check.severity == dg.AssetCheckSeverity.WARN
    why = [check.description or specs.get((asset, check.check_name), "")]
    why += [f"{k}={str(v.value).strip()[:160]}" for k, v in (check.metadata or {}).items()]
    reason = "; ".join(w for w in why if w) or "no reason recorded"
    return f"{name} {'WARNING (warning only)' if warn else 'FAILED'}: {reason}"


def demo_report(produced: dict[str, dict], warnings: list[str], profile: str) -> list[str]:
    """What the demo produced: the evaluation's results table and where the files are."""
    lines = ["", "hrlxf demo: results (agent_evaluation)"]
    ev = produced.get("agent_evaluation", {})
    lines += str(ev.get("results", "(no agent_evaluation results)")).strip().splitlines()
    if ev:
        lines.append(
            f"worlds: {ev.get('worlds_ok')} ok, {ev.get('worlds_failed')} failed, {ev.get('worlds_timed_out')} timed out"
        )
    lines += ["", "hrlxf demo: files"]
    data = os.environ.get("HRLXF_DATA_DIR", "")
    lines.append(f"  data folder        {data}")
    if "path" in ev:
        run = Path(str(ev["path"]))
        lines.append(
            f"  evaluation         {run / 'results.md'}, {run / 'summary.parquet'}, {run / 'per_world.parquet'}"
        )
    for asset in ("tournament_logs", "macro_samples", "micro_samples", "l2_model", "l3_model", "l4_model"):
        md = produced.get(asset, {})
        where = md.get("checkpoint_path") or md.get("path")
        if where:
            lines.append(f"  {asset:<18} {where}")
    lines.append(f"  Dagster instance   {os.environ.get('DAGSTER_HOME', '')} (browse it with: hrlxf ui)")
    if warnings:
        lines += [
            "",
            f"hrlxf demo: {len(warnings)} warning(s); expected at {profile} scale, where a few short worlds train the models:",
        ]
        lines += [f"  {w}" for w in warnings]
    return lines


def collect_overrides(
    partition: str,
    profile: str,
    *,
    roster: list[str] | None = None,
    seed: int | None = None,
    steps_min: int | None = None,
    steps_max: int | None = None,
    competitors: int | None = None,
    n_worlds: int | None = None,
    workers: int | None = None,
) -> dict:
    """The ``tournament_logs`` config of a ``hrlxf collect``, checked the way the asset will use it
    (profile, roster, day range, competitors); raises :class:`UsageError` on a mistake, before
    anything is registered or written."""
    from hrlxf_assets.collect import seed_for_partition
    from hrlxf_core.sim.collect import PROFILES, make_config
    from hrlxf_core.sim.roster import RosterError, resolve_roster
    from hrlxf_core.sim.world_spec import draw_world_specs

    if profile not in PROFILES:
        raise UsageError(f"--profile {profile!r}: unknown profile; choose one of {sorted(PROFILES)}")
    _check_steps(steps_min, steps_max)
    if roster:
        _check_agents(roster, "--roster")
    overrides = {
        "roster": roster,
        "seed": seed,
        "n_steps_min": steps_min,
        "n_steps_max": steps_max,
        "competitors_per_world": competitors,
        "n_worlds": n_worlds,
        "workers": workers,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        cfg = make_config(profile, **overrides)
        draw_world_specs(
            run_id=partition,
            roster_paths=[a.class_path for a in resolve_roster(list(cfg.roster))],
            n_worlds=1,
            n_steps_min=cfg.n_steps_min,
            n_steps_max=cfg.n_steps_max,
            competitors_per_world=cfg.competitors_per_world,
            seed=seed if seed is not None else seed_for_partition(partition),
        )
    except (ValueError, RosterError) as exc:
        raise UsageError(str(exc)) from None
    return overrides


def run_collect(partition: str, profile: str, overrides: dict, retry_failed: bool = False, log=print) -> int:
    """Collect (or resume) one partition and parse it: tournament_logs + macro/micro samples.
    ``overrides`` come from :func:`collect_overrides` (already checked)."""
    import dagster as dg

    from hrlxf_assets.definitions import defs
    from hrlxf_assets.partitions import COLLECTION_RUNS

    instance = dg.DagsterInstance.get()
    if not instance.has_dynamic_partition(COLLECTION_RUNS, partition):
        instance.add_dynamic_partitions(COLLECTION_RUNS, [partition])
    config = {"profile": profile, **overrides, "retry_failed": retry_failed}
    if "roster" in config:
        config["roster"] = list(config["roster"])
    assets = ["tournament_logs", "macro_samples", "micro_samples"]
    result = dg.materialize(
        [defs.get_assets_def(a) for a in assets],
        instance=instance,
        partition_key=partition,
        resources={"data_store": defs.resources["data_store"]},
        run_config={"ops": {"tournament_logs": {"config": config}}},
        raise_on_error=False,
    )
    log(f"hrlxf collect: {partition} {'succeeded' if result.success else 'FAILED'} (run {result.run_id})")
    return 0 if result.success else 1


def _materialize(assets: list[str], partition: str | None, ops: dict, log=print) -> bool:
    import dagster as dg

    from hrlxf_assets.definitions import defs

    result = dg.materialize(
        [defs.get_assets_def(a) for a in assets],
        instance=dg.DagsterInstance.get(),
        partition_key=partition,
        resources={"data_store": defs.resources["data_store"]},
        run_config={"ops": ops},
        raise_on_error=False,
    )
    for check in result.get_asset_check_evaluations():
        state = "passed" if check.passed else "FAILED"
        log(f"  check {check.asset_key.to_user_string()}:{check.check_name} {state}")
    log(
        f"hrlxf: {', '.join(assets)}"
        + (f" [{partition}]" if partition else "")
        + (" ok" if result.success else " FAILED")
    )
    return result.success


def run_train(
    max_epochs: int,
    l3_epochs: int | None,
    awr_epochs: int,
    device: str,
    batch_size: int = 256,
    teacher_weighting: str = "uniform",
    l2_teacher_weighting: str = "uniform",
    only_l3: bool = False,
    max_train_worlds: int = 0,
    log=print,
) -> int:
    """Train the models in the seed's order on every materialized partition."""
    import dagster as dg

    from hrlxf_assets.partitions import COLLECTION_RUNS

    data = Path(os.environ["HRLXF_DATA_DIR"])
    parts = [
        p
        for p in dg.DagsterInstance.get().get_dynamic_partitions(COLLECTION_RUNS)
        if (data / "micro_samples" / p / "micro.parquet").exists()
    ]
    if not parts:
        log("hrlxf train: no partition with micro samples; run hrlxf collect first")
        return 1
    cfg = {"max_epochs": max_epochs, "device": device, "batch_size": batch_size}
    steps = [(["teacher_table"], None, {})]
    steps += [
        (["l2_model"], None, {"l2_model": {"config": {**cfg, "teacher_weighting": l2_teacher_weighting}}})
    ]
    steps += [(["micro_samples_goal_hat"], p, {}) for p in parts]
    steps += [
        (
            ["l3_model"],
            None,
            {
                "l3_model": {
                    "config": {
                        **cfg,
                        "max_epochs": l3_epochs or max_epochs,
                        "awr_epochs": awr_epochs,
                        "teacher_weighting": teacher_weighting,
                        "max_train_worlds": max_train_worlds,
                    }
                }
            },
        )
    ]
    steps += [(["l4_distill_set"], p, {}) for p in parts]
    steps += [(["l4_model"], None, {"l4_model": {"config": cfg}})]
    if only_l3:  # a variant of L3 on the current L2's goal_hat (e.g. another outcome weighting)
        steps = [s for s in steps if s[0] == ["l3_model"]]
    for assets, key, ops in steps:
        if not _materialize(assets, key, ops, log):
            return 1
    return 0


def run_select(
    n_worlds: int,
    steps_min: int,
    steps_max: int,
    seed: int,
    workers: int,
    candidates: dict[str, str],
    log=print,
) -> int:
    """Materialize policy_selection: the current L3 (BC+AWR), its BC checkpoint and ``candidates``
    play the same short worlds; the best by level-balanced mean becomes the agent's policy."""
    config = {
        "n_worlds": n_worlds,
        "n_steps_min": steps_min,
        "n_steps_max": steps_max,
        "seed": seed,
        "workers": workers,
        "candidates": candidates,
    }
    return 0 if _materialize(["policy_selection"], None, {"policy_selection": {"config": config}}, log) else 1


def run_evaluate(
    n_worlds: int,
    steps_min: int,
    steps_max: int,
    seed: int,
    workers: int,
    contenders: list[str] | None = None,
    processes: tuple[int, int] | None = None,
    log=print,
) -> int:
    _check_steps(steps_min, steps_max)
    if n_worlds < 1:
        raise UsageError(f"--n-worlds {n_worlds}: need at least one world")
    if contenders:
        _check_contenders(contenders)
    config: dict = {
        "n_worlds": n_worlds,
        "n_steps_min": steps_min,
        "n_steps_max": steps_max,
        "seed": seed,
        "workers": workers,
    }
    if contenders:
        config["contenders"] = contenders
    if processes:
        config["n_processes_min"], config["n_processes_max"] = processes
    ops = {"agent_evaluation": {"config": config}}
    return 0 if _materialize(["agent_evaluation"], None, ops, log) else 1


def _check_contenders(contenders: list[str]) -> None:
    from hrlxf_core.evaluation import HRL_MODES, HRL_PREFIX
    from hrlxf_core.sim.l1_guard import FILTER_SUFFIX

    for c in contenders:
        if c.startswith(HRL_PREFIX):
            if c[len(HRL_PREFIX) :] not in HRL_MODES:
                raise UsageError(f"--contenders: {c!r}: LitaAgentHRL modes are {', '.join(HRL_MODES)}")
            continue
        _check_agents([c[: -len(FILTER_SUFFIX)] if c.endswith(FILTER_SUFFIX) else c], "--contenders")


def run_import(source: str, partition: str, log=print) -> int:
    """Adopt a ``tournament_logs`` partition written elsewhere (e.g. ``../shared/datasets/...``):
    check its record schema, copy it atomically under the data folder, register the partition
    and parse it (macro and micro samples, with their checks)."""
    import json as _json
    import shutil

    import dagster as dg

    from hrlxf_assets.partitions import COLLECTION_RUNS
    from hrlxf_core.constants import RECORD_SCHEMA_VERSION
    from hrlxf_core.sim.records import READABLE_RECORD_VERSIONS

    src = Path(source)
    meta = src / "collection.json"
    if not meta.exists():
        log(f"hrlxf import: {meta} not found: not a tournament_logs partition folder")
        return 2
    version = _json.loads(meta.read_text()).get("record_schema_version")
    if version not in READABLE_RECORD_VERSIONS:
        log(
            f"hrlxf import: {meta}: record_schema_version {version}, this code reads "
            f"{', '.join(f'v{v}' for v in READABLE_RECORD_VERSIONS)} (writes v{RECORD_SCHEMA_VERSION})"
        )
        return 2
    dest = Path(os.environ["HRLXF_DATA_DIR"]) / "tournament_logs" / partition
    if dest.exists():
        log(f"hrlxf import: {dest} exists already; parsing it again")
    else:
        tmp = dest.with_name(dest.name + ".importing")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        tmp.rename(dest)
    instance = dg.DagsterInstance.get()
    if not instance.has_dynamic_partition(COLLECTION_RUNS, partition):
        instance.add_dynamic_partitions(COLLECTION_RUNS, [partition])
    return 0 if _materialize(["macro_samples", "micro_samples"], partition, {}, log) else 1


def run_lineage(target: str, log=print) -> int:
    """Print the chain from a checkpoint (file, or model asset name) back to its collection runs."""
    import json as _json

    import polars as pl

    from hrlxf_core.training.checkpoint import CheckpointError, file_sha256, load_checkpoint

    data = Path(os.environ["HRLXF_DATA_DIR"])
    path = Path(target)
    if not path.exists():
        cur = data / target / "current.json"
        if not cur.exists():
            log(f"hrlxf lineage: {target!r} is neither a checkpoint file nor a model asset with {cur}")
            return 2
        path = Path(_json.loads(cur.read_text())["path"])

    def show(p: Path, indent: str = "") -> None:
        kind = "l2" if "l2" in p.name else "l3" if "l3" in p.name else "l4"
        ck = load_checkpoint(p, kind)
        lin, m = ck.get("lineage", {}), ck.get("metrics", {})
        log(f"{indent}{lin.get('asset', kind)} checkpoint {p}")
        log(
            f"{indent}  sha256 {file_sha256(p)}; code {lin.get('code_version')} (hrlxf {lin.get('hrlxf_version')}), "
            f"git {lin.get('git_commit')}, dagster run {lin.get('run_id')}"
        )
        keys = [
            k
            for k in (
                "mae",
                "mae_train_mean",
                "op_accuracy",
                "op_accuracy_majority",
                "residual_mae_q",
                "residual_mae_q_zero",
                "delta_accuracy",
                "delta_accuracy_baseline",
                "kl",
                "kl_uniform",
            )
            if k in m
        ]
        log(
            f"{indent}  metrics ({m.get('eval_split', '?')} worlds): "
            + ", ".join(f"{k}={m[k]:.4g}" for k in keys)
        )
        log(f"{indent}  config: {_json.dumps(lin.get('config', {}))}")
        for part in lin.get("source_partitions", []):
            log(
                f"{indent}  <- {Path(lin['source_files'][part]).parent.parent.name}[{part}] sha256 {lin['source_sha256'][part][:16]}"
            )
            logs = data / "tournament_logs" / part
            if (logs / "worlds.parquet").exists():
                w = pl.read_parquet(logs / "worlds.parquet")
                types = sorted({t.rsplit(".", 1)[-1] for ts in w["agent_types"] for t in ts})
                log(
                    f"{indent}     <- tournament_logs[{part}]: {w.height} worlds ({(w['status'] == 'ok').sum()} ok), "
                    f"seeds {w['seed'].min()}..{w['seed'].max()}, days {w['n_steps'].min()}-{w['n_steps'].max()}"
                )
                log(f"{indent}        agents: {', '.join(types)}")
        if lin.get("l2_checkpoint"):
            log(f"{indent}  goal_hat from:")
            show(Path(lin["l2_checkpoint"]), indent + "    ")

    try:
        show(path)
    except CheckpointError as exc:
        cause = exc.__cause__
        if cause is not None:  # torch could not load it at all (its advice would mislead here)
            raise UsageError(f"{path}: not a checkpoint file (torch.load: {type(cause).__name__})") from None
        raise UsageError(str(exc).strip().splitlines()[0]) from None
    return 0


def run_ui(host: str, port: int, grace_s: float = 20.0) -> int:
    """Run ``dagster dev`` until it exits, or until this process gets SIGTERM or SIGINT.

    ``dagster dev`` starts a webserver, a daemon and code-server processes. It runs in a process
    group of its own, and a signal to this wrapper is passed on to that whole group (SIGTERM), so
    that stopping ``hrlxf ui`` stops them all; whatever is still alive ``grace_s`` seconds later is
    killed. Without this the wrapper died alone and ``dagster dev`` kept running."""
    import signal

    cmd = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(PROJECT_ROOT / "workspace.yaml"),
        "-h",
        host,
        "-p",
        str(port),
    ]
    print(f"hrlxf ui: {' '.join(cmd)} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})", flush=True)
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, start_new_session=True)
    stopping: list[int] = []

    def _forward(signum: int, _frame: object) -> None:
        stopping.append(signum)
        _signal_group(proc.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, _forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                rc = proc.wait(timeout=grace_s if stopping else None)
                break
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if stopping:
        # the group leader has exited; its children may still be shutting down
        deadline = time.monotonic() + grace_s
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal_group(proc.pid, signal.SIGKILL)
        print(f"hrlxf ui: stopped (signal {stopping[0]})", flush=True)
        return 128 + stopping[0]
    return rc


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _parser() -> argparse.ArgumentParser:
    from hrlxf_core.sim.collect import PROFILES

    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = _Parser(prog="hrlxf", description=__doc__, formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = sub.add_parser(
        "demo", help="materialize the asset graph headless (smoke scale by default)", formatter_class=fmt
    )
    demo.add_argument(
        "--partition", default="smoke-demo", help="collection_runs partition key (reused: resumes)"
    )
    demo.add_argument("--profile", default="smoke", choices=sorted(PROFILES), help="collection profile")
    col = sub.add_parser(
        "collect", help="collect (or resume) one collection_runs partition and parse it", formatter_class=fmt
    )
    col.add_argument("partition", help="partition key (rerun the same key, with the same options, to resume)")
    col.add_argument(
        "--profile",
        default="full",
        choices=sorted(PROFILES),
        help="scale preset; the options below override it",
    )
    col.add_argument(
        "--roster",
        default=None,
        help="comma-separated contenders (roster names or full class paths); "
        "empty: the default roster (2024-2025 finalists and the std fillers)",
    )
    col.add_argument(
        "--seed", type=int, default=None, help="seed of the world draw; empty: derived from the partition key"
    )
    col.add_argument(
        "--steps-min", type=int, default=None, help="shortest world, in days (>= 5); empty: the profile's"
    )
    col.add_argument(
        "--steps-max", type=int, default=None, help="longest world, in days; empty: the profile's"
    )
    col.add_argument(
        "--competitors", type=int, default=None, help="roster agents per world; empty: the profile's"
    )
    col.add_argument("--n-worlds", type=int, default=None, help="number of worlds; empty: the profile's")
    col.add_argument("--workers", type=int, default=None, help="worlds run in parallel; empty: the profile's")
    col.add_argument(
        "--retry-failed", action="store_true", help="rerun worlds recorded as failed or timed out"
    )
    tr = sub.add_parser(
        "train",
        help="train L2 → goal_hat → L3 (BC, AWR) → L4 on every materialized partition",
        formatter_class=fmt,
    )
    tr.add_argument(
        "--max-epochs", type=int, default=20, help="epochs of L2 and L4 (and of L3 without --l3-epochs)"
    )
    tr.add_argument("--l3-epochs", type=int, default=None, help="BC epochs of L3 (empty: --max-epochs)")
    tr.add_argument("--awr-epochs", type=int, default=4, help="AWR epochs of L3 after BC")
    tr.add_argument("--device", default="auto", help="torch device (auto, cpu, cuda)")
    tr.add_argument("--batch-size", type=int, default=256, help="training batch size")
    tr.add_argument(
        "--teacher-weighting",
        default="uniform",
        choices=["uniform", "top", "score"],
        help="outcome weighting of L3's BC samples (uniform = plain BC; top = the 3 best experts per level; "
        "score = by the agent-world's score)",
    )
    tr.add_argument(
        "--l2-teacher-weighting",
        default="uniform",
        choices=["uniform", "top", "score"],
        help="the same for L2",
    )
    tr.add_argument(
        "--only-l3",
        action="store_true",
        help="train only L3, on the goal_hat of the current L2 (a variant to compare with hrlxf select)",
    )
    tr.add_argument(
        "--max-train-worlds",
        type=int,
        default=0,
        help="L3 trains on at most this many training worlds (0 = all): a learning curve's points",
    )
    sel = sub.add_parser(
        "select",
        help="materialize policy_selection: pick the L3 checkpoint that plays best (short worlds)",
        formatter_class=fmt,
    )
    sel.add_argument("--n-worlds", type=int, default=6, help="worlds of the selection tournament")
    sel.add_argument("--steps-min", type=int, default=30, help="shortest world, in days (>= 5)")
    sel.add_argument("--steps-max", type=int, default=60, help="longest world, in days")
    sel.add_argument("--seed", type=int, default=100, help="seed of the world draw")
    sel.add_argument("--workers", type=int, default=2, help="worlds run in parallel")
    sel.add_argument(
        "--candidates", default="", help="further L3 candidates, NAME=PATH,NAME=PATH (the same L2 / L4)"
    )
    ev = sub.add_parser(
        "evaluate",
        help="materialize agent_evaluation (HRL modes vs experts, same worlds)",
        formatter_class=fmt,
    )
    ev.add_argument("--n-worlds", type=int, default=20, help="worlds of the tournament")
    ev.add_argument("--steps-min", type=int, default=50, help="shortest world, in days (>= 5)")
    ev.add_argument("--steps-max", type=int, default=200, help="longest world, in days")
    ev.add_argument("--seed", type=int, default=1, help="seed of the world draw")
    ev.add_argument("--workers", type=int, default=2, help="worlds run in parallel")
    ev.add_argument(
        "--contenders",
        default=None,
        help="comma-separated contenders: LitaAgentHRL-<neural|heuristic|l1>, "
        "roster names, <Expert>+L1; empty: the asset's default list",
    )
    ev.add_argument(
        "--processes", default=None, help="production levels per world, MIN-MAX (e.g. 3-3); empty: 2-3"
    )
    imp = sub.add_parser(
        "import", help="adopt a tournament_logs partition folder and parse it", formatter_class=fmt
    )
    imp.add_argument("source", help="a partition folder (collection.json and the parquet tables)")
    imp.add_argument("partition", help="partition key to register it under")
    lin = sub.add_parser(
        "lineage", help="print the chain from a checkpoint back to its collection runs", formatter_class=fmt
    )
    lin.add_argument("target", help="a checkpoint file, or a model asset name (l2_model, l3_model, l4_model)")
    ui = sub.add_parser(
        "ui", help="start the Dagster UI (dagster dev) on the project's instance", formatter_class=fmt
    )
    ui.add_argument("--host", default="127.0.0.1", help="address the UI listens on")
    ui.add_argument("--port", type=int, default=3000, help="port the UI listens on")
    for p in (demo, col, tr, sel, ev, imp, lin, ui):
        p.add_argument(
            "--dagster-home", default=None, help="instance folder (empty: $DAGSTER_HOME or ./.dagster_home)"
        )
        p.add_argument("--data-dir", default=None, help="data folder (empty: $HRLXF_DATA_DIR or ./data)")
    return parser  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except UsageError as exc:
        print(f"hrlxf {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    prepare_instance_env(args.dagster_home, args.data_dir)
    if args.command == "demo":
        return run_demo(args.partition, args.profile)
    if args.command == "train":
        return run_train(
            args.max_epochs,
            args.l3_epochs,
            args.awr_epochs,
            args.device,
            args.batch_size,
            args.teacher_weighting,
            args.l2_teacher_weighting,
            args.only_l3,
            args.max_train_worlds,
        )
    if args.command == "select":
        cands = {}
        for item in filter(None, args.candidates.split(",")):
            name, sep, path = item.partition("=")
            if not sep or not name or not path:
                raise UsageError(f"--candidates item {item!r} is not NAME=PATH")
            if not Path(path).is_file():
                raise UsageError(f"--candidates {name}: {path} is not a file")
            cands[name] = path
        _check_steps(args.steps_min, args.steps_max)
        return run_select(args.n_worlds, args.steps_min, args.steps_max, args.seed, args.workers, cands)
    if args.command == "evaluate":
        procs = None
        if args.processes:
            try:
                lo, hi = (int(x) for x in args.processes.split("-"))
            except ValueError:
                raise UsageError(f"--processes {args.processes!r}: expected MIN-MAX, e.g. 3-3") from None
            if not 2 <= lo <= hi:
                raise UsageError(f"--processes {args.processes!r}: need 2 <= MIN <= MAX")
            procs = (lo, hi)
        return run_evaluate(
            args.n_worlds,
            args.steps_min,
            args.steps_max,
            args.seed,
            args.workers,
            _split(args.contenders),
            procs,
        )
    if args.command == "import":
        return run_import(args.source, args.partition)
    if args.command == "lineage":
        return run_lineage(args.target)
    if args.command == "collect":
        overrides = collect_overrides(
            args.partition,
            args.profile,
            roster=_split(args.roster),
            seed=args.seed,
            steps_min=args.steps_min,
            steps_max=args.steps_max,
            competitors=args.competitors,
            n_worlds=args.n_worlds,
            workers=args.workers,
        )
        return run_collect(args.partition, args.profile, overrides, args.retry_failed)
    return run_ui(args.host, args.port)


if __name__ == "__main__":
    raise SystemExit(main())
