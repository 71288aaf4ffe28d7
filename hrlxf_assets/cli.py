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
        for check in result.get_asset_check_evaluations():
            state = "passed" if check.passed else "FAILED"
            log(f"  check {check.asset_key.to_user_string()}:{check.check_name} {state}")
        if not result.success:
            log(f"hrlxf demo: run {result.run_id} FAILED after {time.perf_counter() - t0:.0f}s")
            return 1
    log(f"hrlxf demo: the whole asset graph materialized in {time.perf_counter() - t0:.0f}s")
    return 0


def run_collect(
    partition: str,
    profile: str,
    n_worlds: int | None,
    workers: int | None,
    retry_failed: bool = False,
    log=print,
) -> int:
    """Collect (or resume) one partition and parse it: tournament_logs + macro/micro samples."""
    import dagster as dg

    from hrlxf_assets.definitions import defs
    from hrlxf_assets.partitions import COLLECTION_RUNS

    instance = dg.DagsterInstance.get()
    if not instance.has_dynamic_partition(COLLECTION_RUNS, partition):
        instance.add_dynamic_partitions(COLLECTION_RUNS, [partition])
    overrides = {k: v for k, v in {"n_worlds": n_worlds, "workers": workers}.items() if v is not None}
    overrides["retry_failed"] = retry_failed
    assets = ["tournament_logs", "macro_samples", "micro_samples"]
    result = dg.materialize(
        [defs.get_assets_def(a) for a in assets],
        instance=instance,
        partition_key=partition,
        resources={"data_store": defs.resources["data_store"]},
        run_config={"ops": {"tournament_logs": {"config": {"profile": profile, **overrides}}}},
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


def run_import(source: str, partition: str, log=print) -> int:
    """Adopt a ``tournament_logs`` partition written elsewhere (e.g. ``../shared/datasets/...``):
    check its record schema, copy it atomically under the data folder, register the partition
    and parse it (macro and micro samples, with their checks)."""
    import json as _json
    import shutil

    import dagster as dg

    from hrlxf_assets.partitions import COLLECTION_RUNS
    from hrlxf_core.constants import RECORD_SCHEMA_VERSION

    src = Path(source)
    meta = src / "collection.json"
    if not meta.exists():
        log(f"hrlxf import: {meta} not found: not a tournament_logs partition folder")
        return 2
    version = _json.loads(meta.read_text()).get("record_schema_version")
    if version != RECORD_SCHEMA_VERSION:
        log(f"hrlxf import: {meta}: record_schema_version {version}, this code reads {RECORD_SCHEMA_VERSION}")
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

    from hrlxf_core.training.checkpoint import file_sha256, load_checkpoint

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

    show(path)
    return 0


def run_ui(host: str, port: int) -> int:
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
    print(f"hrlxf ui: {' '.join(cmd)} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    return subprocess.call(cmd, cwd=PROJECT_ROOT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hrlxf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="materialize the asset graph headless (smoke scale by default)")
    demo.add_argument(
        "--partition", default="smoke-demo", help="collection_runs partition key (reused: resumes)"
    )
    demo.add_argument("--profile", default="smoke", help="collection profile (smoke or full)")
    col = sub.add_parser("collect", help="collect (or resume) one collection_runs partition and parse it")
    col.add_argument("partition", help="partition key (rerun the same key to resume)")
    col.add_argument("--profile", default="full", help="collection profile (smoke or full)")
    col.add_argument("--n-worlds", type=int, default=None)
    col.add_argument("--workers", type=int, default=None)
    col.add_argument(
        "--retry-failed", action="store_true", help="rerun worlds recorded as failed or timed out"
    )
    tr = sub.add_parser(
        "train", help="train L2 → goal_hat → L3 (BC, AWR) → L4 on every materialized partition"
    )
    tr.add_argument("--max-epochs", type=int, default=20)
    tr.add_argument("--l3-epochs", type=int, default=None, help="BC epochs of L3 (default: --max-epochs)")
    tr.add_argument("--awr-epochs", type=int, default=4)
    tr.add_argument("--device", default="auto")
    tr.add_argument("--batch-size", type=int, default=256)
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
        "select", help="materialize policy_selection: pick the L3 checkpoint that plays best (short worlds)"
    )
    sel.add_argument("--n-worlds", type=int, default=6)
    sel.add_argument("--steps-min", type=int, default=30)
    sel.add_argument("--steps-max", type=int, default=60)
    sel.add_argument("--seed", type=int, default=100)
    sel.add_argument("--workers", type=int, default=2)
    sel.add_argument(
        "--candidates", default="", help="further L3 candidates, NAME=PATH,NAME=PATH (the same L2 / L4)"
    )
    ev = sub.add_parser("evaluate", help="materialize agent_evaluation (HRL modes vs experts, same worlds)")
    ev.add_argument("--n-worlds", type=int, default=20)
    ev.add_argument("--steps-min", type=int, default=50)
    ev.add_argument("--steps-max", type=int, default=200)
    ev.add_argument("--seed", type=int, default=1)
    ev.add_argument("--workers", type=int, default=2)
    ev.add_argument(
        "--contenders", default=None, help="comma-separated contenders (default: the asset's default list)"
    )
    ev.add_argument("--processes", default=None, help="production levels per world, MIN-MAX (e.g. 3-3)")
    imp = sub.add_parser("import", help="adopt a tournament_logs partition folder and parse it")
    imp.add_argument("source", help="a partition folder (collection.json and the parquet tables)")
    imp.add_argument("partition", help="partition key to register it under")
    lin = sub.add_parser("lineage", help="print the chain from a checkpoint back to its collection runs")
    lin.add_argument("target", help="a checkpoint file, or a model asset name (l2_model, l3_model, l4_model)")
    ui = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on the project's instance")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    for p in (demo, col, tr, ev, imp, lin, ui):
        p.add_argument("--dagster-home", default=None, help="instance folder (default: ./.dagster_home)")
        p.add_argument("--data-dir", default=None, help="data folder (default: $HRLXF_DATA_DIR or ./data)")
    args = parser.parse_args(argv)
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
                print(f"hrlxf select: --candidates item {item!r} is not NAME=PATH", file=sys.stderr)
                return 2
            cands[name] = path
        return run_select(args.n_worlds, args.steps_min, args.steps_max, args.seed, args.workers, cands)
    if args.command == "evaluate":
        procs = None
        if args.processes:
            try:
                lo, hi = (int(x) for x in args.processes.split("-"))
            except ValueError:
                parser.error(f"--processes {args.processes!r}: expected MIN-MAX, e.g. 3-3")
            procs = (lo, hi)
        contenders = [c.strip() for c in args.contenders.split(",")] if args.contenders else None
        return run_evaluate(
            args.n_worlds, args.steps_min, args.steps_max, args.seed, args.workers, contenders, procs
        )
    if args.command == "import":
        return run_import(args.source, args.partition)
    if args.command == "lineage":
        return run_lineage(args.target)
    if args.command == "collect":
        return run_collect(args.partition, args.profile, args.n_worlds, args.workers, args.retry_failed)
    return run_ui(args.host, args.port)


if __name__ == "__main__":
    raise SystemExit(main())
