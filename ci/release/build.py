"""The release build: `cargo auditable build --release --locked -p <crate> --bin <binary>`.

cargo-auditable embeds the resolved dependency list in a `.dep-v0` section of the binary,
so `cargo audit bin` can check a shipped artifact years later. Stripping is cargo's own
(`CARGO_PROFILE_RELEASE_STRIP`), so Linux, macOS and Windows behave the same; `inspect`
then reads the built file to confirm the symbol table is gone and the audit data is there.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ci import tools
from ci.cargo import first_error
from ci.errors import ToolMissing
from ci.release.errors import BuildFailed, PreconditionFailed
from ci.runner import Runner, which
from ci.stage import StageContext

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

    def env(self) -> dict[str, str]:
        """Extra environment for cargo: the strip level of the release profile."""
        return {"CARGO_PROFILE_RELEASE_STRIP": self.strip}

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


_INSTALLED = re.compile(r"^(\S+) v(\S+?)(?: \(.*\))?:$")


def parse_install_list(text: str) -> dict[str, str]:
    """`cargo install --list` as {crate: version}."""
    found = {}
    for line in text.splitlines():
        match = _INSTALLED.match(line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def installed_auditable(runner: Runner) -> str | None:
    """The installed cargo-auditable version, read from cargo's install list: the tool
    itself cannot say (`cargo-auditable --version` refuses to run outside cargo and
    `cargo auditable --version` prints cargo's version)."""
    res = runner.run(["cargo", "install", "--list"], capture=True, echo_output=False)
    version = parse_install_list(res.stdout).get(tools.get(AUDITABLE).crate) if res.ok else None
    return version if version and which(AUDITABLE) else None


def ensure_auditable(runner: Runner, auto_install: bool) -> str:
    """cargo-auditable's version, installing the pinned one first when it is missing."""
    found = installed_auditable(runner)
    pinned = tools.get(AUDITABLE).version
    if found is not None:
        if found != pinned:
            runner.say(f"note: {AUDITABLE} {found} installed; the pipeline pins {pinned}")
        return found
    try:
        return tools.ensure(runner, AUDITABLE, auto_install=auto_install)
    except ToolMissing:
        # ci.tools verifies an install with `<tool> --version`, which cargo-auditable
        # cannot answer: trust cargo's install list when it shows the tool.
        found = installed_auditable(runner)
        if found is None:
            raise
        return found


def build(ctx: StageContext, spec: BuildSpec) -> Path:
    """Run the release build and return the binary's path; BuildFailed with cargo's first
    error line otherwise."""
    res = ctx.cargo(spec.args(), env=spec.env())
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
