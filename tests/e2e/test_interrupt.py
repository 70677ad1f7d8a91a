"""`invoke ci` interrupted with SIGINT during `integration` leaves no server behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT

from .leftovers import assert_nothing_left, started_services


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


ENTRY_POINTS = {
    "invoke": (["-m", "invoke", "ci", "--stages", "integration"], 130),
    "nox": (["-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", "integration"], 130),
}


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # like a terminal: SIGINT goes to invoke's process group
    )


def wait_until_tests_run(log: Path) -> None:
    wait_for(lambda: log.is_file() and len(started_services(log)) == 2, 120, "services")
    wait_for(lambda: "Starting" in log.read_text(), 120, "nextest to start the tests")
    time.sleep(1.0)


@pytest.mark.parametrize("second", [None, signal.SIGTERM])
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_sigint_during_integration_tears_down(fixture_env, entry: str, second) -> None:
    """Ctrl-C tears everything down; so does Ctrl-C followed by SIGTERM half a second
    later (GitHub's cancel sends both), which must not cut the teardown short."""
    argv, expected_code = ENTRY_POINTS[entry]
    env = fixture_env("clean", FIXTURE_SLEEP_SECS="120")
    out = Path(env["CIPIPE_OUTPUT_DIR"])
    log = out / "integration.log"
    proc = start(argv, env)
    try:
        wait_until_tests_run(log)
        os.killpg(proc.pid, signal.SIGINT)
        if second is not None:
            time.sleep(0.5)
            os.killpg(proc.pid, second)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == expected_code, output
    assert "Traceback" not in output
    assert "interrupted" in output
    data = json.loads((out / "integration.json").read_text())
    assert data["status"] == "cancelled", data
    assert_nothing_left(log)


def test_hung_test_is_stopped_at_the_hard_limit(fixture_env) -> None:
    env = fixture_env("clean", FIXTURE_SLEEP_SECS="300", CIPIPE_TIMEOUTS__INTEGRATION="8")
    out = Path(env["CIPIPE_OUTPUT_DIR"])
    started = time.monotonic()
    r = subprocess.run(
        [sys.executable, *ENTRY_POINTS["nox"][0]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.monotonic() - started < 60, "the hard limit did not stop the stage"
    assert r.returncode != 0 and "Traceback" not in r.stdout + r.stderr
    data = json.loads((out / "integration.json").read_text())
    assert data["status"] == "timeout", data
    assert "hard limit of 8s" in data["summary"]
    assert_nothing_left(out / "integration.log")


def test_closed_stdout_does_not_stop_the_pipeline(fixture_env) -> None:
    """`invoke ci | head -1`: the reader goes away after one line; the pipeline still runs
    every stage to the end, tears down and writes every result, without a traceback."""
    env = fixture_env("clean")
    out = Path(env["CIPIPE_OUTPUT_DIR"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "ci", "--stages", "lint,unit,integration"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # like `head -1` exiting
    err = proc.stderr.read()
    proc.wait(timeout=600)
    assert first.startswith("plan: ")
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err
    for stage in ("lint", "unit", "integration"):
        assert json.loads((out / f"{stage}.json").read_text())["status"] == "passed"
    assert_nothing_left(out / "integration.log")
