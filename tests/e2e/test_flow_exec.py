"""The executor with stand-in stage commands (tiny Python processes that write a
result file), so graph order, parallelism, fail-fast and cancellation are tested
without cargo."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

from ci.flow import Executor, Step
from ci.result import Status

STAGE = """
import json, sys, time, signal
name, sleep, status, out = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
open(f"{out}/{name}.start", "w").write(str(time.time()))
try:
    time.sleep(sleep)
except KeyboardInterrupt:
    status = "cancelled"
if status != "none":
    json.dump({"stage": name, "status": status, "duration_s": sleep, "budget_s": 5,
               "summary": status}, open(f"{out}/{name}.json", "w"))
print(f"{name} output line")
sys.exit(0 if status == "passed" else 1)
"""


def make(out: Path, spec: dict[str, tuple[float, str]]):
    def command(name: str) -> list[str]:
        sleep, status = spec[name]
        return [sys.executable, "-c", STAGE, name, str(sleep), status, str(out)]

    return command


def steps(*items: tuple[str, tuple[str, ...]]) -> list[Step]:
    return [Step(name, needs, True, 5.0) for name, needs in items]


def test_independent_stages_run_side_by_side(tmp_path: Path) -> None:
    spec = {"lint": (1.0, "passed"), "security": (1.0, "passed"), "unit": (0.1, "passed")}
    plan = steps(("lint", ()), ("security", ()), ("unit", ("lint",)))
    start = time.monotonic()
    outcome = Executor(plan, tmp_path, make(tmp_path, spec), stream=io.StringIO()).run()
    elapsed = time.monotonic() - start
    assert outcome.ok
    assert [r.status for r in outcome.results] == [Status.PASSED] * 3
    t_lint = float((tmp_path / "lint.start").read_text())
    t_sec = float((tmp_path / "security.start").read_text())
    t_unit = float((tmp_path / "unit.start").read_text())
    assert abs(t_lint - t_sec) < 0.8, "lint and security should start together"
    assert t_unit >= t_lint + 1.0, "unit waits for lint"
    assert elapsed < 3.5


def test_fail_fast_cancels_running_and_skips_dependents(tmp_path: Path) -> None:
    spec = {"lint": (0.1, "failed"), "security": (20, "passed"), "unit": (0.1, "passed")}
    plan = steps(("lint", ()), ("security", ()), ("unit", ("lint",)))
    out = io.StringIO()
    start = time.monotonic()
    outcome = Executor(plan, tmp_path, make(tmp_path, spec), stream=out).run()
    assert time.monotonic() - start < 10
    status = {r.stage: r.status for r in outcome.results}
    assert status == {
        "lint": Status.FAILED,
        "security": Status.CANCELLED,
        "unit": Status.SKIPPED,
    }
    assert not outcome.ok
    assert "lint output line" in out.getvalue()  # failed stage's buffered output replayed
    unit = json.loads((tmp_path / "unit.json").read_text())
    assert unit["summary"] == "skipped: needs lint failed"


def test_keep_going_runs_independent_work(tmp_path: Path) -> None:
    spec = {"lint": (0.1, "failed"), "security": (0.5, "passed"), "unit": (0.1, "passed")}
    plan = steps(("lint", ()), ("security", ()), ("unit", ("lint",)))
    outcome = Executor(
        plan, tmp_path, make(tmp_path, spec), fail_fast=False, stream=io.StringIO()
    ).run()
    status = {r.stage: r.status for r in outcome.results}
    assert status == {"lint": Status.FAILED, "security": Status.PASSED, "unit": Status.SKIPPED}


def test_stage_without_result_is_an_error(tmp_path: Path) -> None:
    spec = {"lint": (0.0, "none")}
    outcome = Executor(
        steps(("lint", ())), tmp_path, make(tmp_path, spec), stream=io.StringIO()
    ).run()
    assert outcome.results[0].status is Status.ERROR
    assert "wrote no result (exit code 1)" in outcome.results[0].summary


def test_stale_results_are_removed_before_running(tmp_path: Path) -> None:
    (tmp_path / "unit.json").write_text('{"stage": "unit", "status": "passed"}')
    spec = {"lint": (0.0, "failed"), "unit": (0.0, "passed")}
    outcome = Executor(
        steps(("lint", ()), ("unit", ("lint",))),
        tmp_path,
        make(tmp_path, spec),
        stream=io.StringIO(),
    ).run()
    assert outcome.results[1].status is Status.SKIPPED
