"""Resources: where the data lives.

The data directory is ``$HRLXF_DATA_DIR`` (default ``./data``); every asset writes under
``<data_dir>/<asset>/<partition>/`` and scml/negmas/matplotlib writes are kept inside it.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pydantic import Field


def default_data_dir() -> str:
    return os.environ.get("HRLXF_DATA_DIR", "data")


class DataStore(dg.ConfigurableResource):
    """Local file storage for hrlxf assets."""

    data_dir: str = Field(
        default_factory=default_data_dir,
        description="Root of all hrlxf data (default: $HRLXF_DATA_DIR or ./data).",
    )

    def root(self) -> Path:
        return Path(self.data_dir).resolve()

    def asset_dir(self, asset: str, partition: str | None = None) -> Path:
        base = self.root() / asset
        return base / partition if partition else base
