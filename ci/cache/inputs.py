"""What a stage's result depends on, as digests: the key of the stage result cache.

A cache key is an action key as Bazel computes one: every input by content, the command,
the environment the tools see, the tools' own identity. A stage is replayed only when
every input is the same as when it passed, so the inputs are taken wide:

- every file of the workspace, git-ignored ones and nested repositories included, and
  what symlinks point at (ci/cache/files.py);
- folders outside the workspace that Cargo reads: path dependencies and `[patch]` paths;
- `.cargo/config.toml` of every parent folder and of $CARGO_HOME;
- the pipeline's own code, the settings the stage reads (its registry entry says which
  `[tool.pipeline]` tables) and its hard limit;
- the Rust toolchain as rustup would choose it (ci/cache/toolchain.py), the pinned tool
  versions and the installed tool binaries;
- the environment that changes builds and tests (RUSTFLAGS, CARGO_*, PROPTEST_*, TS_*,
  `[cache] env`), and which secrets the stage may see (presence, never values);
- what the stage adds itself (`cache_inputs`: the advisory database, the services...).

An input that cannot be named makes the stage not cacheable, with the reason.
Computed without starting cargo or rustc.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.cache.files import (
    Files,
    GitRun,
    digest,
    files_digest,
    run_git,
    tree_digest,
    workspace_files,
)
from ci.cache.toolchain import Toolchain
from ci.errors import ConfigError
from ci.redact import secret_name
from ci.settings import Settings

__all__ = ["Files", "Inputs", "Toolchain", "digest", "stage_inputs", "workspace_files"]

# Top-level settings that change how a run is shown or where it writes, never its
# verdict (a stage's own hard limit is keyed as the number it resolves to).
_VOLATILE_SETTINGS = {
    "output_dir",
    "cargo_target_dir",
    "parallelism",
    "timeout_factor",
    "cancel_grace",
    "install_tools",
    "progress",
    "record_runs",
}
# Tables no stage verdict depends on (where to write, how to show, the cache itself).
_VOLATILE_SECTIONS = {"budgets", "timeouts", "cache", "report", "metrics"}
_ENV_PREFIXES = ("RUST", "CARGO_", "PROPTEST_", "TS_")
_ENV_IGNORED = {
    "CARGO_HOME",
    "CARGO_TARGET_DIR",
    "CARGO_TERM_COLOR",
    "CARGO_TERM_PROGRESS_WHEN",
    "CARGO_INCREMENTAL",
    "CARGO_BUILD_JOBS",
    "RUSTUP_HOME",
}
_DEP_TABLES = ("dependencies", "dev-dependencies", "build-dependencies")


def settings_digest(
    settings: Settings, sections: Iterable[str] | None = None, stage: str = ""
) -> str:
    """The configuration that can change the verdict of `stage`: the top-level keys that
    are not volatile, the tables it reads (`sections`; None: every table that is not
    volatile) and its hard limit."""
    data = settings.data
    chosen = {
        k: v
        for k, v in data.items()
        if not isinstance(v, Mapping) and k not in _VOLATILE_SETTINGS and k != "workspace"
    }
    names = (
        [k for k, v in data.items() if isinstance(v, Mapping) and k not in _VOLATILE_SECTIONS]
        if sections is None
        else list(sections)
    )
    for name in names:
        chosen[f"[{name}]"] = data.get(name)
    try:
        limit = str(settings.timeout(stage)) if stage else ""
    except (ConfigError, KeyError):
        limit = "none"  # a stage without a budget (tests' stages): no hard limit to key
    return digest(
        json.dumps(chosen, sort_keys=True, default=str), str(settings.workspace), str(limit)
    )


def env_digest(
    env: Mapping[str, str], names: Iterable[str] = (), secrets: Iterable[str] = ()
) -> str:
    """The environment that changes builds and tests: the prefixes above and `names`;
    secrets never enter a key, only whether each of `secrets` is set."""
    wanted_names = set(names)
    wanted = {
        k: v
        for k, v in env.items()
        if (k.startswith(_ENV_PREFIXES) or k in wanted_names)
        and k not in _ENV_IGNORED
        and not secret_name(k)
    }
    present = sorted(k for k in set(secrets) if env.get(k))
    return digest(json.dumps(wanted, sort_keys=True), *present)


_PIPELINE: dict[Path, str] = {}


def pipeline_digest(root: Path) -> str:
    """The pipeline's own code and schema: a different pipeline may judge differently
    (read once per process)."""
    if root not in _PIPELINE:
        base = root / "ci"
        files = sorted(p for p in base.rglob("*") if p.suffix in (".py", ".toml") and p.is_file())
        _PIPELINE[root] = digest(*(f"{p.relative_to(root)}\0{p.read_bytes().hex()}" for p in files))
    return _PIPELINE[root]


def cargo_home(env: Mapping[str, str]) -> Path:
    """$CARGO_HOME, or ~/.cargo."""
    home = Path(env.get("HOME", "~")).expanduser()
    return Path(env.get("CARGO_HOME") or home / ".cargo")


def cargo_config_digest(ws: Path, env: Mapping[str, str]) -> str:
    """Cargo's configuration outside the workspace: `.cargo/config(.toml)` of every parent
    folder and of $CARGO_HOME (rustflags, [env] for tests, target settings). The
    workspace's own is one of its files."""
    folders = [*ws.resolve().parents, cargo_home(env)]
    parts = []
    for folder in folders:
        for rel in (".cargo/config.toml", ".cargo/config", "config.toml", "config"):
            if rel.startswith("config") and folder != folders[-1]:
                continue
            path = folder / rel
            try:
                parts.append(f"{path}\0{path.read_text(errors='replace')}")
            except OSError:
                continue
    return digest(*parts)


