"""`ci.stage.execute` with stand-in stage functions: a result file in every case (success,
gate failure, internal error, bad settings, hard limit, Ctrl-C, a second signal during
teardown), the right status and exit code, and nothing secret on the terminal or on disk."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest
from helpers import stand_in_project

from ci.registry import StageSpec
from ci.stage import execute

TOKEN = "ghp_PLANTEDtoken0123456789"

FAKE = textwrap.dedent(
    """
    import os, signal, time
    from pathlib import Path
    from ci.errors import GateFailed
    from ci.interrupts import shield
    from ci.result import Finding, StageResult, Status
    from ci.contract import Clock

    def ok(ctx):
        ctx.runner.say("working with " + os.environ["GITHUB_TOKEN"])
        clock = Clock()
        with clock.check("probe") as chk:
            chk.summary = "saw " + os.environ["GITHUB_TOKEN"]
        clock.findings.append(Finding("probe", "leak " + os.environ["GITHUB_TOKEN"], file="a.rs"))
        return clock.result(ctx.name)

    def boom(ctx):
        raise RuntimeError("exploded near " + os.environ["GITHUB_TOKEN"])

    def gate(ctx):
        raise GateFailed("threshold breached")

    def hang(ctx):
        time.sleep(30)

    def interrupted(ctx):
        raise KeyboardInterrupt("SIGINT")

    def exits(ctx):
        raise SystemExit(3)

    def shielded(ctx):
        with shield():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
            Path(os.environ["MARKER"]).write_text("teardown finished")
        return StageResult(ctx.name, Status.PASSED, 0, 0, "should not get here")

    def double(ctx):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # GitHub's SIGTERM during our teardown
            time.sleep(0.1)
            Path(os.environ["MARKER"]).write_text("teardown finished")
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    stand_in_project(tmp_path, monkeypatch, "fakestages", FAKE)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)  # the stand-ins read the process environment
    monkeypatch.setenv("MARKER", str(tmp_path / "marker"))
    return tmp_path


def run(project: Path, func: str, **env: str) -> tuple[int, str, dict, str, str]:
    base = {
        "GITHUB_TOKEN": TOKEN,
        "CIPIPE_WORKSPACE": str(project / "ws"),
        "CIPIPE_OUTPUT_DIR": str(project / "out"),
        "PATH": "/usr/bin:/bin",
    }
    base.update(env)
    stream = io.StringIO()
    stages = (StageSpec("lint", "stand-in", f"fakestages:{func}"),)
    code, line = execute("lint", project, env=base, stream=stream, stages=stages)
    out = project / "out"
    result = json.loads((out / "lint.json").read_text())
    log = (out / "lint.log").read_text() if (out / "lint.log").exists() else ""
    everything = stream.getvalue() + line + log + "".join(p.read_text() for p in out.rglob("*.*"))
    assert TOKEN not in everything, "the planted token leaked"
    return code, line, result, stream.getvalue(), log


def test_passed_result_is_masked_everywhere(project: Path) -> None:
    code, _, result, shown, log = run(project, "ok")
    assert code == 0 and result["status"] == "passed"
    assert result["findings"][0]["message"] == "leak ***"
    assert result["checks"][0]["summary"] == "saw ***"
    assert "working with ***" in shown and "working with ***" in log


def test_internal_error_is_reported_as_such_with_the_traceback_in_the_log(project: Path) -> None:
    code, line, result, shown, log = run(project, "boom")
    assert code == 70 and result["status"] == "internal-error"
    assert result["summary"].startswith("internal error: RuntimeError: exploded near ***")
    assert "traceback in" in result["summary"]
    assert "Traceback" in log and "Traceback" not in shown and "Traceback" not in line


def test_gate_failure_and_early_exit(project: Path) -> None:
    code, _, result, _, _ = run(project, "gate")
    assert (code, result["status"], result["summary"]) == (1, "failed", "threshold breached")
    code, _, result, _, _ = run(project, "exits")
    assert code == 70 and "exited early (exit code 3)" in result["summary"]


def test_bad_settings_still_write_a_result(project: Path) -> None:
    code, line, result, _, _ = run(project, "ok", CIPIPE_BUDGETS__LINT="soon")
    assert code == 3 and result["status"] == "error"
    assert "budgets.lint" in result["summary"] and "budgets.lint" in line
    code, _, result, _, _ = run(project, "ok", CIPIPE_NO_SUCH_KEY="1")
    assert code == 3 and "unknown key 'no_such_key'" in result["summary"]


def test_hard_limit_stops_a_hung_stage(project: Path) -> None:
    code, _, result, _, _ = run(project, "hang", CIPIPE_TIMEOUTS__LINT="0.3")
    assert code == 124 and result["status"] == "timeout"
    assert "hard limit of 0s" in result["summary"] or "hard limit of 0.3" in result["summary"]
    assert result["duration_s"] < 5


def test_interrupt_is_cancelled(project: Path) -> None:
    code, _, result, _, _ = run(project, "interrupted")
    assert code == 130 and result["status"] == "cancelled"


def test_signal_inside_a_shield_waits_for_the_teardown(project: Path) -> None:
    code, _, result, _, _ = run(project, "shielded")
    assert (project / "marker").read_text() == "teardown finished"
    assert code == 130 and result["status"] == "cancelled"


def test_second_signal_during_teardown_is_ignored(project: Path) -> None:
    code, _, result, _, _ = run(project, "double")
    assert (project / "marker").read_text() == "teardown finished"
    assert code == 130 and result["status"] == "cancelled"
    assert result["duration_s"] < 4  # the first signal stopped the sleep at once


def test_unknown_stage_writes_an_error_result(project: Path) -> None:
    stream = io.StringIO()
    env = {"CIPIPE_OUTPUT_DIR": str(project / "out"), "CIPIPE_WORKSPACE": str(project / "ws")}
    code, line = execute("moon", project, env=env, stream=stream)
    assert code == 3 and "unknown stage 'moon'" in line
    assert json.loads((project / "out" / "moon.json").read_text())["status"] == "error"
