"""ci.tools reads the version of a tool that cannot print it from cargo's install record."""

from __future__ import annotations

import json
from pathlib import Path

from ci import tools


def test_recorded_version_from_the_install_root(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    exe = tmp_path / "bin" / "cargo-auditable"
    exe.write_text("")
    key = "cargo-auditable 0.7.7 (registry+https://github.com/rust-lang/crates.io-index)"
    (tmp_path / ".crates2.json").write_text(
        json.dumps({"installs": {key: {"bins": ["cargo-auditable"]}}})
    )
    assert tools.recorded_version(exe) == "0.7.7"
    assert tools.recorded_version(tmp_path / "bin" / "other") is None
    assert tools.recorded_version(tmp_path / "none" / "bin" / "x") is None


def test_a_subcommand_that_hands_over_to_cargo_is_read_from_its_install_record(
    tmp_path: Path, monkeypatch
) -> None:
    """`cargo-auditable --version` refuses to run outside cargo and `cargo-auditable
    auditable --version` prints cargo's own version: the pin is read from cargo's install
    record, never taken from cargo's version (`.ci/setup tools:release` failed on it)."""
    import subprocess

    (tmp_path / "bin").mkdir()
    exe = tmp_path / "bin" / "cargo-auditable"
    exe.write_text("")
    record = {"installs": {"cargo-auditable 0.7.7 (registry+x)": {"bins": [exe.name]}}}
    (tmp_path / ".crates2.json").write_text(json.dumps(record))
    answers = {
        "--version": subprocess.CompletedProcess([], 1, "", "should be invoked through Cargo"),
        "auditable": subprocess.CompletedProcess([], 0, "cargo 1.95.0 (f2d3ce0bd)\n", ""),
    }
    monkeypatch.setattr(tools.subprocess, "run", lambda cmd, **kw: answers[cmd[1]])
    assert tools._version_of(str(exe)) == "0.7.7"
