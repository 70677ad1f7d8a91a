"""Diff coverage: which lines a change added or modified (from `git diff --unified=0`),
and which of those no test executes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ci.coverage.cobertura import CoverageReport, percent

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(?P<start>\d+)(?:,(?P<count>\d+))? @@")
_ESCAPES = {"a": "\a", "b": "\b", "t": "\t", "n": "\n", "v": "\v", "f": "\f", "r": "\r"}


def _unquote(path: str) -> str:
    """A path as git prints it: C-quoted ("a\\tb", octal bytes) when unusual."""
    if not (len(path) >= 2 and path.startswith('"') and path.endswith('"')):
        return path
    body, out, i = path[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "01234567" and re.match(r"[0-7]{3}", body[i + 1 : i + 4]):
                out.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
            out += _ESCAPES.get(nxt, nxt).encode()
            i += 2
            continue
        out += ch.encode()
        i += 1
    return out.decode("utf-8", errors="replace")


def changed_lines(diff: str) -> dict[str, set[int]]:
    """{path: line numbers in the new version} added or changed by a unified diff
    (`git diff --unified=0`; paths as in its `+++ b/<path>` lines). Deleted files and
    pure deletions contribute nothing; binary files are skipped."""
    result: dict[str, set[int]] = {}
    current: set[int] | None = None
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            current = None
        elif line.startswith("+++ "):
            target = _unquote(line[4:].rstrip("\t"))
            if target == "/dev/null":
                current = None
            else:
                current = result.setdefault(
                    target[2:] if target.startswith("b/") else target, set()
                )
        elif current is not None and line.startswith("@@"):
            match = _HUNK.match(line)
            if match:
                start = int(match["start"])
                count = int(match["count"]) if match["count"] is not None else 1
                current.update(range(start, start + count))
    return {path: lines for path, lines in result.items() if lines}


@dataclass(frozen=True)
class DiffCoverage:
    """The changed lines that are coverable, split into covered and not covered."""

    changed: int  # changed lines in all files, coverable or not
    covered: Mapping[str, tuple[int, ...]]
    uncovered: Mapping[str, tuple[int, ...]]

    @property
    def coverable(self) -> int:
        return self.covered_count + sum(len(v) for v in self.uncovered.values())

    @property
    def covered_count(self) -> int:
        return sum(len(v) for v in self.covered.values())

    @property
    def percent(self) -> float | None:
        """Covered share of the changed coverable lines; None when no changed line is
        coverable (comments, tests, docs: nothing to measure)."""
        return percent(self.covered_count, self.coverable) if self.coverable else None


def diff_coverage(report: CoverageReport, changes: Mapping[str, set[int]]) -> DiffCoverage:
    """The coverage of the `changes` ({path: lines}) according to `report`. A changed line
    the report does not list is not coverable (blank, comment, excluded file)."""
    covered: dict[str, tuple[int, ...]] = {}
    uncovered: dict[str, tuple[int, ...]] = {}
    for path in sorted(changes):
        file = report.files.get(path)
        if file is None:
            continue
        lines = sorted(n for n in changes[path] if n in file.lines)
        hit = tuple(n for n in lines if file.lines[n] > 0)
        missed = tuple(n for n in lines if file.lines[n] <= 0)
        if hit:
            covered[path] = hit
        if missed:
            uncovered[path] = missed
    return DiffCoverage(sum(len(v) for v in changes.values()), covered, uncovered)


def ranges(lines: list[int] | tuple[int, ...]) -> str:
    """`3-5, 9, 12-13`: line numbers folded into ranges."""
    out: list[str] = []
    ordered = sorted(set(lines))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(out)
