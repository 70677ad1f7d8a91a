"""GitHub Actions annotations for findings: `::error file=…,line=…,title=…::message`, so
a clippy diagnostic or a failing test shows on the pull request's changed line.

Paths in findings are relative to the Cargo workspace (or absolute); GitHub wants them
relative to the repository root (`GITHUB_WORKSPACE`), so they are re-based, and a file
outside the repository gets an annotation without a location. A failing test's finding
names its crate, not a file: its location is read from the panic location the message
carries (`... (at src/book.rs:42:9)`). Values are escaped by the workflow-command rules:
`%`, CR and LF in the message; also `:` and `,` in properties.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from ci.result import Finding

# GitHub shows at most 10 error annotations per step and 50 per job: more is noise.
MAX_ANNOTATIONS = 50
_AT = re.compile(r"\(at (?P<file>[^\s():]+):(?P<line>\d+)(?::\d+)?\)")


def escape_data(text: str) -> str:
    """A workflow command's message: `%`, CR and LF percent-encoded."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: as `escape_data`, plus `:` and `,`."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def location(finding: Finding) -> tuple[str | None, int | None]:
    """(file, line) of a finding; for a failing test, from its panic location."""
    if finding.file:
        return finding.file, finding.line
    m = _AT.search(finding.message)
    if m:
        return m["file"], int(m["line"])
    return None, None


def repo_path(file: str, workspace: Path, repo_root: Path) -> str | None:
    """`file` (workspace-relative or absolute) relative to the repository root, with
    forward slashes; None when it lies outside the repository (a registry crate)."""
    path = Path(file)
    full = path if path.is_absolute() else workspace / path
    try:
        rel = full.resolve().relative_to(repo_root.resolve())
    except (ValueError, OSError):
        return None
    return rel.as_posix()


def command(finding: Finding, stage: str, workspace: Path, repo_root: Path) -> str:
    """The `::error` (or `::warning`) workflow command of one finding."""
    level = "error" if finding.severity == "error" else "warning"
    props: list[str] = []
    file, line = location(finding)
    where = repo_path(file, workspace, repo_root) if file else None
    if where:
        props.append(f"file={escape_property(where)}")
        if line:
            props.append(f"line={line}")
    title = f"{stage}: {finding.check}" + (f" ({finding.rule})" if finding.rule else "")
    props.append(f"title={escape_property(title)}")
    message = finding.message
    if not where and finding.crate:
        message = f"{finding.crate}: {message}"
    return f"::{level} {','.join(props)}::{escape_data(message)}"


def commands(
    findings: Iterable[Finding], stage: str, workspace: Path, repo_root: Path
) -> list[str]:
    """Annotations for `findings`, errors first, at most MAX_ANNOTATIONS."""
    ordered = sorted(findings, key=lambda f: f.severity != "error")
    return [command(f, stage, workspace, repo_root) for f in ordered[:MAX_ANNOTATIONS]]
