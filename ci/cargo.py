"""Cargo helpers shared by the stages, release and deploy: workspace metadata, the crate
that owns a binary, and nextest with JUnit."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci import tools
from ci.contract import Clock, StageContext
from ci.errors import WorkspaceError
from ci.parsers import TestCase, json_lines, junit_xml, parse_junit, parse_libtest
from ci.redact import mask_xml
from ci.result import Finding, Status, atomic_write
from ci.runner import CommandResult

NEXTEST_PROFILE = "pipeline"


def metadata(ctx: StageContext, workspace: Path | None = None) -> dict[str, Any]:
    """`cargo metadata --no-deps` of the workspace (or of `workspace`, e.g. a checkout of
    another revision); fast: no dependency resolution."""
    where = workspace or ctx.workspace
    res = ctx.runner.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1"],
        cwd=where,
        env=ctx.cargo_env(),
        capture=True,
        echo_output=False,
        log_stdout=False,
    )
    if not res.ok:
        line = next((x for x in res.stderr.splitlines() if x.startswith("error")), res.stderr)
        raise WorkspaceError(f"cargo metadata failed in {where}: {line.strip()}")
    try:
        return json.loads(res.stdout)
    except ValueError:
        raise WorkspaceError("cargo metadata printed invalid JSON") from None


def target_kinds(meta: dict[str, Any]) -> set[str]:
    """Every target kind present in the workspace members (lib, bin, test, bench, ...)."""
    members = set(meta.get("workspace_members", []))
    kinds: set[str] = set()
    for pkg in meta.get("packages", []):
        if pkg.get("id") in members:
            for target in pkg.get("targets", []):
                kinds.update(target.get("kind", []))
    return kinds


def has_lib(meta: dict[str, Any]) -> bool:
    """True when some member has a library target (doc tests need one)."""
    return bool(target_kinds(meta) & {"lib", "rlib", "proc-macro"})


@dataclass(frozen=True)
class TestRun:
    """A test run: exit code, its test cases, the JUnit report path, the output, and the
    packages whose test binaries actually ran (so a package with no tests is told apart
    from one that never ran)."""

    returncode: int
    cases: list[TestCase]
    junit: Path | None
    output: str
    ran: frozenset[str] = frozenset()


def _tool_config(ctx: StageContext) -> Path:
    store = ctx.artifacts_dir / "nextest"
    path = ctx.artifacts_dir / "nextest.toml"
    path.write_text(
        "# Written by the pipeline; layered under the workspace's own .config/nextest.toml.\n"
        f"[store]\ndir = {json.dumps(str(store))}\n\n"
        f"[profile.{NEXTEST_PROFILE}]\nfail-fast = false\n\n"
        f'[profile.{NEXTEST_PROFILE}.junit]\npath = "junit.xml"\nstore-success-output = false\n',
        encoding="utf-8",
    )
    return path


def nextest_scope(packages: Sequence[str] | None) -> list[str]:
    """The whole workspace is always built (so features resolve as in every other run and
    nothing is rebuilt); a filter expression limits which packages' tests run."""
    if packages is None:
        return ["--workspace"]
    expr = " | ".join(f"package(={name})" for name in packages)
    return ["--workspace", "-E", expr]


def nextest(
    ctx: StageContext,
    selection: Sequence[str],
    env: dict[str, str] | None = None,
    packages: Sequence[str] | None = None,
) -> TestRun:
    """Run `cargo nextest run --workspace <selection>` (or only `packages`) with a JUnit
    report copied to `<artifacts>/junit.xml`. Extra posargs go to nextest."""
    config = _tool_config(ctx)
    junit_src = ctx.artifacts_dir / "nextest" / NEXTEST_PROFILE / "junit.xml"
    junit_src.unlink(missing_ok=True)
    exe, _ = tools.resolve(
        ctx.runner, "cargo-nextest", auto_install=ctx.settings.top.flag("install_tools")
    )
    args = [exe, "nextest", "run", *nextest_scope(packages), *selection]
    args += ["--profile", NEXTEST_PROFILE]
    args += ["--tool-config-file", f"pipeline:{config}", *ctx.posargs]
    res = ctx.runner.run(args, cwd=ctx.workspace, env={**ctx.cargo_env(), **(env or {})})
    junit: Path | None = None
    cases: list[TestCase] = []
    if junit_src.is_file():
        # Parsed raw; the copy that is kept (test output is inside it) is masked.
        junit = ctx.artifacts_dir / "junit.xml"
        text = junit_src.read_text(encoding="utf-8", errors="replace")
        cases = parse_junit(text)
        atomic_write(junit, mask_xml(text, ctx.runner.redact))
        junit_src.unlink()
    ran = frozenset(c.suite.split("::", 1)[0] for c in cases)  # nextest: "<package>[::target]"
    return TestRun(res.returncode, cases, junit, res.output, ran)


