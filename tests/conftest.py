"""Test-run ordering: the longest test files start first.

The default run spreads test files over two worker processes (pyproject: ``-n 2 --dist
loadfile --no-loadscope-reorder``), handing each file to the next free worker in collection
order. Left to itself, xdist hands out the files with the most tests first, so the browser test
(one test, about 3 minutes) came last and ran alone at the end; started first, it runs beside the
short files instead. Within a file the order is unchanged, and every worker collects the same
order (xdist requires it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

#: Files that take a minute or more in the default run, longest first (`pytest --durations`).
LONG_FIRST = (
    "test_ui_browser.py",
    "test_training.py",
    "test_online.py",
    "test_collect.py",
    "test_tracking.py",
    "test_ui_stop.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = Path(str(item.path)).name
        return LONG_FIRST.index(name) if name in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=rank)  # stable: the collection order within a file and among the rest is kept
