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