@dataclass(frozen=True)
class TestBinary:
    """A test executable cargo built: its package, target and where it runs from."""

    package: str
    target: str
    path: Path
    manifest_dir: Path


def package_name(package_id: str) -> str:
    """The name in a cargo package id: `path+file:///ws/crates/core#0.1.0` (named after
    its folder), `path+file:///ws#name@0.1.0`, or the old `name 0.1.0 (source)`."""
    if "#" not in package_id:
        return package_id.split(" ", 1)[0]
    source, tail = package_id.rsplit("#", 1)
    if "@" in tail:
        return tail.split("@", 1)[0]
    return source.rstrip("/").rsplit("/", 1)[-1]


def build_tests(
    ctx: StageContext, selection: Sequence[str], env: dict[str, str] | None = None
) -> tuple[list[TestBinary], CommandResult, list[str]]:
    """`cargo test --workspace <selection> --no-run`: the test executables and the folders
    build scripts linked native libraries from, from cargo's JSON messages. The whole
    workspace is built, so features resolve as in every run."""
    args = ["cargo", "test", "--workspace", *selection, "--no-run"]
    args += ["--message-format=json-render-diagnostics"]
    res = ctx.runner.run(
        args, cwd=ctx.workspace, env={**ctx.cargo_env(), **(env or {})}, capture=True
    )
    found = []
    native: dict[str, None] = {}  # folders build scripts linked native libraries from
    for msg in json_lines(res.stdout):
        if msg.get("reason") == "build-script-executed":
            # Native libraries a build script links: the test binaries load them at run
            # time from these folders (cargo adds them to the loader path, so do we).
            for linked in msg.get("linked_paths", []):
                native.setdefault(str(linked).rpartition("=")[2], None)
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg.get("profile", {}).get("test"):
            continue
        manifest = Path(msg["manifest_path"])
        name = package_name(msg["package_id"])
        exe = Path(msg["executable"])
        found.append(TestBinary(name, msg["target"]["name"], exe, manifest.parent))
    return found, res, list(native)


def libtest(
    ctx: StageContext,
    selection: Sequence[str],
    env: dict[str, str] | None = None,
    packages: Sequence[str] | None = None,
) -> TestRun:
    """libtest: every test binary runs its tests in one process (no process per test as
    with nextest: much faster for many small tests). The workspace's test binaries are
    built once; those of `packages` (all when None) are run the way cargo runs them (in
    their package folder, with cargo's variables). Results come from libtest's stable
    output; the JUnit report is written from them. Extra posargs are test-name filters."""
    binaries, build, native = build_tests(ctx, selection, env)
    if not build.ok:
        return TestRun(build.returncode, [], None, build.output)
    wanted = [b for b in binaries if packages is None or b.package in packages]
    output: list[str] = []
    code = 0
    base = {**ctx.cargo_env(), **(env or {})}
    deps = list(dict.fromkeys(str(b.path.parent) for b in wanted))
    loader = loader_path(ctx, [*deps, *native], base) if wanted else {}
    for binary in wanted:
        run_env = {
            **base,
            **loader,
            "CARGO_MANIFEST_DIR": str(binary.manifest_dir),
            "CARGO_PKG_NAME": binary.package,
            "CARGO_CRATE_NAME": binary.target.replace("-", "_"),
        }
        res = ctx.runner.run(
            [str(binary.path), "--color", "never", *ctx.posargs],
            cwd=binary.manifest_dir,
            env=run_env,
            merge_stderr=True,
        )
        output.append(f"     Running {binary.target} ({binary.path})\n{res.stdout}")
        code = code or res.returncode
    text = "".join(output)
    cases = parse_libtest(text)
    junit = ctx.artifacts_dir / "junit.xml"
    atomic_write(junit, mask_xml(junit_xml(cases), ctx.runner.redact))
    return TestRun(code, cases, junit, build.output + text, frozenset(b.package for b in wanted))


_LOADER_VAR = {"darwin": "DYLD_FALLBACK_LIBRARY_PATH", "win32": "PATH"}


def loader_path(
    ctx: StageContext, folders: Sequence[str], env: Mapping[str, str]
) -> dict[str, str]:
    """The dynamic loader's search path as `cargo test` sets it for a test binary:
    `folders` (the deps folder, those build scripts linked from), then the toolchain's
    own library folder (a proc-macro crate's test binary links libstd dynamically)."""
    var = _LOADER_VAR.get(sys.platform, "LD_LIBRARY_PATH")
    libdir = ctx.runner.run(
        ["rustc", "--print", "target-libdir"],
        cwd=ctx.workspace,  # a rust-toolchain.toml there picks the toolchain
        env=dict(env),
        capture=True,
        echo_output=False,
    )
    paths = list(folders)
    if libdir.ok and libdir.stdout.strip():
        paths.append(libdir.stdout.strip())
    existing = env.get(var) or os.environ.get(var, "")
    return {var: os.pathsep.join([*paths, *([existing] if existing else [])])}


