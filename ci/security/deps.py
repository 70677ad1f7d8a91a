"""Parsers of cargo-audit's `--json` report and cargo-deny's `--format json` diagnostics
into findings. Pure functions over text, tested on golden samples.

Dependency findings point at the package's `name = "..."` line in Cargo.lock, the file a
reviewer changes (`cargo update -p`) and the one GitHub code scanning can annotate.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ci.parsers import json_lines
from ci.result import Finding

LOCK = "Cargo.lock"
_NAME = re.compile(r'^name\s*=\s*"(?P<v>[^"]+)"\s*$')
_VERSION = re.compile(r'^version\s*=\s*"(?P<v>[^"]+)"\s*$')


def lock_lines(lock_text: str) -> dict[tuple[str, str], int]:
    """(name, version) → 1-based line of the package's `name = ` line in Cargo.lock."""
    index: dict[tuple[str, str], int] = {}
    name: str | None = None
    name_line = 0
    for number, raw in enumerate(lock_text.splitlines(), start=1):
        line = raw.strip()
        if line == "[[package]]":
            name = None
            continue
        m = _NAME.match(line)
        if m:
            name, name_line = m["v"], number
            continue
        m = _VERSION.match(line)
        if m and name is not None:
            index.setdefault((name, m["v"]), name_line)
    return index


def _lock_line(index: dict[tuple[str, str], int], name: str, version: str) -> int | None:
    if (name, version) in index:
        return index[(name, version)]
    return next((line for (n, _), line in index.items() if n == name), None)


def parse_audit_json(text: str, lock_text: str, *, unmaintained: str = "warn") -> list[Finding]:
    """Findings from `cargo audit --json`: every vulnerability is an error; the
    informational warnings (unmaintained, unsound, yanked, notice) are errors too, as
    `--deny warnings` makes them, except unmaintained crates when `unmaintained="warn"`.

    Raises ValueError when `text` holds no cargo-audit report."""
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON report in cargo audit output")
    report = json.loads(text[start:])
    if not isinstance(report, dict) or "vulnerabilities" not in report:
        raise ValueError("not a cargo audit report")
    index = lock_lines(lock_text)
    findings: list[Finding] = []
    for vuln in (report.get("vulnerabilities") or {}).get("list") or []:
        findings.append(_audit_finding(vuln, "vulnerability", "error", index))
    for kind, entries in sorted((report.get("warnings") or {}).items()):
        severity = "warning" if kind == "unmaintained" and unmaintained == "warn" else "error"
        for entry in entries or []:
            findings.append(_audit_finding(entry, kind, severity, index))
    return findings


def _audit_finding(
    entry: dict[str, object], kind: str, severity: str, index: dict[tuple[str, str], int]
) -> Finding:
    advisory = entry.get("advisory") or {}
    package = entry.get("package") or {}
    assert isinstance(advisory, dict) and isinstance(package, dict)
    name = str(package.get("name", "?"))
    version = str(package.get("version", "?"))
    adv_id = advisory.get("id")
    title = advisory.get("title") or kind
    versions = entry.get("versions")
    patched = versions.get("patched") if isinstance(versions, dict) else None
    fix = f"; upgrade to {' or '.join(patched)}" if patched else ""
    if adv_id:
        message = f"{adv_id} {name} {version}: {title} ({kind}){fix}"
    else:  # yanked crates carry no advisory
        message = f"{name} {version} is {kind}"
    return Finding(
        check="advisories",
        message=message,
        rule=str(adv_id) if adv_id else kind,
        file=LOCK,
        line=_lock_line(index, name, version),
        severity=severity,
        crate=f"{name}@{version}",
    )


@dataclass(frozen=True)
class DenyReport:
    """Parsed cargo-deny output: findings plus its per-check error counts."""

    findings: list[Finding]
    errors: dict[str, int]


# Diagnostics about the configuration itself (no crate): shown at the deny.toml line.
_CONFIG_CODES = {"license-not-encountered", "advisory-not-detected", "unused-wrapper"}


def parse_deny_json(
    text: str, lock_text: str, *, config_file: str, unmaintained: str = "warn"
) -> DenyReport:
    """Findings from `cargo deny --format json check` (one JSON object per line on
    stderr). Notes and helps are dropped; `unmaintained` advisories are downgraded to
    warnings when `unmaintained="warn"` (cargo-deny 0.20 can only make them errors)."""
    index = lock_lines(lock_text)
    findings: list[Finding] = []
    errors: dict[str, int] = {}
    for obj in json_lines(text):
        fields = obj.get("fields") or {}
        if obj.get("type") == "summary":
            errors = {k: int((v or {}).get("errors", 0)) for k, v in fields.items()}
            continue
        if obj.get("type") != "diagnostic":
            continue
        finding = _deny_finding(fields, index, config_file, unmaintained)
        if finding is not None:
            findings.append(finding)
    return DenyReport(findings, errors)


def _deny_finding(
    fields: dict[str, object],
    index: dict[tuple[str, str], int],
    config_file: str,
    unmaintained: str,
) -> Finding | None:
    severity = str(fields.get("severity", "error"))
    if severity not in ("error", "warning"):
        return None
    code = str(fields.get("code") or "cargo-deny")
    if code == "unmaintained" and unmaintained == "warn":
        severity = "warning"
    message = str(fields.get("message", ""))
    labels = fields.get("labels") or []
    assert isinstance(labels, list)
    detail = next((str(lb.get("message")) for lb in labels[::-1] if lb.get("message")), "")
    span = next((str(lb.get("span")) for lb in labels if lb.get("span")), "")
    advisory = fields.get("advisory") or {}
    assert isinstance(advisory, dict)
    graphs = fields.get("graphs") or []
    assert isinstance(graphs, list)
    krate = (graphs[0].get("Krate") or {}) if graphs else {}
    rule = str(advisory.get("id") or code)
    if krate:
        name, version = str(krate.get("name")), str(krate.get("version"))
        what = f"{rule} " if advisory.get("id") else ""
        text = f"{what}{name} {version}: {message}"
        if detail and detail not in message:
            text += f" ({detail}: {span})" if span and span not in detail else f" ({detail})"
        return Finding(
            check="policy",
            message=" ".join(text.split()),
            rule=rule,
            file=LOCK,
            line=_lock_line(index, name, version),
            severity=severity,
            crate=f"{name}@{version}",
        )
    line = next((int(lb["line"]) for lb in labels if lb.get("line")), None)
    text = f"{message}: {span}" if span else message
    return Finding(
        check="policy",
        message=" ".join(text.split()),
        rule=rule,
        file=config_file if code in _CONFIG_CODES or line else None,
        line=line,
        severity=severity,
    )
