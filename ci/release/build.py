"""The release build: `cargo auditable build --release --locked -p <crate> --bin <binary>`.

cargo-auditable embeds the resolved dependency list in a `.dep-v0` section of the binary,
so `cargo audit bin` can check a shipped artifact years later. Stripping is cargo's own
(`CARGO_PROFILE_RELEASE_STRIP`), so Linux, macOS and Windows behave the same; `inspect`
then reads the built file to confirm the symbol table is gone and the audit data is there.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ci import tools
from ci.cargo import first_error
from ci.contract import StageContext
from ci.errors import ToolMissing
from ci.release.errors import BuildFailed, PreconditionFailed
from ci.runner import Runner, which

STRIP_CHOICES = ("symbols", "debuginfo", "none")
AUDITABLE = "cargo-auditable"
AUDIT_SECTION = b".dep-v0"


def exe_suffix(target: str) -> str:
    """`.exe` for Windows targets, nothing elsewhere."""
    return ".exe" if "windows" in target else ""


@dataclass(frozen=True)
class BuildSpec:
    """One release build of one binary for one target."""

    crate: str
    binary: str
    target: str  # the triple the binary is for
    explicit_target: bool  # --target given: cargo writes under <target_dir>/<triple>/
    target_dir: Path
    strip: str = "symbols"

    def args(self) -> list[str]:
        """The cargo arguments (after `cargo`)."""
        args = ["auditable", "build", "--release", "--locked", "-p", self.crate]
        args += ["--bin", self.binary]
        if self.explicit_target:
            args += ["--target", self.target]
        return args

    def env(self, tool_dir: Path | None = None, path: str = "") -> dict[str, str]:
        """Extra environment for cargo: the strip level of the release profile, and the
        folder of the resolved cargo-auditable first on PATH (`cargo auditable` runs the
        first `cargo-auditable` it finds there)."""
        env = {"CARGO_PROFILE_RELEASE_STRIP": self.strip}
        if tool_dir is not None:
            env["PATH"] = os.pathsep.join(p for p in (str(tool_dir), path) if p)
        return env

    @property
    def output(self) -> Path:
        """Where cargo writes the binary."""
        base = self.target_dir / self.target if self.explicit_target else self.target_dir
        return base / "release" / (self.binary + exe_suffix(self.target))


def parse_rustc_version(text: str) -> dict[str, str]:
    """`rustc -vV` as a dict (`host`, `release`, `commit-hash`, ...)."""
    facts = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            facts[key.strip()] = value.strip()
    return facts


def rustc_facts(runner: Runner, env: Mapping[str, str]) -> dict[str, str]:
    """The host triple and compiler release, from `rustc -vV`."""
    res = runner.run(["rustc", "-vV"], capture=True, echo_output=False, env=env)
    facts = parse_rustc_version(res.stdout)
    if not res.ok or "host" not in facts:
        raise PreconditionFailed("`rustc -vV` did not report a host target: check the Rust install")
    return facts


def std_installed(runner: Runner, env: Mapping[str, str], target: str) -> bool | None:
    """Whether the toolchain has the standard library for `target` (its folder in the
    sysroot); None when that cannot be told (custom target specs, odd sysroots)."""
    if target.endswith(".json"):
        return None
    res = runner.run(["rustc", "--print", "sysroot"], capture=True, echo_output=False, env=env)
    rustlib = Path(res.stdout.strip()) / "lib" / "rustlib"
    if not res.ok or not rustlib.is_dir():
        return None
    return (rustlib / target / "lib").is_dir()


def installed_version(exe: Path) -> str | None:
    """The version cargo recorded when it installed `exe`: its install root's
    `.crates2.json` (`<root>/bin/<exe>`). cargo-auditable cannot say it itself:
    `cargo-auditable --version` refuses to run outside cargo and `cargo auditable
    --version` prints cargo's own version."""
    try:
        data = json.loads((exe.parent.parent / ".crates2.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for key, install in data.get("installs", {}).items():
        if isinstance(install, dict) and exe.name in install.get("bins", []):
            parts = key.split(" ")
            return parts[1] if len(parts) > 1 else None
    return None


def find_auditable(env: Mapping[str, str]) -> tuple[Path, str] | None:
    """(path, version) of cargo-auditable at the pinned version, on PATH or in the
    pipeline's private install of the pin; else whatever is on PATH; else None."""
    tool = tools.get(AUDITABLE)
    on_path = which(AUDITABLE)
    private = tools.tools_dir(env) / "bin" / AUDITABLE
    candidates = [Path(on_path)] if on_path else []
    candidates.append(private)
    found = [(c, installed_version(c)) for c in candidates if c.is_file()]
    for path, version in found:
        if version == tool.version:
            return path, version
    return next(((p, v) for p, v in found if v), None)


def ensure_auditable(runner: Runner, auto_install: bool) -> tuple[Path, str]:
    """(path, version) of the pinned cargo-auditable, installing it when missing."""
    pinned = tools.get(AUDITABLE).version
    found = find_auditable(runner.base_env)
    if found is not None and found[1] == pinned:
        return found
    try:
        path, version = tools.resolve(runner, AUDITABLE, auto_install=auto_install)
        return Path(path), version
    except ToolMissing:
        # ci.tools checks an install with `<tool> --version`, which cargo-auditable cannot
        # answer: trust cargo's install record when it shows the pin.
        found = find_auditable(runner.base_env)
        if found is None or found[1] != pinned:
            raise
        return found


def build(ctx: StageContext, spec: BuildSpec, auditable: Path) -> Path:
    """Run the release build with the cargo-auditable at `auditable` and return the
    binary's path; BuildFailed with cargo's first error line otherwise."""
    env = spec.env(auditable.parent, ctx.runner.base_env.get("PATH", ""))
    res = ctx.cargo(spec.args(), env=env)
    if not res.ok:
        reason = first_error(res.output) or f"cargo exited {res.returncode}"
        raise BuildFailed(f"release build of {spec.binary} failed: {reason} (full output above)")
    if not spec.output.is_file():
        raise BuildFailed(f"cargo reported success but {spec.output} does not exist")
    return spec.output


@dataclass(frozen=True)
class BinaryFacts:
    """What the built file shows: its format, whether a symbol table is left, whether the
    cargo-auditable dependency list is embedded. None: not determined for this format."""

    format: str
    symbols: bool | None
    auditable: bool


def _elf_sections(data: bytes) -> list[str]:
    """Section names of an ELF file (32/64-bit, either byte order)."""
    wide = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if wide:
        (shoff,) = struct.unpack_from(end + "Q", data, 0x28)
        entsize, count, strndx = struct.unpack_from(end + "HHH", data, 0x3A)
    else:
        (shoff,) = struct.unpack_from(end + "I", data, 0x20)
        entsize, count, strndx = struct.unpack_from(end + "HHH", data, 0x2E)

    def header(index: int) -> tuple[int, int, int]:
        at = shoff + index * entsize
        (name,) = struct.unpack_from(end + "I", data, at)
        if wide:
            offset, size = struct.unpack_from(end + "QQ", data, at + 0x18)
        else:
            offset, size = struct.unpack_from(end + "II", data, at + 0x10)
        return name, offset, size

    if not shoff or strndx >= count:
        return []
    _, str_off, str_size = header(strndx)
    names = data[str_off : str_off + str_size]
    result = []
    for i in range(count):
        name_at = header(i)[0]
        result.append(names[name_at : names.index(b"\0", name_at)].decode("ascii", "replace"))
    return result


def inspect(path: Path) -> BinaryFacts:
    """Read the binary: ELF is parsed (symbol table and `.dep-v0` section); for Mach-O
    and PE only the audit section's name is looked for."""
    data = path.read_bytes()
    if data[:4] == b"\x7fELF":
        try:
            sections = _elf_sections(data)
        except (struct.error, ValueError):
            raise BuildFailed(f"{path} is not a readable ELF file") from None
        return BinaryFacts("elf", ".symtab" in sections, AUDIT_SECTION.decode() in sections)
    fmt = "pe" if data[:2] == b"MZ" else "mach-o" if data[:4] in _MACHO else "unknown"
    return BinaryFacts(fmt, None, AUDIT_SECTION in data)


_MACHO = {b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe"}


def check_binary(facts: BinaryFacts, strip: str) -> list[str]:
    """Problems with the built binary: audit data missing, symbols left after a strip."""
    problems = []
    if not facts.auditable:
        problems.append(
            "the binary carries no cargo-auditable dependency list (.dep-v0): "
            "was it built with `cargo auditable build`?"
        )
    if strip == "symbols" and facts.symbols:
        problems.append(
            "the binary still has a symbol table after strip=symbols: "
            "check [profile.release] and RUSTFLAGS for settings that keep symbols"
        )
    return problems
