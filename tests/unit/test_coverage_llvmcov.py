"""The llvm-cov coverage engine: how `cargo llvm-cov` is called, where the LLVM tools are
looked for, and the check that their LLVM major is rustc's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ci import settings
from ci.coverage import llvmcov
from ci.coverage.config import engine_of, load
from ci.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def config(**env: str):
    return load(settings.load(ROOT, {"CIPIPE_COVERAGE__ENGINE": "llvm-cov", **env}))


def test_the_default_engine_is_llvm_cov() -> None:
    cfg = load(settings.load(ROOT, {}))
    assert (cfg.engine, cfg.tool) == ("llvm-cov", "cargo-llvm-cov")
    assert engine_of(settings.load(ROOT, {})) == "llvm-cov"
    legacy = settings.load(ROOT, {"CIPIPE_COVERAGE__ENGINE": "ptrace"})
    assert (engine_of(legacy), load(legacy).tool) == ("tarpaulin", "cargo-tarpaulin")


def test_an_unknown_engine_is_one_line_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"coverage\.engine.*llvm-cov, tarpaulin"):
        load(settings.load(ROOT, {"CIPIPE_COVERAGE__ENGINE": "gcov"}))


def test_llvm_majors_from_rustc_and_the_tools() -> None:
    rustc = "rustc 1.95.0 (59807616e 2026-04-14)\nhost: x86_64\nLLVM version: 22.1.2\n"
    assert llvmcov.rustc_llvm_major(rustc) == 22
    assert llvmcov.rustc_llvm_major("rustc 1.95.0\n") is None
    tool = "Debian LLVM version 22.1.8\n  Optimized build.\n"
    assert llvmcov.tool_llvm_major(tool) == 22
    assert llvmcov.tool_llvm_major("LLVM (http://llvm.org/):\n  LLVM version 19.1.7\n") == 19


def test_a_major_other_than_rustcs_is_one_line_saying_what_to_install() -> None:
    assert llvmcov.mismatch("llvm-profdata", "/p", 22, 22) is None
    line = llvmcov.mismatch("llvm-profdata", "/usr/bin/llvm-profdata", 19, 22)
    assert line is not None and "\n" not in line
    assert "reports LLVM 19 but rustc uses LLVM 22" in line
    assert "apt-get install llvm-22" in line and "llvm_bin" in line
    assert "no LLVM version" in (llvmcov.mismatch("llvm-cov", "/x", None, 22) or "")
    missing = str(llvmcov.not_found(22))
    assert "\n" not in missing and "apt-get install llvm-22" in missing


def test_where_the_llvm_tools_are_looked_for() -> None:
    cfg = config(CIPIPE_COVERAGE__LLVM_BIN="/opt/llvm/bin")
    env = {"LLVM_PROFDATA": "/e/profdata", "LLVM_COV": "/e/cov"}
    found = llvmcov.candidates(cfg, env, 22, Path("/sys/lib/rustlib/x86_64/bin"))
    assert [str(c["llvm-profdata"]) for c in found] == [
        "/opt/llvm/bin/llvm-profdata",
        "/e/profdata",
        "/sys/lib/rustlib/x86_64/bin/llvm-profdata",
        "/usr/lib/llvm-22/bin/llvm-profdata",
        "llvm-profdata-22",
        "llvm-profdata",
    ]
    assert len(llvmcov.candidates(config(), {}, 22)) == 3


def test_command_and_environment() -> None:
    cfg = config(CIPIPE_COVERAGE__EXCLUDE_FILES="tests/*,*/benches/*")
    argv = llvmcov.command("/t/cargo-llvm-cov", cfg, extra=["-p", "x"])
    assert argv[:4] == ["/t/cargo-llvm-cov", "llvm-cov", "--no-report", "--workspace"]
    assert "--no-fail-fast" in argv and "--doctests" in argv
    assert "--no-clean" not in argv  # stale profiles of an earlier run never count
    assert argv[-2:] == ["-p", "x"]
    report = llvmcov.report_command(
        "/t/cargo-llvm-cov", cfg, workspace=Path("/ws"), output_dir=Path("/o")
    )
    joined = " ".join(report)
    assert report[:3] == ["/t/cargo-llvm-cov", "llvm-cov", "report"]
    assert "--cobertura --output-path /o/cobertura.xml" in joined and "--doctests" in report
    assert report[report.index("--ignore-filename-regex") + 1] == llvmcov.ignore_regex(
        cfg, Path("/ws")
    )
    env = llvmcov.environment(cfg, Path("/t/coverage"), "/l/profdata", "/l/cov")
    assert env == {
        "CARGO_TARGET_DIR": "/t/coverage",
        "LLVM_PROFDATA": "/l/profdata",
        "LLVM_COV": "/l/cov",
        "RUSTC_BOOTSTRAP": "1",
    }
    off = config(CIPIPE_COVERAGE__DOCTESTS="false")
    assert "--doctests" not in llvmcov.command("e", off)
    assert "--doctests" not in llvmcov.report_command(
        "e", off, workspace=Path("/w"), output_dir=Path("/o")
    )
    assert "RUSTC_BOOTSTRAP" not in llvmcov.environment(off, Path("/t"), "p", "c")


def test_excluded_globs_become_one_posix_regex_over_absolute_paths() -> None:
    cfg = config(CIPIPE_COVERAGE__EXCLUDE_FILES="tests/*,*/benches/*,gen?.rs")
    regex = llvmcov.ignore_regex(cfg, Path("/w.s"))
    assert regex is not None and "(?" not in regex  # no Python-only syntax for LLVM
    matches = re.compile(regex).match
    assert matches("/w.s/tests/a.rs") and matches("/w.s/crates/x/benches/b.rs")
    assert matches("/w.s/gen1.rs")
    assert not matches("/w.s/src/lib.rs") and not matches("/wxs/tests/a.rs")
    assert llvmcov.ignore_regex(config(CIPIPE_COVERAGE__EXCLUDE_FILES=""), Path("/w")) is None