def _path_deps(manifest: dict[str, Any]) -> list[str]:
    """Every `path = ...` of a manifest's dependency, [workspace.dependencies], [patch]
    and [replace] tables (target-specific ones too)."""
    tables: list[Any] = [manifest.get(t) for t in _DEP_TABLES]
    for spec in (manifest.get("target") or {}).values():
        if isinstance(spec, dict):
            tables += [spec.get(t) for t in _DEP_TABLES]
    tables.append((manifest.get("workspace") or {}).get("dependencies"))
    tables += list((manifest.get("patch") or {}).values())
    tables.append(manifest.get("replace"))
    found = []
    for table in tables:
        if not isinstance(table, dict):
            continue
        for dep in table.values():
            if isinstance(dep, dict) and isinstance(dep.get("path"), str):
                found.append(dep["path"])
    return found


def outside_digest(
    ws: Path, files: Files, not_inputs: Iterable[str] = (), git: GitRun = run_git
) -> str:
    """The folders outside the workspace its manifests point at (path dependencies,
    [patch] and [replace] paths), followed transitively, each by its files' content."""
    root = ws.resolve()
    todo = [root / p for p in files.ids if p == "Cargo.toml" or p.endswith("/Cargo.toml")]
    seen: set[Path] = set()
    outside: dict[str, str] = {}
    while todo:
        manifest = todo.pop()
        try:
            data = tomllib.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
        for rel in _path_deps(data):
            folder = (manifest.parent / rel).resolve()
            if folder == root or root in folder.parents or folder in seen:
                continue
            seen.add(folder)
            outside[str(folder)] = tree_digest(folder, not_inputs, git)
            todo.append(folder / "Cargo.toml")
    return files_digest(outside)


def tools_digest(env: Mapping[str, str]) -> str:
    """The pinned cargo tools and the binaries installed for them (an upgrade outside the
    pipeline is a new tool). A version-manager shim (pyenv) is the same file for every
    version, so the copy beside this interpreter, where a PyPI wheel installs it, counts."""
    from ci.runner import which
    from ci.tools import TOOLS

    parts = []
    for tool in sorted(TOOLS.values(), key=lambda t: t.name):
        found = which(tool.name, [cargo_home(env) / "bin"])
        where = [found] if found else []
        beside = Path(sys.executable).parent / tool.name
        if found and "/shims/" in found and beside.is_file():
            where.append(str(beside))
        for exe in where or ["absent"]:
            try:
                st = os.stat(exe)
                parts.append(f"{tool.spec}\0{exe}:{st.st_size}:{st.st_mtime_ns}")
            except OSError:
                parts.append(f"{tool.spec}\0{exe}")
    return digest(*parts)


@dataclass(frozen=True)
class Inputs:
    """Named input digests; the key is their digest. Kept by name so a miss can say
    what changed."""

    parts: dict[str, str]

    @property
    def key(self) -> str:
        """The cache key: one digest of every part."""
        return digest(*(f"{k}\0{v}" for k, v in sorted(self.parts.items())))[:32]

    def changed(self, before: Mapping[str, str]) -> list[str]:
        """The names of the parts that differ from an earlier run's."""
        return sorted(
            k for k in self.parts.keys() | before.keys() if self.parts.get(k) != before.get(k)
        )


def stage_inputs(
    settings: Settings,
    stage: str,
    *,
    files: Files,
    toolchain: Toolchain,
    shared: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
    env_names: Iterable[str] = (),
    sections: Iterable[str] | None = None,
) -> Inputs:
    """The inputs of one stage. `shared`: parts computed once per run for every stage
    (cargo configuration, outside folders, tools); computed here when not given."""
    if shared is None:
        shared = shared_parts(settings, files)
    cache = settings.section("cache")
    secrets = [*env_names, *settings.top.strings("pass_env")]
    parts: dict[str, Any] = {
        "stage": stage,
        "workspace": files_digest(files.ids),
        "pipeline": pipeline_digest(settings.root),
        "settings": settings_digest(settings, sections, stage),
        "toolchain": toolchain.digest(),
        "env": env_digest(settings.env, cache.strings("env", ()), secrets),
        **shared,
    }
    for name, value in (extra or {}).items():
        parts[f"stage:{name}"] = digest(value)
    return Inputs({k: str(v) for k, v in parts.items()})


def shared_parts(settings: Settings, files: Files, git: GitRun = run_git) -> dict[str, str]:
    """The parts every stage shares, beyond the workspace's files and the toolchain."""
    not_inputs = settings.section("cache").strings("not_inputs", ())
    return {
        "cargo_config": cargo_config_digest(settings.workspace, settings.env),
        "outside": outside_digest(settings.workspace, files, not_inputs, git),
        "tools": tools_digest(settings.env),
    }
