"""Affected packages: which workspace packages' tests must run after a change.

A package's tests depend on its own files, on the packages it depends on inside the
workspace (transitively), on every file that belongs to no package (the root manifest,
Cargo.lock, .cargo/config.toml, a README a crate includes...), on every member's
Cargo.toml (the stages build `--workspace`, so features are unified: a member enabling
`core/fast` changes how core's tests compile), on the files its sources name outside its
folder (`include_str!`, `include_bytes!`, `include!`, `#[path]`), and on what every stage
depends on (toolchain, settings, environment). A package with a build script, or whose
sources include a path that cannot be read without compiling (a macro argument other than
a literal or `CARGO_MANIFEST_DIR`), is keyed on the whole workspace: what a build script
reads is known only after it ran. Each package gets a key from those; a package whose key
has a green record is replayed from it, the others are tested. A change to
trading-system never re-runs trading-core's tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.cache.files import blob_id
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


_INCLUDE = re.compile(r"\b(?:include_str|include_bytes|include)!\s*\(\s*(?P<arg>[^;]{0,300})")
_LITERAL = re.compile(r'^"(?P<path>[^"\\]+)"\s*,?\s*\)')
_MANIFEST_DIR = re.compile(
    r'^concat!\s*\(\s*env!\s*\(\s*"CARGO_MANIFEST_DIR"\s*\)\s*,\s*"(?P<path>[^"\\]+)"\s*\)'
)
_PATH_ATTR = re.compile(r'#\s*\[\s*path\s*=\s*"(?P<path>[^"\\]+)"\s*\]')
WHOLE = "*"  # "this package reads what cannot be named: key it on every file"


def read_outside(pkg: Package, files: Files, workspace: Path) -> dict[str, str]:
    """The files a package's sources name outside its own folder ({path: id}), or
    {WHOLE: reason} when a package reads what cannot be named before building it."""
    root = workspace.resolve()
    folder = root / pkg.folder if pkg.folder else root
    if "custom-build" in {k for ks in pkg.targets.values() for k in ks}:
        return {WHOLE: "build script"}
    if not pkg.folder:
        return {}  # the root package's files are every package's input already
    found: dict[str, str] = {}
    lead = pkg.folder + "/"
    for rel in [p for p in files.ids if p.startswith(lead) and p.endswith(".rs")]:
        try:
            text = (root / rel).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        here = (root / rel).parent
        named: list[Path] = [here / m["path"] for m in _PATH_ATTR.finditer(text)]
        for m in _INCLUDE.finditer(text):
            arg = m["arg"]
            if lit := _LITERAL.match(arg):
                named.append(here / lit["path"])
            elif lit := _MANIFEST_DIR.match(arg):
                named.append(folder / lit["path"].lstrip("/"))
            else:
                return {WHOLE: f"{rel}: {arg.split(')')[0][:60]}"}
        for path in named:
            target = path.resolve()
            if target == folder or folder in target.parents:
                continue  # its own file: already part of its key
            try:
                inside = target.relative_to(root).as_posix()
            except ValueError:
                inside = None
            if inside is not None and inside in files.ids:
                found[inside] = files.ids[inside]
            else:
                try:
                    found[str(target)] = blob_id(target.read_bytes())
                except OSError:
                    found[str(target)] = "absent"
    return found


def package_keys(
    packages: Sequence[Package], files: Files, common: str, workspace: Path
) -> dict[str, str]:
    """Each package's key (see the module docstring). `common` digests what every stage
    depends on."""
    folders = sorted(((p.folder, p.name) for p in packages), key=lambda x: -len(x[0]))
    own: dict[str, dict[str, str]] = {p.name: {} for p in packages}
    root: dict[str, str] = {}
    for path, ident in files.ids.items():
        owner = _owner(path, folders)
        (own[owner] if owner is not None else root)[path] = ident
    # feature unification: every member's manifest is an input of every package
    manifests = {
        p: i for p, i in files.ids.items() if p == "Cargo.toml" or p.endswith("/Cargo.toml")
    }
    base = digest(common, files_digest(root), files_digest(manifests))
    everything = files_digest(files.ids)
    by_name = {p.name: p for p in packages}
    keys: dict[str, str] = {}

    def key(name: str, seen: tuple[str, ...] = ()) -> str:
        if name in keys:
            return keys[name]
        if name in seen:  # a cycle cannot happen in cargo; be safe
            return digest(base, name)
        deps = [key(d, (*seen, name)) for d in by_name[name].deps]
        outside = read_outside(by_name[name], files, workspace)
        extra = everything if WHOLE in outside else files_digest(outside)
        keys[name] = digest(base, name, files_digest(own[name]), extra, *deps)[:32]
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
