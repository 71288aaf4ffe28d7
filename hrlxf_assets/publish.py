"""Stage, check, then publish: what downstream reads has passed its blocking checks.

Why: every reader (the next asset, training's ``source_files``, evaluation, the agent's
``checkpoints_dir``) takes the canonical file or ``current.json`` it finds. Writing that file
before the checks run lets a rejected build leak downstream, so an output becomes canonical
only after every blocking check passed; a rejected one is kept beside it under a name no
reader looks for, and the previous valid file stays as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from hrlxf_core.io import write_parquet_atomic


def blocking_failures(checks: list[dg.AssetCheckResult]) -> list[str]:
    """Names of the failed checks of ERROR severity (the blocking ones of this project)."""
    return [str(c.check_name) for c in checks if not c.passed and c.severity != dg.AssetCheckSeverity.WARN]


def rejected_path(path: Path) -> Path:
    """``macro.parquet`` -> ``macro.rejected.parquet``: where a build that failed its checks goes."""
    return path.with_name(f"{path.stem}.rejected{path.suffix}")


def publish_frame(df: pl.DataFrame, path: Path, problems: list[str]) -> Path:
    """Write ``df`` to ``path`` when ``problems`` is empty (and drop an older rejected file),
    else to ``rejected_path(path)``, leaving ``path`` untouched. Returns the file written."""
    if problems:
        out = rejected_path(path)
        write_parquet_atomic(df, out)
        return out
    write_parquet_atomic(df, path)
    rejected_path(path).unlink(missing_ok=True)
    return path


def publication_metadata(failed: list[str], kept_at: Path | str) -> dict[str, Any]:
    """What an asset's metadata says about publication: published, or not and why."""
    if not failed:
        return {"published": True}
    return {
        "published": False,
        "not_published_reason": f"blocking check(s) failed: {', '.join(failed)}; "
        f"kept for inspection at {kept_at}",
    }


def problems_check(asset: str, name: str, problems: list[str]) -> dg.AssetCheckResult:
    """A blocking (ERROR) check result listing each problem, or 'none'."""
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=asset,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none")},
    )
