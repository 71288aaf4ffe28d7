"""The CLI's answers to a user's mistakes (issue 14, item 8): one line on stderr, exit code 2, no
traceback, and nothing registered or written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _hrlxf(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "HRLXF_DATA_DIR": str(tmp_path / "data")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "hrlxf_assets.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


CASES = {
    "unknown agent (collect)": (("collect", "p1", "--roster", "PenguinAgent,NoSuchAgent"), "unknown agent 'NoSuchAgent'"),
    "unknown agent (evaluate)": (("evaluate", "--contenders", "PenguinAgent,NoSuchAgent"), "unknown agent 'NoSuchAgent'"),
    "unknown HRL mode": (("evaluate", "--contenders", "LitaAgentHRL-fast"), "LitaAgentHRL modes are"),
    "min days above max (evaluate)": (("evaluate", "--steps-min", "100", "--steps-max", "10"), "--steps-min 100 is above --steps-max 10"),
    "min days above max (collect)": (("collect", "p1", "--steps-min", "100", "--steps-max", "10"), "--steps-min 100 is above --steps-max 10"),
    "too few days": (("collect", "p1", "--steps-min", "3"), "at least 5 days"),
    "unknown profile (collect)": (("collect", "p1", "--profile", "huge"), "invalid choice: 'huge'"),
    "unknown profile (demo)": (("demo", "--profile", "huge"), "invalid choice: 'huge'"),
    "not a checkpoint": (("lineage", "README.md"), "README.md: not a checkpoint file"),
    "bad processes": (("evaluate", "--processes", "three"), "expected MIN-MAX"),
    "select: candidate not NAME=PATH": (("select", "--candidates", "top"), "is not NAME=PATH"),
    "select: candidate file missing": (("select", "--candidates", "top=/no/such.pt"), "is not a file"),
    "select: min days above max": (("select", "--steps-min", "80", "--steps-max", "40"), "--steps-min 80 is above"),
    "train: unknown weighting": (("train", "--teacher-weighting", "best"), "invalid choice: 'best'"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_a_mistake_gives_one_line_and_exit_code_2(tmp_path: Path, case: str) -> None:
    args, expected = CASES[case]
    res = _hrlxf(tmp_path, *args)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert "weights_only" not in res.stderr


def test_a_collect_that_fails_validation_registers_no_partition(tmp_path: Path) -> None:
    import dagster as dg

    from hrlxf_assets.cli import main
    from hrlxf_assets.partitions import COLLECTION_RUNS

    home = tmp_path / "home"
    argv = [
        "collect",
        "bad-one",
        "--roster",
        "NoSuchAgent",
        "--dagster-home",
        str(home),
        "--data-dir",
        str(tmp_path / "d"),
    ]
    assert main(argv) == 2
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_dynamic_partitions(COLLECTION_RUNS) == []
    assert not (tmp_path / "d" / "tournament_logs").exists()


def test_every_flag_has_help_and_shows_its_default() -> None:
    from hrlxf_assets.cli import _parser

    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, type(parser._subparsers._group_actions[0])))
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.dest == "help":
                continue
            assert action.help, f"hrlxf {name} {action.option_strings or action.dest}: no help text"
        text = p.format_help()
        if name in ("collect", "evaluate"):
            assert "(default:" in text, name
    col = sub.choices["collect"].format_help()
    for flag in ("--roster", "--seed", "--steps-min", "--steps-max", "--competitors", "--n-worlds"):
        assert flag in col
    ev = sub.choices["evaluate"].format_help()
    for flag in ("--contenders", "--seed", "--steps-min", "--steps-max", "--n-worlds"):
        assert flag in ev


def test_collect_flags_become_the_assets_config() -> None:
    from hrlxf_assets.cli import collect_overrides
    from hrlxf_assets.collect import TournamentLogsConfig

    got = collect_overrides(
        "p", "smoke", roster=["PenguinAgent", "AS0"], seed=3, steps_min=6, steps_max=7, competitors=1
    )
    assert got == {
        "roster": ["PenguinAgent", "AS0"],
        "seed": 3,
        "n_steps_min": 6,
        "n_steps_max": 7,
        "competitors_per_world": 1,
    }
    TournamentLogsConfig(profile="smoke", **got)  # every key is a field of the asset's config


def test_demo_report_shows_results_files_and_warnings_with_their_reason(tmp_path: Path, monkeypatch) -> None:
    import dagster as dg

    from hrlxf_assets.cli import _check_specs, check_line, demo_report

    monkeypatch.setenv("HRLXF_DATA_DIR", str(tmp_path / "data"))
    specs = _check_specs()
    warn = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("l2_model"),
        check_name="beats_naive_baseline",
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={},
    )
    line = check_line(warn, specs)
    assert line.startswith("check l2_model:beats_naive_baseline WARNING (warning only): ")
    assert specs[("l2_model", "beats_naive_baseline")] in line  # the reason: what the check asks
    err = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("micro_samples"),
        check_name="micro_valid",
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"problems": dg.MetadataValue.md("NaN in recv_p")},
    )
    assert check_line(err, specs).endswith(
        "FAILED: " + specs[("micro_samples", "micro_valid")] + "; problems=NaN in recv_p"
    )
    table = "| contender | mean |\n|---|---:|\n| PenguinAgent | 1.010 |"
    produced = {
        "agent_evaluation": {
            "results": table,
            "path": str(tmp_path / "eval"),
            "worlds_ok": 2,
            "worlds_failed": 0,
            "worlds_timed_out": 0,
        },
        "l2_model": {"checkpoint_path": str(tmp_path / "l2.pt")},
    }
    text = "\n".join(demo_report(produced, [line], "smoke"))
    assert "| PenguinAgent | 1.010 |" in text and "worlds: 2 ok, 0 failed, 0 timed out" in text
    assert str(tmp_path / "eval" / "results.md") in text and str(tmp_path / "l2.pt") in text
    assert str(tmp_path / "data") in text
    assert "1 warning(s); expected at smoke scale" in text and line in text
