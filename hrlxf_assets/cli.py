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
    graph = ["tournament_logs", "macro_samples", "micro_samples"]
    log(f"hrlxf demo: materializing {', '.join(graph)} [{partition}] at the '{profile}' profile")
    result = dg.materialize(
        [defs.get_assets_def(a) for a in graph],
        instance=instance,
        partition_key=partition,
        resources={"data_store": defs.resources["data_store"]},
        run_config={"ops": {"tournament_logs": {"config": {"profile": profile}}}},
        raise_on_error=False,
    )
    status = "succeeded" if result.success else "FAILED"
    log(f"hrlxf demo: run {result.run_id} {status} in {time.perf_counter() - t0:.0f}s")
    for asset in graph:
        for mat in result.asset_materializations_for_node(asset):
            md = mat.metadata
            keys = ("worlds_ok", "worlds_failed", "worlds_timed_out", "rows", "path")
            log(f"  {asset}: " + ", ".join(f"{k}={md[k].value}" for k in keys if k in md))
    for check in result.get_asset_check_evaluations():
        log(
            f"  check {check.asset_key.to_user_string()}:{check.check_name} {'passed' if check.passed else 'FAILED'}"
        )
    return 0 if result.success else 1


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
    ui = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on the project's instance")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    for p in (demo, ui):
        p.add_argument("--dagster-home", default=None, help="instance folder (default: ./.dagster_home)")
        p.add_argument("--data-dir", default=None, help="data folder (default: $HRLXF_DATA_DIR or ./data)")
    args = parser.parse_args(argv)
    prepare_instance_env(args.dagster_home, args.data_dir)
    if args.command == "demo":
        return run_demo(args.partition, args.profile)
    return run_ui(args.host, args.port)


if __name__ == "__main__":
    raise SystemExit(main())
