"""The release build command, its output path, and reading the built binary."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from ci.release.build import (
    BuildSpec,
    check_binary,
    inspect,
    installed_version,
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


def _install(root: Path, crate: str, version: str, exe: str) -> Path:
    """A cargo install root holding `exe`, recorded as `crate` `version`."""
    (root / "bin").mkdir(parents=True, exist_ok=True)
    path = root / "bin" / exe
    path.write_text("#!/bin/sh\n")
    key = f"{crate} {version} (registry+https://github.com/rust-lang/crates.io-index)"
    record = {"installs": {key: {"bins": [exe], "version_req": None}}}
    (root / ".crates2.json").write_text(json.dumps(record))
    return path


def test_installed_version_reads_cargos_install_record(tmp_path: Path) -> None:
    exe = _install(tmp_path / "cargo", "cargo-auditable", "0.7.7", "cargo-auditable")
    assert installed_version(exe) == "0.7.7"
    assert installed_version(tmp_path / "cargo" / "bin" / "other") is None
    assert installed_version(tmp_path / "nowhere" / "bin" / "cargo-auditable") is None


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
    def __init__(self, env: dict[str, str]) -> None:
        self.base_env = env
        self.said: list[str] = []

    def say(self, text: str) -> None:
        self.said.append(text)


def test_ensure_auditable_finds_the_pin_on_path_or_privately(monkeypatch, tmp_path) -> None:
    from ci import tools
    from ci.release import build

    home = tmp_path / "home"
    on_path = _install(tmp_path / "user", "cargo-auditable", "0.7.7", "cargo-auditable")
    monkeypatch.setattr(build, "which", lambda name: str(on_path))
    monkeypatch.setattr(tools, "resolve", lambda *a, **k: pytest.fail("nothing to install"))
    runner = _Runner({"CIPIPE_TOOLS_DIR": str(home)})
    assert build.ensure_auditable(runner, True) == (on_path, "0.7.7")
    # another version on PATH: the pipeline's private install of the pin is used
    old = _install(tmp_path / "old", "cargo-auditable", "0.6.0", "cargo-auditable")
    monkeypatch.setattr(build, "which", lambda name: str(old))
    private_root = tools.tools_dir(runner.base_env)
    private = _install(private_root, "cargo-auditable", "0.7.7", "cargo-auditable")
    assert build.ensure_auditable(runner, True) == (private, "0.7.7")


def test_ensure_auditable_installs_then_trusts_cargos_record(monkeypatch, tmp_path) -> None:
    from ci import tools
    from ci.errors import ToolMissing
    from ci.release import build

    runner = _Runner({"CIPIPE_TOOLS_DIR": str(tmp_path / "home")})
    private_root = tools.tools_dir(runner.base_env)
    calls = []

    def resolve(r, name, *, auto_install):
        calls.append((name, auto_install))
        if auto_install:  # installs, then cannot read the version back (as ci.tools does)
            _install(private_root, "cargo-auditable", "0.7.7", "cargo-auditable")
        raise ToolMissing(name, "installed but does not report version 0.7.7")

    monkeypatch.setattr(build, "which", lambda name: None)
    monkeypatch.setattr(tools, "resolve", resolve)
    with pytest.raises(ToolMissing):  # not allowed to install: the tool's own message
        build.ensure_auditable(runner, False)
    path, version = build.ensure_auditable(runner, True)
    assert (path, version) == (private_root / "bin" / "cargo-auditable", "0.7.7")
    assert calls == [("cargo-auditable", False), ("cargo-auditable", True)]


def test_build_env_puts_the_resolved_tool_first_on_path() -> None:
    spec = BuildSpec("svc", "svc", "x86_64-unknown-linux-gnu", False, Path("/t"))
    env = spec.env(Path("/tools/bin"), "/usr/bin:/bin")
    assert env["PATH"].split(os.pathsep) == ["/tools/bin", "/usr/bin", "/bin"]
