"""What a stage's result depends on, as digests: the key of the stage result cache.

A stage is replayed only when every input is the same as when it passed, so the inputs
are taken wide: every file of the workspace (tracked files by git's own object ids,
modified and untracked ones by their content), the pipeline's own code, the settings,
the Rust toolchain, the pinned tool versions, the environment that changes builds and
tests (RUSTFLAGS, CARGO_*, PROPTEST_*, the service's TS_* switches), and what the
stage adds itself (the advisory database's commit, the service binaries). Secrets never
enter a key.

Computed without starting cargo or rustc: git for the file list, stat for the toolchain.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.redact import secret_name
from ci.settings import Settings

# Settings that change how a run is shown or where it writes, never its verdict.
_VOLATILE_SETTINGS = {
    "output_dir",
    "cargo_target_dir",
    "parallelism",
    "budgets",
    "timeouts",
    "cancel_grace",
    "history",
    "report",
    "metrics",
    "progress",
    "cache",
    "install_tools",
}
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


def digest(*parts: str | bytes) -> str:
    """sha256 over the parts (length-prefixed, so ("ab", "c") != ("a", "bc"))."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


@dataclass(frozen=True)
class Files:
    """The workspace's files: path (relative to the workspace) -> content id."""

    ids: dict[str, str]

    def under(self, prefix: str) -> dict[str, str]:
        """The files below a folder (`""`: all)."""
        if not prefix:
            return dict(self.ids)
        lead = prefix.rstrip("/") + "/"
        return {p: i for p, i in self.ids.items() if p.startswith(lead)}


def _git(ws: Path, *args: str) -> bytes | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(ws), *args], capture_output=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _content_id(path: Path) -> str:
    try:
        if path.is_symlink():
            return "link:" + os.readlink(path)
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"


def workspace_files(ws: Path, exclude: Iterable[Path] = ()) -> Files:
    """Every file of the workspace with its content id. In a git work tree: git's blob id
    for files unchanged since the index, the sha256 of the content for modified and
    untracked (not ignored) files, "deleted" for tracked files gone from the disk.
    Outside git: the sha256 of every file (target/ and .git/ skipped)."""
    excluded = [e.resolve() for e in exclude]
    listed = _git(ws, "ls-files", "-s", "-z")
    if listed is None:
        return Files(_walk(ws, excluded))
    ids: dict[str, str] = {}
    for entry in listed.decode("utf-8", "replace").split("\0"):
        if "\t" in entry:
            meta, path = entry.split("\t", 1)
            ids[path] = "git:" + meta.split()[1]
    status = _git(ws, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".")
    if status:
        prefix = (_git(ws, "rev-parse", "--show-prefix") or b"").decode().strip()
        for entry in status.decode("utf-8", "replace").split("\0"):
            if len(entry) < 4 or entry[2] != " ":
                continue
            path = entry[3:]
            if prefix and path.startswith(prefix):
                path = path[len(prefix) :]
            full = ws / path
            ids[path] = _content_id(full) if full.exists() or full.is_symlink() else "deleted"
    for path in list(ids):
        full = (ws / path).resolve()
        if any(full == e or e in full.parents for e in excluded):
            del ids[path]
    return Files(ids)


def _walk(ws: Path, excluded: list[Path]) -> dict[str, str]:
    ids: dict[str, str] = {}
    for folder, dirs, files in os.walk(ws):
        here = Path(folder)
        dirs[:] = sorted(
            d for d in dirs if d not in ("target", ".git") and (here / d).resolve() not in excluded
        )
        for name in sorted(files):
            path = here / name
            ids[path.relative_to(ws).as_posix()] = _content_id(path)
    return ids


def files_digest(ids: Mapping[str, str]) -> str:
    """One digest of a {path: content id} listing."""
    return digest(*(f"{p}\0{i}" for p, i in sorted(ids.items())))


def settings_digest(settings: Settings) -> str:
    """The configuration that can change a verdict (not where results go, nor budgets)."""
    data = {k: v for k, v in settings.data.items() if k not in _VOLATILE_SETTINGS}
    return digest(json.dumps(data, sort_keys=True, default=str), str(settings.workspace))


