"""Cobertura XML (what `cargo tarpaulin --out Xml` writes, and most coverage tools) read
into per-file line hits. The figures are computed from the `<line>` elements, never taken
from the `line-rate` attributes, so a report cannot claim more than it shows."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ci.coverage.errors import ReportError


def percent(covered: int, coverable: int) -> float:
    """covered / coverable in percent; 100 when there is nothing to cover."""
    return 100.0 * covered / coverable if coverable else 100.0


def show(value: float) -> str:
    """A percentage with two decimals, rounded DOWN: 79.996% shows as 79.99%, never as
    an 80.00% that failed an 80% gate."""
    return f"{math.floor(value * 100 + 1e-9) / 100:.2f}%"


@dataclass(frozen=True)
class FileCoverage:
    """One source file: its path (workspace-relative, `/`-separated) and the hit count
    of every coverable line."""

    path: str
    lines: Mapping[int, int] = field(default_factory=dict)

    @property
    def coverable(self) -> int:
        return len(self.lines)

    @property
    def covered(self) -> int:
        return sum(1 for hits in self.lines.values() if hits > 0)

    @property
    def uncovered(self) -> list[int]:
        """Line numbers no test executed, ascending."""
        return sorted(n for n, hits in self.lines.items() if hits <= 0)

    @property
    def percent(self) -> float:
        return percent(self.covered, self.coverable)


@dataclass(frozen=True)
class CoverageReport:
    """Every file of a report, by path."""

    files: Mapping[str, FileCoverage]

    @property
    def coverable(self) -> int:
        return sum(f.coverable for f in self.files.values())

    @property
    def covered(self) -> int:
        return sum(f.covered for f in self.files.values())

    @property
    def percent(self) -> float:
        return percent(self.covered, self.coverable)

    def by_uncovered(self) -> list[FileCoverage]:
        """Files with the most uncovered lines first (then lowest percentage, then path)."""
        return sorted(self.files.values(), key=lambda f: (-len(f.uncovered), f.percent, f.path))


def _int(value: str | None, what: str, source: str, missing: str) -> int:
    if value is None:
        raise ReportError(f"{source}: {missing}")
    try:
        return int(str(value).strip())
    except ValueError:
        raise ReportError(f"{source}: {what} {value!r} is not a whole number") from None


def _resolve(filename: str, sources: list[str], root: Path | None) -> str:
    """A class's file as a workspace-relative posix path when it lies in the workspace
    (tarpaulin writes paths relative to its one `<source>`, the workspace root)."""
    path = Path(filename)
    if not path.is_absolute() and sources:
        candidates = [Path(s) / filename for s in sources]
        path = next((c for c in candidates if c.exists()), candidates[0])
    if root is not None and path.is_absolute() and path.is_relative_to(root):
        path = path.relative_to(root)
    return PurePosixPath(*path.parts).as_posix() if path.parts else filename


def parse(text: str, *, root: Path | None = None, source: str = "cobertura.xml") -> CoverageReport:
    """The report in `text`. `root`: the workspace, to which paths are made relative.
    ReportError (one line naming `source`) for an empty, non-XML or non-Cobertura text,
    a line without a number, or a report without a single coverable line."""
    if not text.strip():
        raise ReportError(f"{source} is empty: the coverage run wrote no report")
    try:
        doc = ET.fromstring(text)
    except ET.ParseError as err:
        raise ReportError(f"{source} is not valid XML ({err})") from None
    if doc.tag != "coverage":
        raise ReportError(
            f"{source} is not a Cobertura report: its root element is <{doc.tag}>, not <coverage>"
        )
    sources = [
        s.text.strip() for s in doc.iterfind("./sources/source") if s.text and s.text.strip()
    ]
    hits: dict[str, dict[int, int]] = {}
    for cls in doc.iterfind("./packages/package/classes/class"):
        filename = (cls.get("filename") or "").strip()
        if not filename:
            raise ReportError(f"{source}: a <class> has no filename attribute")
        lines = hits.setdefault(_resolve(filename, sources, root), {})
        for line in cls.iterfind("./lines/line"):
            number = _int(
                line.get("number"), "line number", source, "a <line> has no number attribute"
            )
            count = _int(
                line.get("hits"),
                f"hit count of line {number}",
                source,
                f"line {number} of {filename} has no hits attribute",
            )
            # Several classes may describe one file (one per type in some tools): a
            # line is covered when any of them ran it.
            lines[number] = max(lines.get(number, 0), count)
    files = {p: FileCoverage(p, lines) for p, lines in sorted(hits.items()) if lines}
    if not files:
        raise ReportError(
            f"{source} has no coverable lines: no test ran any code of the workspace "
            "(are there tests, and did the test build succeed?)"
        )
    return CoverageReport(files)


def read(path: Path, *, root: Path | None = None) -> CoverageReport:
    """`parse` of the file at `path`; ReportError when it is missing or unreadable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise ReportError(f"{path} does not exist: no coverage report to read") from None
    except OSError as err:
        raise ReportError(f"{path} cannot be read: {err.strerror}") from None
    return parse(text, root=root, source=str(path))
