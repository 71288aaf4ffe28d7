"""The Dagster UI, driven in headless Debian Chromium as a user drives it.

`dagster dev` runs on a free port with a temporary DAGSTER_HOME and data directory. The test
opens the asset graph, adds a ``collection_runs`` partition and launches its smoke collection
from the Materialize dialog, waits for the eager automation to parse it, trains L2 from its
page, turns the re-collection schedule on and off, and reads the checkpoint's lineage page.
The README's pictures are its screenshots (``HRLXF_SCREENSHOT_DIR=docs/screenshots``).

Chromium comes from Debian (``scripts/setup.sh --dev`` installs it when it is missing); the
``playwright`` package drives it, no browser is downloaded. Where no Chromium can be found the
test is skipped, except under CI, where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Where the screenshots go: build/ui-screenshots (git-ignored) so that a test run leaves the tree
#: clean (a dirty tree would mark every checkpoint's git commit "-dirty"); the README's pictures
#: are refreshed with HRLXF_SCREENSHOT_DIR=docs/screenshots.
SHOTS = Path(os.environ.get("HRLXF_SCREENSHOT_DIR", ROOT / "build" / "ui-screenshots"))
CHROMIUM = os.environ.get("HRLXF_CHROMIUM", "/usr/bin/chromium")
LOCATION = "hrlxf_assets.definitions"
PARTITION = "ui-smoke"
#: Flags for a root, offline machine: no sandbox, no GPU, no background calls to Google.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
#: The launch config typed into the UI's config editor: a smoke collection, tiny enough for CI.
#: Three worlds, the fewest that give L2 (trained from the UI below) a train, a validation and a
#: test world (training/split.py).
LAUNCH_CONFIG = """ops:
  tournament_logs:
    config:
      profile: smoke
      roster: [PenguinAgent, AS0, XenoSotaAgent]
      n_worlds: 3
      n_steps_min: 8
      n_steps_max: 10
      competitors_per_world: 3
      workers: 2
"""
ASSETS = [
    "tournament_logs",
    "macro_samples",
    "micro_samples",
    "teacher_table",
    "l2_model",
    "micro_samples_goal_hat",
    "l3_model",
    "l4_distill_set",
    "l4_model",
    "policy_selection",
    "hrl_online_policy",
    "agent_evaluation",
]


def _chromium_or_skip() -> None:
    reason = None
    try:
        import playwright  # noqa: F401
    except ImportError:
        reason = "the playwright package is not installed (bash scripts/setup.sh --dev installs it)"
    if reason is None and not Path(CHROMIUM).exists():
        reason = f"no Chromium at {CHROMIUM} (bash scripts/setup.sh --dev installs Debian's chromium)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {reason}")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dagster:
    """A `dagster dev` process (webserver, daemon, code server) and its GraphQL endpoint."""

    def __init__(self, base: str, proc: subprocess.Popen, log: Path) -> None:
        self.base, self.proc, self.log = base, proc, log

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        req = urllib.request.Request(
            self.base + "/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = json.loads(resp.read())
        assert "errors" not in body, body["errors"]
        return body["data"]

    def runs(self, partition: str) -> list[dict[str, Any]]:
        q = """query($p: String!) { runsOrError(filter: {tags: [{key: "dagster/partition", value: $p}]}) {
                 ... on Runs { results { runId status assetSelection { path } } } } }"""
        return self.graphql(q, {"p": partition})["runsOrError"]["results"]

    def materializations(self, asset: str) -> list[dict[str, Any]]:
        q = """query($a: [String!]!) { assetOrError(assetKey: {path: $a}) {
                 ... on Asset { assetMaterializations(limit: 20) { runId partition } } } }"""
        return self.graphql(q, {"a": [asset]})["assetOrError"]["assetMaterializations"]

    def schedule_status(self, name: str) -> str:
        q = """query($loc: String!, $n: String!) { scheduleOrError(scheduleSelector:
                 {repositoryLocationName: $loc, repositoryName: "__repository__", scheduleName: $n}) {
                 ... on Schedule { scheduleState { status } } } }"""
        return self.graphql(q, {"loc": LOCATION, "n": name})["scheduleOrError"]["scheduleState"]["status"]

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, server: Dagster, poll_s: float = 2.0):
    """Poll ``check`` until it returns something truthy; on timeout, fail with the server log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        if server.proc.poll() is not None:
            pytest.fail(
                f"dagster dev exited ({server.proc.returncode}) while waiting for {what}:\n{server.log_tail()}"
            )
        time.sleep(poll_s)
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}; dagster dev log:\n{server.log_tail()}")