def run_tests_check(
    ctx: StageContext,
    clock: Clock,
    title: str,
    selection: Sequence[str],
    artifacts: dict[str, str],
    env: dict[str, str] | None = None,
    runner: str = "nextest",
    packages: Sequence[str] | None = None,
    replayed: Sequence[TestCase] = (),
) -> TestRun:
    """The `tests` check of a test stage: `runner` (nextest or libtest) over `selection`
    (`packages` only, when given; the `replayed` cases of the others are counted as
    cached), one finding per failed test, or the build error when no test could run."""
    with ctx.runner.group(f"{title} ({runner})"), clock.check("tests") as chk:
        if packages is not None and not packages:
            run = TestRun(0, [], None, "")
        elif runner == "libtest":
            lib = [s for s in selection if s != "--no-tests=pass"]
            run = libtest(ctx, lib, env=env, packages=packages)
        else:
            run = nextest(ctx, selection, env=env, packages=packages)
        if run.junit:
            artifacts["junit"] = str(run.junit)
        findings = test_findings("tests", run.cases)
        chk.summary = count([*run.cases, *replayed])
        if replayed:
            chk.summary += f" ({len(replayed)} replayed from the cache: packages unchanged)"
        if run.returncode != 0:
            chk.status = Status.FAILED
            if not findings:  # nothing ran: the build failed
                findings = [Finding("tests", first_error(run.output) or f"{runner} run failed")]
                chk.summary = findings[0].message
        clock.findings += findings
    return run


def first_error(output: str) -> str:
    """The first `error...` line of a failed cargo run, for the one-line reason."""
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith("error") and "test run failed" not in stripped:
            return stripped
    return ""


def test_findings(check: str, cases: Sequence[TestCase]) -> list[Finding]:
    """One finding per failed test, naming the crate, the test and the assertion."""
    return [
        Finding(
            check=check,
            message=f"{c.name} failed: {c.message}".rstrip(": "),
            rule="test-failure",
            crate=c.suite,
        )
        for c in cases
        if c.status == "failed"
    ]


def count(cases: Sequence[TestCase]) -> str:
    """`12 passed, 1 failed, 0 skipped`."""
    p = sum(c.status == "passed" for c in cases)
    f = sum(c.status == "failed" for c in cases)
    s = sum(c.status == "skipped" for c in cases)
    return f"{p} passed, {f} failed, {s} skipped"


@dataclass(frozen=True)
class Crate:
    """The workspace member that owns the release binary."""

    name: str
    version: str
    manifest: Path
    binary: str
    license: str | None = None
    license_file: Path | None = None
    readme: Path | None = None

    @property
    def dir(self) -> Path:
        """The crate's folder (where its Cargo.toml is)."""
        return self.manifest.parent


def _optional_path(base: Path, value: object) -> Path | None:
    return base / str(value) if value else None


def find_crate(meta: Mapping[str, Any], binary: str) -> Crate:
    """The workspace member with a `bin` target called `binary` (from `cargo metadata
    --no-deps`; empty: the workspace's only binary). WorkspaceError when none or several
    have it."""
    members = set(meta.get("workspace_members", []))
    bins = sorted(
        t["name"]
        for p in meta.get("packages", [])
        if p.get("id") in members
        for t in p.get("targets", [])
        if "bin" in t.get("kind", [])
    )
    if not binary:  # not configured: the workspace's only binary, if it has exactly one
        if len(bins) != 1:
            have = f"it has {', '.join(bins)}" if bins else "it has none"
            raise WorkspaceError(
                "which binary is the release artifact? set [tool.pipeline] binary or "
                f"CIPIPE_BINARY ({have})"
            )
        binary = bins[0]
    owners = []
    for pkg in meta.get("packages", []):
        if pkg.get("id") not in members:
            continue
        for target in pkg.get("targets", []):
            if "bin" in target.get("kind", []) and target.get("name") == binary:
                owners.append(pkg)
    if not owners:
        known = f"; binaries in the workspace: {', '.join(bins)}" if bins else ""
        raise WorkspaceError(
            f"no workspace member has a binary named {binary!r} "
            f"(set [tool.pipeline] binary or CIPIPE_BINARY){known}"
        )
    if len(owners) > 1:
        names = ", ".join(sorted(p["name"] for p in owners))
        raise WorkspaceError(f"several workspace members have a binary {binary!r}: {names}")
    pkg = owners[0]
    manifest = Path(pkg["manifest_path"])
    return Crate(
        name=pkg["name"],
        version=pkg["version"],
        manifest=manifest,
        binary=binary,
        license=pkg.get("license"),
        license_file=_optional_path(manifest.parent, pkg.get("license_file")),
        readme=_optional_path(manifest.parent, pkg.get("readme")),
    )
