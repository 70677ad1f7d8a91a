"""Per-package replay for the test stages: only the packages whose inputs changed are
tested; the others' test results are replayed from their last green record and shown as
cached. Used by `unit` and `integration` when the stage as a whole could not be replayed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.cache import StageCache
from ci.cache.inputs import digest
from ci.cache.packages import (
    Package,
    cases_from,
    cases_json,
    package_keys,
    package_of,
    suite_packages,
    workspace_packages,
)
from ci.parsers import TestCase
from ci.registry import StageSpec
from ci.result import Status


@dataclass
class PackagePlan:
    """Which packages to test and which to replay, with their keys."""

    stage: str
    keys: dict[str, str]
    to_test: list[str]
    replayed: dict[str, list[TestCase]] = field(default_factory=dict)
    replayed_at: dict[str, str] = field(default_factory=dict)
    suites: dict[str, str] = field(default_factory=dict)
    # what the keys were computed from (to compute them again after the run)
    source: tuple[StageSpec, dict[str, Any], Path] | None = None

    @property
    def replayed_cases(self) -> list[TestCase]:
        return [c for name in sorted(self.replayed) for c in self.replayed[name]]

    def describe(self) -> str:
        """`trading-core replayed (run of …); testing trading-system`."""
        parts = []
        if self.replayed:
            parts.append(
                "replayed (inputs unchanged): "
                + ", ".join(f"{n} (run of {self.replayed_at[n]})" for n in sorted(self.replayed))
            )
        parts.append("testing: " + (", ".join(self.to_test) if self.to_test else "nothing"))
        return "; ".join(parts)


def _keys(
    cache: StageCache, spec: StageSpec, meta: Mapping[str, Any], workspace: Path
) -> dict[str, str] | None:
    """Every member's key for `spec`'s stage, or None when the stage is not cacheable."""
    inputs = cache.inputs(spec)
    if inputs is None:
        return None
    common = digest(*(f"{k}\0{v}" for k, v in sorted(inputs.parts.items()) if k != "workspace"))
    return package_keys(workspace_packages(meta, workspace), cache.files, common, workspace)


def plan(
    cache: StageCache | None,
    spec: StageSpec | None,
    meta: Mapping[str, Any],
    workspace: Path,
    kinds: Sequence[str],
) -> PackagePlan | None:
    """The plan for a test stage, or None (no cache, not cacheable, nothing to split)."""
    if cache is None or spec is None:
        return None
    packages = [p for p in workspace_packages(meta, workspace) if p.has(*kinds)]
    if len(packages) < 2:
        return None  # one package: the stage cache already decides
    keys = _keys(cache, spec, meta, workspace)
    if keys is None:
        return None
    result = PackagePlan(spec.name, {p.name: keys[p.name] for p in packages}, [])
    result.suites = suite_packages(packages)
    result.source = (spec, dict(meta), workspace)
    for pkg in packages:
        entry = cache.store.lookup(f"{spec.name}@{pkg.name}", keys[pkg.name])
        if entry is None or "cases" not in entry.artifacts:
            result.to_test.append(pkg.name)
            continue
        try:
            result.replayed[pkg.name] = cases_from(entry.artifacts["cases"].read_text())
            result.replayed_at[pkg.name] = entry.at
        except (OSError, ValueError, TypeError):
            result.to_test.append(pkg.name)
    return result


def remember(
    cache: StageCache,
    pkg_plan: PackagePlan,
    cases: Sequence[TestCase],
    green: bool,
    run_id: str,
    commit: str,
    ran: frozenset[str] = frozenset(),
    say: Callable[[str], None] | None = None,
) -> int:
    """Record every tested package whose tests all passed, when the run as a whole was
    green, and only packages whose test binaries were seen to run (`ran`) or that have
    cases: a package that never ran must not look like an empty pass. Keys are computed
    again first: a package whose inputs changed during the run is not recorded (`say`
    names it). Returns how many were recorded."""
    changed: list[str] = []
    if not green:
        return 0
    by_pkg: dict[str, list[TestCase]] = {name: [] for name in pkg_plan.to_test}
    for case in cases:
        owner = package_of(case, pkg_plan.suites)
        if owner is None:
            return 0  # a case we cannot place: record nothing rather than guess
        if owner in by_pkg:
            by_pkg[owner].append(case)
    now = _keys(cache.fresh(), *pkg_plan.source) if pkg_plan.source is not None else None
    recorded = 0
    for name, own in by_pkg.items():
        if any(c.status == "failed" for c in own) or (not own and name not in ran):
            continue
        if now is None or now.get(name) != pkg_plan.keys[name]:
            changed.append(name)  # its inputs changed while it ran: never file it
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "cases.json"
            path.write_text(cases_json(own), encoding="utf-8")
            passed = sum(c.status == "passed" for c in own)
            result = {
                "stage": f"{pkg_plan.stage}@{name}",
                "status": Status.PASSED.value,
                "duration_s": 0.0,
                "budget_s": 0.0,
                "summary": f"{passed} passed",
            }
            cache.store.save(
                f"{pkg_plan.stage}@{name}",
                pkg_plan.keys[name],
                result,
                {"package": pkg_plan.keys[name]},
                {"cases": path},
                run_id=run_id,
                commit=commit,
            )
        recorded += 1
    if changed and say is not None:
        say(
            "cache: not stored for "
            + ", ".join(changed)
            + ": their inputs changed while the tests ran; the next run tests them again"
        )
    return recorded


__all__ = ["Package", "PackagePlan", "plan", "remember"]
