"""Which Rust toolchain the stages' cargo runs, identified without starting rustc when
rustup manages it: the name chosen as rustup chooses it, then that toolchain's files.

rustup's order (https://rust-lang.github.io/rustup/overrides.html): RUSTUP_TOOLCHAIN, then
walking up from the workspace, in each folder a directory override (`rustup override
set`, kept in $RUSTUP_HOME/settings.toml) before a `rust-toolchain`/`rust-toolchain.toml`
file (so the nearer one wins and, in the same folder, the override), then the default
toolchain. A short name (`stable`, `1.88.0`) means the one for this host (settings.toml
`default_host_triple`), never another host's copy that happens to sort first.
"""

from __future__ import annotations

import platform
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ci.cache.files import digest

# The files whose replacement is a new toolchain (an update rewrites them all).
_IDENTITY = (
    "bin/rustc",
    "bin/cargo",
    "bin/rustdoc",
    "bin/clippy-driver",
    "bin/cargo-clippy",
    "bin/rustfmt",
    "lib/rustlib/components",
    "lib/rustlib/multirust-channel-manifest.toml",
)


def _host() -> str:
    machine = platform.machine() or "x86_64"
    system = platform.system().lower()
    if system == "darwin":
        return f"{machine}-apple-darwin"
    if system == "windows":
        return f"{machine}-pc-windows-msvc"
    return f"{machine}-unknown-linux-gnu"


@dataclass
class Toolchain:
    """The Rust toolchain of a workspace, as one digest."""

    env: Mapping[str, str]
    workspace: Path
    _cached: str | None = field(default=None, repr=False)

    def digest(self) -> str:
        """The toolchain's identity: how it was chosen, its name and its files' size and
        modification time (or `rustc -vV` / `cargo -V` when rustup does not manage it)."""
        if self._cached is None:
            how, name, text = self.choice()
            found = self._rustup(name) if name else None
            ident = found or self._probe()
            self._cached = digest(how, name or "", text, ident)
        return self._cached

    def _rustup_home(self) -> Path:
        home = Path(self.env.get("HOME", "~")).expanduser()
        return Path(self.env.get("RUSTUP_HOME") or home / ".rustup")

    def _settings(self) -> dict[str, object]:
        for path in (self._rustup_home() / "settings.toml", Path("/etc/rustup/settings.toml")):
            try:
                return tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError):
                continue
        return {}

    def choice(self) -> tuple[str, str | None, str]:
        """(how it was chosen, the toolchain name or path, the text that chose it)."""
        if self.env.get("RUSTUP_TOOLCHAIN"):
            return "env", self.env["RUSTUP_TOOLCHAIN"], ""
        conf = self._settings()
        overrides = conf.get("overrides")
        by_dir = {}
        if isinstance(overrides, dict):
            by_dir = {Path(k).resolve(): str(v) for k, v in overrides.items()}
        ws = self.workspace.resolve()
        for folder in [ws, *ws.parents]:
            if folder in by_dir:
                return f"override:{folder}", by_dir[folder], ""
            for fname in ("rust-toolchain", "rust-toolchain.toml"):
                path = folder / fname
                if path.is_file():
                    text = path.read_text(errors="replace")
                    return f"file:{path}", _file_toolchain(text, folder), text
        default = conf.get("default_toolchain")
        return "default", str(default) if default else None, ""

    def _rustup(self, name: str) -> str | None:
        conf = self._settings()
        host = str(conf.get("default_host_triple") or _host())
        toolchains = self._rustup_home() / "toolchains"
        as_path = Path(name)
        candidates = [as_path] if as_path.is_absolute() else []
        candidates += [toolchains / name, toolchains / f"{name}-{host}"]
        for folder in candidates:
            if (folder / "bin" / "rustc").is_file() and (folder / "bin" / "cargo").is_file():
                stats = []
                for rel in _IDENTITY:
                    try:
                        st = (folder / rel).stat()
                        stats.append(f"{rel}:{st.st_size}:{st.st_mtime_ns}")
                    except OSError:
                        stats.append(f"{rel}:absent")
                for lib in sorted((folder / "lib").glob("librustc_driver-*")):
                    st = lib.stat()
                    stats.append(f"{lib.name}:{st.st_size}:{st.st_mtime_ns}")
                return digest(str(folder), *stats)
        return None

    def _probe(self) -> str:
        out = []
        for cmd in (["rustc", "-vV"], ["cargo", "-V"]):
            try:
                proc = subprocess.run(
                    cmd,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                    cwd=self.workspace if self.workspace.is_dir() else None,
                )
                out.append(proc.stdout)
            except (OSError, subprocess.TimeoutExpired):
                out.append("missing")
        return "\n".join(out)


def _file_toolchain(text: str, folder: Path) -> str | None:
    """The toolchain a rust-toolchain(.toml) file names: its channel, or its path."""
    try:
        table = tomllib.loads(text).get("toolchain", {})
    except tomllib.TOMLDecodeError:
        return text.strip() or None  # the legacy one-line form
    if not isinstance(table, dict):
        return None
    if table.get("path"):
        return str((folder / str(table["path"])).resolve())
    channel = table.get("channel")
    return str(channel) if channel else None
