"""Every design note the code cites is in the project: the ``docs/`` file and its section."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["src", "migrations", "tests", "bench"]
# docs/<name>.md, optionally #<section> (GitHub's anchor of a heading); not inside a URL
CITATION = re.compile(r"(?<![\w/.-])docs/([\w-]+\.md)(?:#([\w-]+))?")


def _citations() -> list[tuple[str, str, str]]:
    found = set()
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            for match in CITATION.finditer(path.read_text(encoding="utf-8")):
                where = str(path.relative_to(ROOT))
                found.add((where, match.group(1), match.group(2) or ""))
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for match in CITATION.finditer(path.read_text(encoding="utf-8")):
            found.add((path.name, match.group(1), match.group(2) or ""))
    return sorted(found)


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces → -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(document: Path) -> set[str]:
    text = document.read_text(encoding="utf-8")
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)  # no headings in code blocks
    return {anchor(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M)}


CITATIONS = _citations()


def test_the_code_cites_the_project_docs() -> None:
    cited = {name for _, name, _ in CITATIONS}
    assert {"architecture.md", "sync.md"} <= cited
    outside = "DESIGN" + ".md"  # the planning notes outside the project (spelled apart: not here)
    for top in SOURCES:
        for path in ROOT.joinpath(top).rglob("*.py"):
            assert outside not in path.read_text(encoding="utf-8"), f"{path} cites {outside}"


@pytest.mark.parametrize(
    ("where", "name", "section"), CITATIONS, ids=[f"{w}:{n}#{s}" for w, n, s in CITATIONS]
)
def test_cited_doc_and_section_exist(where: str, name: str, section: str) -> None:
    document = ROOT / "docs" / name
    assert document.is_file(), f"{where} cites docs/{name}, which does not exist"
    if section:
        assert section in anchors(document), f"{where} cites docs/{name}#{section}: no such heading"


def test_anchor_follows_github() -> None:
    assert anchor("Schema, first revision") == "schema-first-revision"
    assert anchor("Safety: no mass cancellation") == "safety-no-mass-cancellation"
    assert (
        anchor("Output targets, signals, pipes (`fsutil.py`)")
        == "output-targets-signals-pipes-fsutilpy"
    )
