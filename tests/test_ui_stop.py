"""``hrlxf ui`` stops cleanly (issue 14, item 10): a SIGTERM or SIGINT to the wrapper stops
``dagster dev`` and every process it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(pred, what: str, limit_s: float = 240.0):
    """Poll ``pred`` until it returns something truthy (the limit only guards against a hang)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"gave up waiting for {what}")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize(
    "sig",
    [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)],  # SIGINT: the same path, long
    ids=["SIGTERM", "SIGINT"],
)
def test_ui_stops_with_all_its_children(tmp_path: Path, sig: signal.Signals) -> None:
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "HRLXF_DATA_DIR": str(tmp_path / "data")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "hrlxf_assets.cli", "ui", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: _listening(port), f"the UI on port {port}")
        me = psutil.Process(wrapper.pid)
        # dagster dev, its webserver, its daemon (and code servers): all started by now
        children = _wait_for(
            lambda: (c := me.children(recursive=True)) and len(c) >= 3 and c, "dagster's processes"
        )
        wrapper.send_signal(sig)
        rc = wrapper.wait(timeout=120)
        assert rc == 128 + int(sig)

        def gone() -> bool:
            alive = []
            for c in children:
                try:
                    if c.status() != psutil.STATUS_ZOMBIE:
                        alive.append(c)
                except psutil.NoSuchProcess:
                    pass
            return not alive

        _wait_for(gone, "dagster's processes to exit", limit_s=60)
        assert not _listening(port)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.wait()
