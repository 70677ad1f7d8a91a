"""Affected packages: which workspace packages' tests must run after a change.

A package's tests depend on its own files, on the packages it depends on inside the
workspace (transitively), on every file that belongs to no package (the root manifest,
Cargo.lock, .cargo/config.toml, a README a crate includes...), and on what every stage
depends on (toolchain, settings, environment). Each package gets a key from those; a
package whose key has a green record is replayed from it, the others are tested. A
change to trading-system never re-runs trading-core's tests.

Known limit: a file of another package read without a dependency on it (include_str!
across packages) is not an input; depend on the package, or keep such files at the root.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.cache.inputs import Files, digest, files_digest
from ci.parsers import TestCase


@dataclass(frozen=True)
class Package:
    """A workspace member: its folder (relative to the workspace), its workspace
    dependencies, and its targets' names by kind."""

    name: str
    folder: str
    deps: tuple[str, ...]
    targets: dict[str, tuple[str, ...]]  # target name -> kinds

    def has(self, *kinds: str) -> bool:
        return any(set(k) & set(kinds) for k in self.targets.values())


def workspace_packages(meta: Mapping[str, Any], workspace: Path) -> list[Package]:
    """The members of the workspace from `cargo metadata --no-deps`."""
    members = set(meta.get("workspace_members", []))
    pkgs = [p for p in meta.get("packages", []) if p.get("id") in members]
    names = {p["name"] for p in pkgs}
    out = []
    for p in pkgs:
        folder = Path(p["manifest_path"]).parent.resolve()
        try:
            rel = folder.relative_to(workspace.resolve()).as_posix()
        except ValueError:
            rel = folder.as_posix()
        deps = sorted(
            {d["name"] for d in p.get("dependencies", []) if d.get("path") and d["name"] in names}
        )
        targets = {t["name"]: tuple(t.get("kind", [])) for t in p.get("targets", [])}
        out.append(Package(p["name"], "" if rel == "." else rel, tuple(deps), targets))
    return out


def _owner(path: str, folders: Sequence[tuple[str, str]]) -> str | None:
    """The package whose folder holds `path` (the deepest one), None for root files."""
    for folder, name in folders:  # deepest first
        if folder == "" or path == folder or path.startswith(folder + "/"):
            return name if folder else None
    return None


def package_keys(packages: Sequence[Package], files: Files, common: str) -> dict[str, str]:
    """Each package's key (see the module docstring). `common` digests what every stage
    depends on."""
    folders = sorted(((p.folder, p.name) for p in packages), key=lambda x: -len(x[0]))
    own: dict[str, dict[str, str]] = {p.name: {} for p in packages}
    root: dict[str, str] = {}
    for path, ident in files.ids.items():
        owner = _owner(path, folders)
        (own[owner] if owner is not None else root)[path] = ident
    base = digest(common, files_digest(root))
    by_name = {p.name: p for p in packages}
    keys: dict[str, str] = {}

    def key(name: str, seen: tuple[str, ...] = ()) -> str:
        if name in keys:
            return keys[name]
        if name in seen:  # a cycle cannot happen in cargo; be safe
            return digest(base, name)
        deps = [key(d, (*seen, name)) for d in by_name[name].deps]
        keys[name] = digest(base, name, files_digest(own[name]), *deps)[:32]
        return keys[name]

    for p in packages:
        key(p.name)
    return keys


def suite_packages(packages: Sequence[Package]) -> dict[str, str]:
    """Test suite names -> package, for the names both runners use: a libtest binary is
    named after its target (`trading_core`, `api`), a nextest one `<package>` or
    `<package>::<target>`. A target name two packages share maps to neither."""
    seen: dict[str, set[str]] = {}
    for p in packages:
        for target in p.targets:
            for name in {target, target.replace("-", "_")}:
                seen.setdefault(name, set()).add(p.name)
    return {name: next(iter(owners)) for name, owners in seen.items() if len(owners) == 1}


def package_of(case: TestCase, suites: Mapping[str, str]) -> str | None:
    """The package a test case belongs to (None when it cannot be told)."""
    suite = case.suite.removeprefix("doc:")  # doc tests: "doc:<crate>"
    head = suite.split("::", 1)[0]
    if "::" in suite:
        return head  # nextest: "<package>::<target>"
    return suites.get(suite) or suites.get(head)


def cases_json(cases: Sequence[TestCase]) -> str:
    """Test cases as JSON (what a per-package cache entry keeps)."""
    return json.dumps([c.__dict__ for c in cases])


def cases_from(text: str) -> list[TestCase]:
    """The test cases a per-package cache entry kept."""
    return [TestCase(**c) for c in json.loads(text)]
