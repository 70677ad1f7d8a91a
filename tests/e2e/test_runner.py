"""The command runner against real processes: redaction, capture, missing tools."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from ci.errors import ToolMissing
from ci.redact import Redactor
from ci.runner import Runner, require

SECRET = "sk_live_0123456789abcdef"


def test_child_output_is_redacted_everywhere(tmp_path: Path) -> None:
    out = io.StringIO()
    log = tmp_path / "log.txt"
    code = f"import sys; print('out {SECRET}'); print('err {SECRET}', file=sys.stderr)"
    with Runner(Redactor([SECRET]), log_path=log, stream=out) as runner:
        res = runner.run([sys.executable, "-c", code], capture=True)
    assert res.ok
    # Parsers get the raw output (a mask must never change what they conclude) ...
    assert res.stdout == f"out {SECRET}\n"
    assert res.stderr == f"err {SECRET}\n"
    # ... and every sink gets it masked.
    assert SECRET not in out.getvalue()
    assert "err ***" in out.getvalue()  # stderr streamed
    shown = [line for line in out.getvalue().splitlines() if not line.startswith("+ ")]
    assert "out ***" not in shown  # captured stdout is not echoed
    assert SECRET not in log.read_text() and "out ***" in log.read_text()


def test_secret_in_argv_is_masked_in_echo(tmp_path: Path) -> None:
    out = io.StringIO()
    with Runner(Redactor([SECRET]), stream=out) as runner:
        runner.run([sys.executable, "-c", "pass", SECRET])
    assert SECRET not in out.getvalue()
    assert "+ " in out.getvalue()


def test_missing_tool_has_install_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with Runner(stream=io.StringIO()) as runner, pytest.raises(ToolMissing) as err:
        runner.run(["cargo-deny", "check"])
    assert str(err.value) == (
        "cargo-deny not found on PATH: run `invoke tools.install --only cargo-deny`"
    )
    with pytest.raises(ToolMissing, match="install some-tool"):
        require("some-tool")


def test_exit_code_and_timeout() -> None:
    with Runner(stream=io.StringIO()) as runner:
        assert runner.run([sys.executable, "-c", "raise SystemExit(3)"]).returncode == 3
        res = runner.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert res.returncode != 0
    assert "timed out after 0.5s" in res.stderr
