"""The release build command, its output path, and reading the built binary."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from ci.release.build import (
    BuildSpec,
    check_binary,
    inspect,
    parse_install_list,
    parse_rustc_version,
)
from ci.release.errors import BuildFailed


def test_host_build_command_and_output() -> None:
    spec = BuildSpec(
        "trading-system", "trading-system", "x86_64-unknown-linux-gnu", False, Path("/t")
    )
    assert spec.args() == [
        "auditable", "build", "--release", "--locked", "-p", "trading-system",
        "--bin", "trading-system",
    ]  # fmt: skip
    assert spec.env() == {"CARGO_PROFILE_RELEASE_STRIP": "symbols"}
    assert spec.output == Path("/t/release/trading-system")


def test_explicit_target_build_command_and_windows_output() -> None:
    spec = BuildSpec("svc", "svc", "x86_64-pc-windows-msvc", True, Path("/t"), strip="debuginfo")
    assert spec.args()[-2:] == ["--target", "x86_64-pc-windows-msvc"]
    assert spec.env() == {"CARGO_PROFILE_RELEASE_STRIP": "debuginfo"}
    assert spec.output == Path("/t/x86_64-pc-windows-msvc/release/svc.exe")


def test_rustc_and_install_list_parsing() -> None:
    facts = parse_rustc_version(
        "rustc 1.95.0 (5980 2026-04-14)\nbinary: rustc\n"
        "host: aarch64-apple-darwin\nrelease: 1.95.0\n"
    )
    assert facts["host"] == "aarch64-apple-darwin" and facts["release"] == "1.95.0"
    listing = (
        "cargo-audit v0.22.2:\n    cargo-audit\n"
        "cargo-auditable v0.7.7:\n    cargo-auditable\n"
        "mytool v1.0.0 (/src/mytool):\n    mytool\n"
    )
    assert parse_install_list(listing) == {
        "cargo-audit": "0.22.2",
        "cargo-auditable": "0.7.7",
        "mytool": "1.0.0",
    }


def _elf(sections: list[str], *, big_endian: bool = False) -> bytes:
    """A minimal 64-bit ELF file with the named sections (plus NULL and .shstrtab)."""
    end = ">" if big_endian else "<"
    names = ["", *sections, ".shstrtab"]
    strtab = b""
    offsets = []
    for name in names:
        offsets.append(len(strtab))
        strtab += name.encode() + b"\0"
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4] = 2  # 64-bit
    header[5] = 2 if big_endian else 1
    strtab_at = 64
    shoff = strtab_at + len(strtab)
    struct.pack_into(end + "Q", header, 0x28, shoff)
    struct.pack_into(end + "HHH", header, 0x3A, 64, len(names), len(names) - 1)
    table = b""
    for i, at in enumerate(offsets):
        sh = bytearray(64)
        struct.pack_into(end + "I", sh, 0, at)
        if i == len(names) - 1:
            struct.pack_into(end + "QQ", sh, 0x18, strtab_at, len(strtab))
        table += sh
    return bytes(header) + strtab + table


@pytest.mark.parametrize("big_endian", [False, True])
def test_elf_sections_show_symbols_and_audit_data(tmp_path: Path, big_endian: bool) -> None:
    stripped = tmp_path / "stripped"
    stripped.write_bytes(_elf([".text", ".dep-v0"], big_endian=big_endian))
    facts = inspect(stripped)
    assert (facts.format, facts.symbols, facts.auditable) == ("elf", False, True)
    assert check_binary(facts, "symbols") == []
    full = tmp_path / "full"
    full.write_bytes(_elf([".text", ".symtab", ".strtab"], big_endian=big_endian))
    facts = inspect(full)
    assert (facts.symbols, facts.auditable) == (True, False)
    problems = check_binary(facts, "symbols")
    assert len(problems) == 2
    assert "no cargo-auditable dependency list" in problems[0]
    assert "still has a symbol table" in problems[1]
    assert check_binary(facts, "none")[1:] == []  # symbols are expected without a strip


def test_pe_and_macho_are_checked_for_audit_data_only(tmp_path: Path) -> None:
    pe = tmp_path / "x.exe"
    pe.write_bytes(b"MZ" + b"\0" * 100 + b".dep-v0\0" + b"\0" * 50)
    assert inspect(pe).format == "pe" and inspect(pe).auditable and inspect(pe).symbols is None
    macho = tmp_path / "x"
    macho.write_bytes(b"\xcf\xfa\xed\xfe" + b"\0" * 100)
    assert (inspect(macho).format, inspect(macho).auditable) == ("mach-o", False)


def test_truncated_elf_is_a_clear_failure(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(_elf([".text"])[:70])
    with pytest.raises(BuildFailed, match="not a readable ELF file"):
        inspect(bad)


class _Runner:
    """Answers `cargo install --list` from a script of listings; records what was said."""

    def __init__(self, *listings: str) -> None:
        self.listings = list(listings)
        self.said: list[str] = []

    def run(self, cmd, **_kw):
        from ci.runner import CommandResult

        assert cmd == ["cargo", "install", "--list"], cmd
        return CommandResult(tuple(cmd), 0, self.listings.pop(0), "", 0.0)

    def say(self, text: str) -> None:
        self.said.append(text)


def test_ensure_auditable_uses_the_install_list(monkeypatch) -> None:
    from ci import tools
    from ci.release import build

    monkeypatch.setattr(build, "which", lambda name: f"/bin/{name}")
    monkeypatch.setattr(tools, "ensure", lambda *a, **k: pytest.fail("nothing to install"))
    assert build.ensure_auditable(_Runner("cargo-auditable v0.7.7:\n"), True) == "0.7.7"
    other = _Runner("cargo-auditable v0.7.2:\n")
    assert build.ensure_auditable(other, True) == "0.7.2"
    assert other.said == ["note: cargo-auditable 0.7.2 installed; the pipeline pins 0.7.7"]


def test_ensure_auditable_installs_then_trusts_the_install_list(monkeypatch) -> None:
    from ci import tools
    from ci.errors import ToolMissing
    from ci.release import build

    installs = []

    def ensure(runner, name, *, auto_install):
        installs.append((name, auto_install))
        # what ci.tools does today: installs, then cannot read the version back
        raise ToolMissing(name, "installed but reports version none instead of 0.7.7")

    monkeypatch.setattr(build, "which", lambda name: f"/bin/{name}")
    monkeypatch.setattr(tools, "ensure", ensure)
    runner = _Runner("", "cargo-auditable v0.7.7:\n")
    assert build.ensure_auditable(runner, True) == "0.7.7"
    assert installs == [("cargo-auditable", True)]
    with pytest.raises(ToolMissing):  # really not there after the install attempt
        build.ensure_auditable(_Runner("", ""), False)
