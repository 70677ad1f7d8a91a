"""SARIF 2.1.0 for the security findings, as GitHub code scanning accepts it.

One run per check (advisories, policy, secrets), each with its own `tool.driver`, rules
and results. Every result has a location (GitHub rejects results without one): dependency
findings point at the line of the package in Cargo.lock, secret findings at their line.
Pure functions: findings in, a JSON-ready dict out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from ci.result import Finding

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
_LEVELS = {"error": "error", "warning": "warning", "note": "note", "info": "note"}


@dataclass(frozen=True)
class ToolRun:
    """The findings of one check and the tool that produced them."""

    check: str
    tool: str
    version: str | None
    information_uri: str
    findings: Sequence[Finding] = field(default_factory=tuple)
    fallback_file: str = "Cargo.lock"  # where a finding without a file is shown


def level(severity: str) -> str:
    """SARIF `level` for a finding severity."""
    return _LEVELS.get(severity, "warning")


def _rule_ids(findings: Sequence[Finding], check: str) -> list[str]:
    seen: dict[str, None] = {}
    for finding in findings:
        seen.setdefault(finding.rule or check, None)
    return list(seen)


def build_run(run: ToolRun) -> dict[str, object]:
    """One SARIF `run` object."""
    rule_ids = _rule_ids(run.findings, run.check)
    index = {rule: i for i, rule in enumerate(rule_ids)}
    rules = [
        {
            "id": rule,
            "name": rule,
            "shortDescription": {"text": f"{run.check}: {rule}"},
            "defaultConfiguration": {"level": "error"},
        }
        for rule in rule_ids
    ]
    results = []
    for finding in run.findings:
        rule = finding.rule or run.check
        text = finding.message
        region = {"startLine": max(1, finding.line or 1)}
        result: dict[str, object] = {
            "ruleId": rule,
            "ruleIndex": index[rule],
            "level": level(finding.severity),
            "message": {"text": text},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {
                            "uri": (finding.file or run.fallback_file).replace("\\", "/"),
                            "uriBaseId": "%SRCROOT%",
                        },
                        "region": region,
                    }
                }
            ],
        }
        if finding.crate:
            result["properties"] = {"crate": finding.crate}
        results.append(result)
    driver: dict[str, object] = {
        "name": run.tool,
        "informationUri": run.information_uri,
        "rules": rules,
    }
    if run.version:
        driver["version"] = run.version
    return {
        "tool": {"driver": driver},
        "automationDetails": {"id": f"security/{run.check}/"},
        "results": results,
    }


def build_log(runs: Sequence[ToolRun]) -> dict[str, object]:
    """A complete SARIF log with one run per check."""
    return {
        "$schema": SCHEMA_URI,
        "version": SARIF_VERSION,
        "runs": [build_run(run) for run in runs],
    }


def dumps(runs: Sequence[ToolRun]) -> str:
    """The SARIF log as text (stable key order, for diffs and golden files)."""
    return json.dumps(build_log(runs), indent=2, sort_keys=True) + "\n"
