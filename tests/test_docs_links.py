"""The README and docs/: every relative link resolves, and the README stays a newcomer's page.

The README holds what deepspark is, the Quick start, one picture of the pipeline and a table of the
files in docs/; the reference lives in docs/ (one file per topic), MODELS.md and BENCHMARKS.md.
Moving a section between them breaks links silently on GitHub, so every relative `[text](target)`
link (outside fenced code and inline code) must name a file that exists and, with `#anchor`, a
heading of that file whose GitHub slug is the anchor. Pure Python: no Spark, well under a second.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250

# [text](target) or [text](target "title"); the text may wrap onto the next line. Images too.
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)[^`\n]+?\1")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CLOSING_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*$")  # no info string
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # http:, https:, mailto:, ...


def documents() -> list[Path]:
    """The Markdown files whose links are checked."""
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "MODELS.md",
        ROOT / "BENCHMARKS.md",
    ]


def prose(text: str) -> list[str]:
    """The file's lines with fenced code blocks blanked out (so line numbers still match)."""
    lines, fence = [], None
    for line in text.splitlines():
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
            lines.append("")
        elif fence is not None:
            closing = CLOSING_FENCE.match(line)
            if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= len(fence):
                fence = None
            lines.append("")
        else:
            lines.append(line)
    return lines


def links(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, target) of every Markdown link outside code."""
    lines = [INLINE_CODE.sub("", line) for line in prose(path.read_text(encoding="utf-8"))]
    text = "\n".join(lines)
    for match in LINK.finditer(text):
        yield text.count("\n", 0, match.start(1)) + 1, match.group(1)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (before the -1, -2 of duplicates)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"[^\w\- ]", "", text.lower())  # \w: letters, digits and underscore
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub gives the file's headings; a repeated heading gets -1, -2, ..."""
    seen: Counter[str] = Counter()
    found = set()
    for line in prose(path.read_text(encoding="utf-8")):
        heading = HEADING.match(line)
        if not heading:
            continue
        base = slug(heading.group(1))
        found.add(f"{base}-{seen[base]}" if seen[base] else base)
        seen[base] += 1
    return found


def broken_links(paths: list[Path], root: Path = ROOT) -> list[str]:
    """One "file:line: target (why)" per relative link that does not resolve."""
    broken = []
    for path in paths:
        for line, target in links(path):
            if SCHEME.match(target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / unquote(file_part)).resolve() if file_part else path
            where = f"{path.relative_to(root)}:{line}: {target}"
            if not dest.exists():
                broken.append(f"{where} (no such file: {os.path.relpath(dest, root)})")
            elif anchor and dest.suffix == ".md" and unquote(anchor) not in anchors(dest):
                broken.append(f"{where} (no heading of {dest.name} has the anchor #{anchor})")
            elif anchor and dest.is_dir():
                broken.append(f"{where} (an anchor into a directory)")
    return broken


def test_every_relative_link_in_the_readme_and_docs_resolves():
    broken = broken_links(documents())
    if broken:
        pytest.fail(f"{len(broken)} broken Markdown link(s):\n" + "\n".join(broken), pytrace=False)


def test_the_readme_is_at_most_250_lines():
    lines = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines, over {README_MAX_LINES}: it holds what deepspark is, the "
        "Quick start, the pipeline picture and the table of docs/; move the rest into docs/"
    )


def test_the_readme_links_every_file_in_docs():
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for _, target in links(ROOT / "README.md")
        if not SCHEME.match(target)
    }
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"README.md's table of docs/ does not link: {', '.join(missing)}"


def test_github_slugs():
    assert slug("Data validation (issue 14)") == "data-validation-issue-14"
    assert slug("A torch `IterableDataset`: `deepspark.data.FeatureDataset`") == (
        "a-torch-iterabledataset-deepsparkdatafeaturedataset"
    )
    assert slug("Before and after (÷ the floor at the same thread count)") == (
        "before-and-after--the-floor-at-the-same-thread-count"
    )
    assert slug("`<top level>`") == "top-level"
    assert slug("pipeline.train_loader") == "pipelinetrain_loader"


def test_a_missing_file_a_missing_anchor_and_a_repeated_heading_are_told_apart(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "A.md").write_text("# Setup\n\n## Notes\n\n## Notes\n", encoding="utf-8")
    page = tmp_path / "README.md"
    page.write_text(
        "# Title\n"
        "[ok](docs/A.md#notes-1) [ok](#title) [web](https://example.com/x#y) `[code](nowhere.md)`\n"
        "[gone](docs/B.md)\n"
        "```\n[in a fence](nowhere.md)\n```\n"
        "[wrong\nanchor](docs/A.md#notes-2)\n",
        encoding="utf-8",
    )
    assert broken_links([page], root=tmp_path) == [
        "README.md:3: docs/B.md (no such file: docs/B.md)",
        "README.md:8: docs/A.md#notes-2 (no heading of A.md has the anchor #notes-2)",
    ]
