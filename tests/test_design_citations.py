"""Every citation of the design doc ("docs/design.md §n", "design.md §n") names a section that
exists in docs/design.md, so a renumbered or removed section is caught here, not by a reader."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITATION = re.compile(r"design\.md §(\d+[a-z]?(?:\.\d+)?)")
HEADING = re.compile(r"^#{2,3} (\d+[a-z]?(?:\.\d+)?)\.? ", re.M)


def _sources() -> list[Path]:
    skip = {".venv", ".git", "data", "logs", ".dagster_home", "node_modules"}
    return [
        p
        for p in ROOT.rglob("*")
        if p.suffix in {".py", ".md"} and p.is_file() and not (set(p.relative_to(ROOT).parts) & skip)
    ]


def test_every_design_citation_names_an_existing_section() -> None:
    sections = set(HEADING.findall((ROOT / "docs" / "design.md").read_text()))
    assert {"2", "4", "5", "6", "6.1", "6.2", "6.3", "7", "8", "9"} <= sections
    cited: dict[str, list[str]] = {}
    for path in _sources():
        for n in CITATION.findall(path.read_text(errors="replace")):
            cited.setdefault(n, []).append(str(path.relative_to(ROOT)))
    assert len(cited) >= 8  # the code does cite the doc
    missing = {n: where for n, where in cited.items() if n not in sections}
    assert not missing, f"citations of sections docs/design.md does not have: {missing}"


def test_no_citation_of_the_old_design_file_is_left() -> None:
    """The repository never had a DESIGN file: "DESIGN §n" would point nowhere."""
    here = Path(__file__).resolve()
    old = [
        str(p.relative_to(ROOT))
        for p in _sources()
        if p != here and "DESIGN §" in p.read_text(errors="replace")
    ]
    assert old == []
