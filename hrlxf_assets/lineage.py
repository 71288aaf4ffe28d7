"""Lineage helpers: source partitions, content versions, code version, git commit, pictures."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import dagster as dg

from hrlxf_assets.partitions import COLLECTION_RUNS
from hrlxf_core import __version__
from hrlxf_core.io import file_sha256

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0:
            return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def source_files(
    context: dg.AssetExecutionContext, root: Path, asset: str, filename: str, chosen: list[str]
) -> dict[str, Path]:
    """Partition -> file of ``asset`` to train on: the chosen partitions, or every partition of
    collection_runs whose file exists. A chosen partition without the file is an error."""
    known = context.instance.get_dynamic_partitions(COLLECTION_RUNS)
    if chosen:
        missing = [p for p in chosen if not (root / asset / p / filename).exists()]
        if missing:
            raise dg.Failure(
                f"{asset}: partitions {missing} are not materialized (no {filename}); known: {known}"
            )
        return {p: root / asset / p / filename for p in chosen}
    files = {p: root / asset / p / filename for p in known if (root / asset / p / filename).exists()}
    if not files:
        raise dg.Failure(f"{asset}: no materialized partition to train on (known partitions: {known})")
    return files


def lineage_record(
    context: dg.AssetExecutionContext,
    sources: dict[str, Path],
    code_version: str,
    config: Any,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "asset": context.asset_key.to_user_string(),
        "run_id": context.run_id,
        "source_partitions": sorted(sources),
        "source_files": {p: str(f) for p, f in sources.items()},
        "source_sha256": {p: file_sha256(f) for p, f in sources.items()},
        "code_version": code_version,
        "hrlxf_version": __version__,
        "git_commit": git_commit(),
        "config": config.model_dump() if hasattr(config, "model_dump") else dict(config),
        **(extra or {}),
    }


def png_markdown(png: bytes, alt: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")