def _default_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dagster]:
    _chromium_or_skip()
    tmp = tmp_path_factory.mktemp("ui")
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "HRLXF_DATA_DIR": str(tmp / "data"),
        "DAGSTER_DISABLE_TELEMETRY": "yes",
        "HRLXF_PARSE_INTERVAL_S": "5",  # the parse sensor's ticks (30 s by default) are not what is tested
    }
    log = tmp / "dagster-dev.log"
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(ROOT / "workspace.yaml")]
    cmd += ["-h", "127.0.0.1", "-p", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killpg ends webserver, daemon, code server
            preexec_fn=_default_signals,  # a server started from a background shell may ignore SIGTERM
        )
    server = Dagster(f"http://127.0.0.1:{port}", proc, log)

    def ready() -> bool:
        try:
            with urllib.request.urlopen(server.base + "/server_info", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def location_loaded() -> bool:
        q = """{ locationStatusesOrError { ... on WorkspaceLocationStatusEntries {
                 entries { name loadStatus } } } }"""
        entries = server.graphql(q)["locationStatusesOrError"]["entries"]
        return any(e["name"] == LOCATION and e["loadStatus"] == "LOADED" for e in entries)

    try:
        wait_for("the webserver to answer", ready, 180, server, poll_s=1.0)
        wait_for(f"the code location {LOCATION} to load", location_loaded, 180, server, poll_s=1.0)
        yield server
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def page(dagster_dev: Dagster):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        # The "join the community" pop-up would cover every screenshot: mark it as seen.
        context.add_init_script("window.localStorage.setItem('communityNux', '1')")
        context.set_default_timeout(60_000)
        pg = context.new_page()
        yield pg
        browser.close()


def shot(pg, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.wait_for_timeout(500)  # let the graph layout and fonts settle
    pg.screenshot(path=str(SHOTS / f"{name}.png"))


def test_the_ui_materializes_a_partition_and_shows_a_checkpoint_lineage(dagster_dev: Dagster, page) -> None:
    from playwright.sync_api import expect

    server, pg = dagster_dev, page

    # 1. The asset graph shows every asset, in its group.
    pg.goto(server.base + "/asset-groups")
    pg.get_by_text("models", exact=True).first.wait_for()
    _expand_all_groups(pg)
    pg.locator("[class*=AssetNode_assetName]").nth(len(ASSETS) - 1).wait_for()
    shown = pg.locator("[class*=AssetNode_assetName]").all_inner_texts()
    assert sorted(_full_name(t) for t in shown) == sorted(ASSETS), shown
    pg.keyboard.press("Escape")  # close the settings menu before the picture
    shot(pg, "01-asset-graph")

    # 2. Add a partition and launch its smoke collection from the Materialize dialog.
    pg.goto(server.base + "/assets/tournament_logs")
    pg.get_by_role("button", name="Materialize…").click()
    pg.get_by_text("Add a partition").click()
    add = pg.get_by_role("dialog").filter(has_text="Add a partition for collection_runs")
    add.get_by_role("textbox").fill(PARTITION)
    shot(pg, "02-add-partition")
    add.get_by_role("button", name="Save").click()
    launch = pg.get_by_role("dialog").filter(has_text="Launch runs to materialize tournament_logs")
    launch.get_by_text(PARTITION, exact=True).first.wait_for()
    launch.get_by_text("Config", exact=True).click()
    launch.get_by_role("button", name="Add config").click()
    editor = pg.get_by_role("dialog").filter(has_text="Config Editor")
    editor.locator(".CodeMirror").first.click()
    pg.keyboard.insert_text(LAUNCH_CONFIG)
    editor.get_by_text("No errors").wait_for()
    shot(pg, "03-launch-config")
    editor.get_by_role("button", name="Save config").click()
    launch.get_by_role("button", name="Launch 1 run").click()

    def collection_done() -> str | None:
        runs = [r for r in server.runs(PARTITION) if r["assetSelection"] == [{"path": ["tournament_logs"]}]]
        assert not any(r["status"] in ("FAILURE", "CANCELED") for r in runs), runs
        return next((r["runId"] for r in runs if r["status"] == "SUCCESS"), None)

    run_id = wait_for(f"the collection run of {PARTITION}", collection_done, 420, server)
    pg.goto(f"{server.base}/runs/{run_id}")
    pg.get_by_text("RUN_SUCCESS").first.wait_for()
    shot(pg, "04-collection-run")

    # 3. The eager automation sensor parses the new partition by itself.
    def parsed() -> bool:
        return all(
            any(m["partition"] == PARTITION for m in server.materializations(a))
            for a in ("macro_samples", "micro_samples")
        )

    wait_for("the automation sensor to parse the new partition", parsed, 300, server)
    assert all(not server.materializations(a) for a in ("l2_model", "l3_model", "l4_model")), (
        "a new partition must never retrain a model by itself"
    )

    # 4. Train L2 from its page (on demand), then read its checkpoint's lineage.
    pg.goto(server.base + "/assets/l2_model")
    pg.get_by_role("button", name="Materialize").first.click()
    wait_for("l2_model to materialize", lambda: server.materializations("l2_model"), 300, server)
    pg.goto(server.base + "/assets/l2_model")
    pg.get_by_text("checkpoint_sha256").first.wait_for()
    pg.get_by_text("source_partitions").first.wait_for()
    shot(pg, "05-checkpoint-metadata")
    pg.goto(server.base + "/assets/l2_model?view=lineage&lineageScope=upstream&lineageDepth=5")
    for upstream in ("macro_samples", "tournament_logs"):
        pg.get_by_text(upstream, exact=True).first.wait_for()
    expect(pg.get_by_text("Loading…")).to_have_count(0, timeout=60_000)
    shot(pg, "06-checkpoint-lineage")

    # 5. Turn the re-collection schedule on (it ships off), then off again.
    assert server.schedule_status("recollect_schedule") == "STOPPED"
    pg.goto(server.base + "/automation")
    toggle = _automation_switch(pg, "recollect_schedule")
    toggle.click()
    wait_for(
        "the schedule to turn on",
        lambda: server.schedule_status("recollect_schedule") == "RUNNING",
        30,
        server,
    )
    shot(pg, "07-schedule-on")
    toggle.click()
    wait_for(
        "the schedule to turn off",
        lambda: server.schedule_status("recollect_schedule") == "STOPPED",
        30,
        server,
    )


def _automation_switch(pg, name: str):
    """The on/off switch of an automation's row on the Automation page, once it is usable."""
    from playwright.sync_api import expect

    row = pg.locator("[class*=ListItem_listItem]").filter(has=pg.get_by_text(name, exact=True))
    switch = row.locator("label[class*=formatSwitch]")
    expect(switch.locator("input")).to_be_enabled(timeout=60_000)  # disabled while it loads
    return switch


def _full_name(label: str) -> str:
    """The asset a graph node stands for: zoomed out, long names show as "micro_sa…_goal_hat"."""
    if "…" not in label:
        return label
    head, tail = label.split("…", 1)
    (name,) = [a for a in ASSETS if a.startswith(head) and a.endswith(tail)]
    return name


def _expand_all_groups(pg) -> None:
    """Groups start collapsed: choose "Expand all groups" in the graph's settings menu."""
    gear = pg.locator("button:has([aria-label=settings])").filter(has_not_text=re.compile(r"\w"))
    gear.last.click()
    pg.get_by_role("menuitem", name="Expand all groups").click()