def env_digest(env: Mapping[str, str], names: Iterable[str] = ()) -> str:
    """The environment that changes builds and tests; secrets never enter a key."""
    wanted = {
        k: v
        for k, v in env.items()
        if (k.startswith(_ENV_PREFIXES) and k not in _ENV_IGNORED and not secret_name(k))
        or k in set(names)
    }
    return digest(json.dumps(wanted, sort_keys=True))


def pipeline_digest(root: Path) -> str:
    """The pipeline's own code and schema: a different pipeline may judge differently."""
    base = root / "ci"
    files = sorted(p for p in base.rglob("*") if p.suffix in (".py", ".toml") and p.is_file())
    return digest(*(f"{p.relative_to(root)}\0{_content_id(p)}" for p in files))


@dataclass
class Toolchain:
    """The Rust toolchain, identified without starting rustc when rustup manages it."""

    env: Mapping[str, str]
    workspace: Path
    _cached: str | None = field(default=None, repr=False)

    def digest(self) -> str:
        if self._cached is None:
            self._cached = self._rustup() or self._probe()
        return self._cached

    def _rustup_home(self) -> Path:
        home = Path(self.env.get("HOME", "~")).expanduser()
        return Path(self.env.get("RUSTUP_HOME") or home / ".rustup")

    def _name(self) -> str | None:
        if self.env.get("RUSTUP_TOOLCHAIN"):
            return self.env["RUSTUP_TOOLCHAIN"]
        for folder in [self.workspace, *self.workspace.parents]:
            for fname in ("rust-toolchain.toml", "rust-toolchain"):
                path = folder / fname
                if path.is_file():
                    text = path.read_text(errors="replace")
                    try:
                        return str(tomllib.loads(text)["toolchain"]["channel"])
                    except (tomllib.TOMLDecodeError, KeyError, TypeError):
                        return text.strip() or None
        try:
            conf = tomllib.loads((self._rustup_home() / "settings.toml").read_text())
        except (OSError, tomllib.TOMLDecodeError):
            return None
        for folder, name in (conf.get("overrides") or {}).items():
            if self.workspace == Path(folder) or Path(folder) in self.workspace.parents:
                return str(name)
        default = conf.get("default_toolchain")
        return str(default) if default else None

    def _rustup(self) -> str | None:
        name = self._name()
        toolchains = self._rustup_home() / "toolchains"
        if not name or not toolchains.is_dir():
            return None
        matches = [toolchains / name, *sorted(toolchains.glob(f"{name}-*"))]
        for folder in matches:
            rustc, cargo = folder / "bin" / "rustc", folder / "bin" / "cargo"
            if rustc.is_file() and cargo.is_file():
                a, b = rustc.stat(), cargo.stat()
                return digest(
                    folder.name,
                    str(a.st_size),
                    str(a.st_mtime_ns),
                    str(b.st_size),
                    str(b.st_mtime_ns),
                )
        return None

    def _probe(self) -> str:
        out = []
        for cmd in (["rustc", "-vV"], ["cargo", "-V"]):
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
                out.append(proc.stdout)
            except (OSError, subprocess.TimeoutExpired):
                out.append("missing")
        return digest(*out)


@dataclass(frozen=True)
class Inputs:
    """Named input digests; the key is their digest. Kept by name so a miss can say
    what changed."""

    parts: dict[str, str]

    @property
    def key(self) -> str:
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
    extra: Mapping[str, str] | None = None,
    env_names: Iterable[str] = (),
) -> Inputs:
    """The inputs of one stage."""
    from ci.tools import TOOLS

    parts: dict[str, Any] = {
        "stage": stage,
        "workspace": files_digest(files.ids),
        "pipeline": pipeline_digest(settings.root),
        "settings": settings_digest(settings),
        "toolchain": toolchain.digest(),
        "tools": digest(*(t.spec for t in sorted(TOOLS.values(), key=lambda t: t.name))),
        "env": env_digest(settings.env, env_names),
    }
    for name, value in (extra or {}).items():
        parts[f"stage:{name}"] = digest(value)
    return Inputs({k: str(v) for k, v in parts.items()})
