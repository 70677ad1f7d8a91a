"""The cargo tools the pipeline installs itself, at pinned versions, in one table.

`invoke tools.install` and `.ci/setup` call `install`; stages call `resolve` for the tools
they need, which always yields the pinned version (installing it when needed), so a fresh
machine works without a manual step and a gate never runs with an unpinned tool.
Installing follows plan → show → act → verify: a tool already at its pinned version is
left alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.errors import ConfigError, ToolMissing
from ci.runner import Runner, which


@dataclass(frozen=True)
class CargoTool:
    """A binary installed with `cargo install --locked <crate>@<version>`."""

    name: str  # the executable, e.g. cargo-audit
    crate: str
    version: str
    purpose: str
    stages: tuple[str, ...] = ()  # the stages (or flows) that use it

    @property
    def spec(self) -> str:
        """`crate@version`, as `cargo install` takes it."""
        return f"{self.crate}@{self.version}"


# Bump a version here and nowhere else.
TOOLS: dict[str, CargoTool] = {
    tool.name: tool
    for tool in (
        CargoTool(
            "cargo-nextest",
            "cargo-nextest",
            "0.9.143",
            "test runner (integration; unit with runner = nextest)",
            ("integration",),
        ),
        CargoTool(
            "cargo-audit", "cargo-audit", "0.22.2", "RustSec advisories (security)", ("security",)
        ),
        CargoTool(
            "cargo-deny", "cargo-deny", "0.20.2", "dependency policy (security)", ("security",)
        ),
        CargoTool(
            "cargo-auditable",
            "cargo-auditable",
            "0.7.7",
            "dependency list in releases",
            ("release",),
        ),
        CargoTool("cargo-fuzz", "cargo-fuzz", "0.13.2", "coverage-guided fuzzing", ("fuzz",)),
        CargoTool("cargo-tarpaulin", "cargo-tarpaulin", "0.37.5", "line coverage", ("coverage",)),
        # The runner must equal the gungraun library version the benches use.
        CargoTool(
            "gungraun-runner", "gungraun-runner", "0.20.0", "instruction-count benches", ("bench",)
        ),
    )
}

_VERSION = re.compile(r"\b(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)")


def for_stages(stages: Iterable[str]) -> list[str]:
    """The tools the given stages (or flows: release) use, so a CI job that runs one
    stage installs only what it needs (compiling a tool takes minutes)."""
    wanted = set(stages)
    return [t.name for t in TOOLS.values() if wanted & set(t.stages)]


def get(name: str) -> CargoTool:
    """The table entry for `name`; ConfigError listing the known tools otherwise."""
    try:
        return TOOLS[name]
    except KeyError:
        known = ", ".join(sorted(TOOLS))
        raise ConfigError(f"unknown tool {name!r}; pinned tools: {known}") from None


def parse_version(text: str) -> str | None:
    """The first `X.Y.Z` in a `--version` line (cargo-audit prints `cargo-audit-audit 0.22.2`)."""
    match = _VERSION.search(text)
    return match.group(1) if match else None


def version(tool: str) -> str | None:
    """The installed version of `tool`, or None when it is not installed.

    A quiet probe (`<tool> --version`), not a pipeline step, so it bypasses the echoing
    runner; a tool that exists but cannot report a version reads as not installed."""
    exe = which(tool)
    return _version_of(exe) if exe else None


def missing(names: Iterable[str] | None = None, *, exact: bool = True) -> list[str]:
    """Tools of `names` (default: all) that are absent or, with `exact`, not at the pinned
    version."""
    result = []
    for name in names if names is not None else TOOLS:
        tool = get(name)
        found = version(tool.name)
        if found is None or (exact and found != tool.version):
            result.append(tool.name)
    return result


def plan(names: Iterable[str] | None = None) -> list[tuple[CargoTool, str | None]]:
    """(tool, installed version) for every tool of `names` that needs installing."""
    steps = []
    for name in names if names is not None else TOOLS:
        tool = get(name)
        found = version(tool.name)
        if found != tool.version:
            steps.append((tool, found))
    return steps


def install(runner: Runner, names: Sequence[str] | None = None, dry_run: bool = False) -> list[str]:
    """Install the tools of `names` (default: all) that are not at their pinned version.

    Returns the names acted on (or, with `dry_run`, that would be). Raises ToolMissing with
    the command to run by hand when an install fails or leaves the wrong version."""
    steps = plan(names)
    if not steps:
        runner.say("tools: all at their pinned versions")
        return []
    for tool, found in steps:
        have = f"installed {found}" if found else "not installed"
        runner.say(f"tools: {tool.name} {have}, pinned {tool.version}")
    if dry_run:
        runner.say("tools: dry run, nothing installed")
        return [tool.name for tool, _ in steps]
    for tool, _ in steps:
        cmd = ["cargo", "install", "--locked", tool.spec]
        res = runner.run(cmd)
        if not res.ok:
            raise ToolMissing(
                tool.name, f"`{' '.join(cmd)}` failed (exit {res.returncode}); run it by hand"
            )
        found = version(tool.name)
        if found != tool.version:
            raise ToolMissing(
                tool.name,
                f"installed but reports version {found or 'none'} instead of {tool.version}; "
                "check that ~/.cargo/bin comes first on PATH",
            )
    return [tool.name for tool, _ in steps]


def private_root(tool: CargoTool, env: Mapping[str, str] | None = None) -> Path:
    """Where a pinned version is installed when another version of the tool is already on
    PATH: `$CARGO_HOME/pipeline-tools/<crate>-<version>` (the user's own tool stays)."""
    env = os.environ if env is None else env
    home = Path(env.get("CARGO_HOME") or Path(env.get("HOME", "~")).expanduser() / ".cargo")
    return home / "pipeline-tools" / f"{tool.crate}-{tool.version}"


def _version_of(exe: str) -> str | None:
    try:
        proc = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = parse_version(proc.stdout + proc.stderr) if proc.returncode == 0 else None
    # Some cargo subcommands cannot print their own version (`cargo-auditable --version`
    # refuses to run outside cargo): then ask the install record of the exe's cargo root.
    return found or recorded_version(Path(exe))


def recorded_version(exe: Path) -> str | None:
    """The version cargo recorded when it installed `exe` (`<root>/.crates2.json` for
    `<root>/bin/<exe>`), or None."""
    try:
        data = json.loads((exe.parent.parent / ".crates2.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for key, install in data.get("installs", {}).items():
        if isinstance(install, dict) and exe.name in install.get("bins", []):
            parts = key.split(" ")
            return parts[1] if len(parts) > 1 else None
    return None


def resolve(runner: Runner, name: str, *, auto_install: bool = True) -> tuple[str, str]:
    """(path, version) of tool `name` AT ITS PINNED VERSION: the one on PATH when it
    matches the pin, else the pipeline's private install of the pin (installed now when
    `auto_install`; the version on PATH is left alone). A tool at another version is never
    used: a gate must not depend on whatever happens to be installed."""
    tool = get(name)
    found = which(tool.name)
    if found and _version_of(found) == tool.version:
        return found, tool.version
    root = private_root(tool, runner.base_env)
    private = root / "bin" / tool.name
    if private.is_file() and _version_of(str(private)) == tool.version:
        return str(private), tool.version
    have = _version_of(found) if found else None
    if not auto_install:
        state = f"version {have} is installed" if have else "it is not installed"
        raise ToolMissing(
            tool.name,
            f"the pipeline pins {tool.version} but {state}; run `invoke tools.install` "
            f"(cargo install --locked {tool.spec})",
        )
    cmd = ["cargo", "install", "--locked", tool.spec]
    if have:  # keep the user's own version on PATH; install the pin beside it
        cmd += ["--root", str(root)]
    runner.say(
        f"tools: {tool.name} {'at ' + have if have else 'missing'}; installing the pinned "
        f"{tool.version} (a few minutes the first time)"
    )
    res = runner.run(cmd)
    if not res.ok:
        raise ToolMissing(
            tool.name, f"`{' '.join(cmd)}` failed (exit {res.returncode}); run it by hand"
        )
    path = str(private) if have else (which(tool.name) or "")
    if not path or _version_of(path) != tool.version:
        raise ToolMissing(
            tool.name,
            f"installed but {path or tool.name} does not report version {tool.version}; "
            "check that ~/.cargo/bin is on PATH",
        )
    return path, tool.version
