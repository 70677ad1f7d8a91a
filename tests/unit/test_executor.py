"""The `invoke ci` executor with scripted stand-in stages on a simulated clock: graph
order, parallelism, failure semantics, fail-fast, cancellation, double signals, hard
limits and the cancel/finish race, without starting any process."""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ci.flow import Executor
from ci.graph import Step
from ci.result import StageResult, Status, read_result, write_result


@dataclass
class Script:
    """How a stand-in stage behaves."""

    duration: float = 1.0
    status: str = "passed"  # what it writes when it ends; "none": writes nothing
    teardown: float = 0.5  # after an interrupt, it writes "cancelled" this much later
    ignores_interrupt: bool = False


@dataclass
class World:
    out: Path
    now: float = 0.0
    hooks: list[tuple[float, Callable[[], None]]] = field(default_factory=list)
    events: list[tuple[float, str, str]] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now = round(self.now + seconds, 6)
        due = [h for h in self.hooks if h[0] <= self.now]
        self.hooks = [h for h in self.hooks if h[0] > self.now]
        for _, hook in due:
            hook()

    def at(self, when: float, hook: Callable[[], None]) -> None:
        self.hooks.append((when, hook))


class FakeProc:
    def __init__(self, world: World, name: str, script: Script) -> None:
        self.world, self.name, self.script = world, name, script
        self.started = world.now
        self.interrupted_at: float | None = None
        self.killed = False
        self.code: int | None = None

    def _end(self, status: str, code: int) -> int:
        if status != "none":
            write_result(
                self.world.out,
                StageResult(self.name, Status(status), self.world.now - self.started, 5.0, status),
            )
        self.code = code
        self.world.events.append((self.world.now, self.name, f"end {status}"))
        return code

    def poll(self) -> int | None:
        if self.code is not None:
            return self.code
        now = self.world.now
        if self.killed:
            return self._end("none", -9)
        if now >= self.started + self.script.duration:
            code = 0 if self.script.status in ("passed", "skipped") else 1
            return self._end(self.script.status, code)
        if (
            self.interrupted_at is not None
            and not self.script.ignores_interrupt
            and now >= self.interrupted_at + self.script.teardown
        ):
            return self._end("cancelled", 130)
        return None

    def interrupt(self) -> None:
        self.world.events.append((self.world.now, self.name, "interrupt"))
        if self.interrupted_at is None:
            self.interrupted_at = self.world.now

    def kill(self) -> None:
        self.world.events.append((self.world.now, self.name, "kill"))
        self.killed = True


class FakeLauncher:
    def __init__(self, world: World, scripts: dict[str, Script]) -> None:
        self.world, self.scripts = world, scripts
        self.procs: dict[str, FakeProc] = {}

    def start(self, name: str, console: Path) -> FakeProc:
        console.write_text(f"{name} output line\n")
        self.world.events.append((self.world.now, name, "start"))
        proc = FakeProc(self.world, name, self.scripts[name])
        self.procs[name] = proc
        return proc


PIPELINE = [
    Step("lint", (), True, 60, 180),
    Step("security", (), True, 120, 360),
    Step("unit", ("lint",), True, 120, 360),
    Step("integration", ("unit",), True, 300, 900),
]


def run(
    tmp_path: Path,
    scripts: dict[str, Script],
    steps: list[Step] | None = None,
    *,
    setup: Callable[[World, Executor], None] | None = None,
    stream: io.StringIO | None = None,
    **kw,
) -> tuple[World, Executor, dict[str, StageResult], int]:
    world = World(tmp_path)
    launcher = FakeLauncher(world, scripts)
    ex = Executor(
        steps or PIPELINE,
        tmp_path,
        launcher,
        stream=stream or io.StringIO(),
        clock=world.clock,
        sleep=world.sleep,
        install_signals=False,
        **kw,
    )
    if setup:
        setup(world, ex)
    outcome = ex.run()
    results = {r.stage: r for r in outcome.results}
    for name in results:  # every planned stage left a readable result file
        assert read_result(tmp_path, name) is not None, name
    return world, ex, results, outcome.exit_code


def status(results: dict[str, StageResult]) -> dict[str, str]:
    return {name: r.status.value for name, r in results.items()}


def starts(world: World) -> dict[str, float]:
    return {name: t for t, name, what in world.events if what == "start"}


def test_graph_order_and_parallelism(tmp_path: Path) -> None:
    scripts = {n: Script(duration=2.0) for n in ("lint", "security", "unit", "integration")}
    world, _, results, code = run(tmp_path, scripts, parallelism=2)
    assert code == 0 and set(status(results).values()) == {"passed"}
    t = starts(world)
    assert t["lint"] == t["security"] == 0.0  # independent: side by side
    assert t["unit"] >= 2.0 and t["integration"] >= t["unit"] + 2.0
    running_at_once = max(
        sum(1 for n in t if t[n] <= moment < t[n] + 2.0) for moment in (0.0, 2.1, 4.1)
    )
    assert running_at_once <= 2


def test_parallelism_one_runs_one_at_a_time(tmp_path: Path) -> None:
    scripts = {n: Script(duration=1.0) for n in ("lint", "security", "unit", "integration")}
    world, _, _, _ = run(tmp_path, scripts, parallelism=1)
    times = sorted(starts(world).values())
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))


def test_failure_blocks_dependents_and_independent_stages_finish(tmp_path: Path) -> None:
    scripts = {
        "lint": Script(0.5, "failed"),
        "security": Script(3.0, "passed"),
        "unit": Script(),
        "integration": Script(),
    }
    _, _, results, code = run(tmp_path, scripts)
    assert status(results) == {
        "lint": "failed",
        "security": "passed",  # independent: ran to the end
        "unit": "blocked",
        "integration": "blocked",
    }
    assert results["unit"].summary == "not run: needs lint failed"
    assert results["integration"].summary == "not run: needs unit blocked"
    assert code == 1


def test_security_error_never_stops_the_tests(tmp_path: Path) -> None:
    # An unreachable advisory database must not keep lint, unit and integration from
    # running and reporting: security is its own job.
    scripts = {
        "lint": Script(1.0),
        "security": Script(0.1, "error"),
        "unit": Script(1.0),
        "integration": Script(1.0),
    }
    _, _, results, code = run(tmp_path, scripts)
    assert status(results) == {
        "lint": "passed",
        "security": "error",
        "unit": "passed",
        "integration": "passed",
    }
    assert code == 1


def test_benign_skip_lets_dependents_run_and_blocked_is_never_green(tmp_path: Path) -> None:
    steps = [Step("unit", (), True, 1), Step("integration", ("unit",), True, 1)]
    steps.append(Step("coverage", ("integration",), True, 1))
    scripts = {"unit": Script(), "integration": Script(0.1, "skipped"), "coverage": Script()}
    _, _, results, code = run(tmp_path, scripts, steps)
    assert status(results) == {"unit": "passed", "integration": "skipped", "coverage": "passed"}
    assert code == 0
    assert Status.SKIPPED.ok and not Status.BLOCKED.ok


def test_advisory_stage_failure_does_not_block_its_dependents(tmp_path: Path) -> None:
    steps = [Step("bench", (), False, 1), Step("report", ("bench",), True, 1)]
    _, _, results, code = run(tmp_path, {"bench": Script(0.1, "failed"), "report": Script()}, steps)
    assert status(results) == {"bench": "failed", "report": "passed"}
    assert code == 0  # a non-blocking stage reports, it does not gate


def test_fail_fast_cancels_running_and_starts_nothing_more(tmp_path: Path) -> None:
    scripts = {
        "lint": Script(0.5, "failed"),
        "security": Script(30.0),
        "unit": Script(),
        "integration": Script(),
    }
    world, _, results, code = run(tmp_path, scripts, fail_fast=True)
    assert status(results) == {
        "lint": "failed",
        "security": "cancelled",
        "unit": "blocked",
        "integration": "blocked",
    }
    assert "fail-fast: lint failed" in read_result(tmp_path, "security").summary
    assert world.now < 5 and code == 1


def test_fail_fast_leaves_uninterruptible_stages_alone(tmp_path: Path) -> None:
    steps = [Step("lint", (), True, 1), Step("rollout", (), True, 60, interruptible=False)]
    scripts = {"lint": Script(0.1, "failed"), "rollout": Script(5.0)}
    world, _, results, _ = run(tmp_path, scripts, steps, fail_fast=True)
    assert status(results) == {"lint": "failed", "rollout": "passed"}
    assert not any(what == "interrupt" for _, _, what in world.events)


def test_a_stage_that_finished_in_the_same_poll_as_a_cancel_keeps_its_verdict(
    tmp_path: Path,
) -> None:
    scripts = {
        "lint": Script(1.0, "failed"),
        "security": Script(1.0, "passed"),  # ends at the very poll lint's failure is seen
        "unit": Script(),
        "integration": Script(),
    }
    _, _, results, _ = run(tmp_path, scripts, fail_fast=True)
    assert results["security"].status is Status.PASSED
    assert read_result(tmp_path, "security").status is Status.PASSED


def test_interrupt_cancels_everything_and_every_result_is_written(tmp_path: Path) -> None:
    scripts = {n: Script(duration=10.0) for n in ("lint", "security", "unit", "integration")}

    def setup(world: World, ex: Executor) -> None:
        world.at(2.0, lambda: ex.on_signal(signal.SIGINT))

    _, _, results, code = run(tmp_path, scripts, setup=setup)
    assert status(results) == {
        "lint": "cancelled",
        "security": "cancelled",
        "unit": "cancelled",
        "integration": "cancelled",
    }
    assert results["unit"].summary == "not started: interrupted (SIGINT)"
    assert code == 130


def test_second_signal_during_teardown_does_not_cut_it_short(tmp_path: Path) -> None:
    scripts = {
        "lint": Script(10.0, teardown=8.0),
        "security": Script(10.0, teardown=8.0),
        "unit": Script(),
        "integration": Script(),
    }

    def setup(world: World, ex: Executor) -> None:
        world.at(1.0, lambda: ex.on_signal(signal.SIGINT))
        world.at(3.5, lambda: ex.on_signal(signal.SIGTERM))  # GitHub: 7.5 s later in reality

    out = io.StringIO()
    world, _, results, code = run(tmp_path, scripts, setup=setup, stream=out)
    assert not any(what == "kill" for _, _, what in world.events)
    ends = {name: t for t, name, what in world.events if what.startswith("end")}
    assert ends["lint"] >= 9.0 and ends["security"] >= 9.0  # teardown ran to its end
    assert results["lint"].status is Status.CANCELLED
    assert "SIGTERM: already cancelling; teardown continues" in out.getvalue()
    assert code == 130


def test_third_signal_kills_and_still_writes_results(tmp_path: Path) -> None:
    scripts = {n: Script(10.0, ignores_interrupt=True) for n in ("lint", "security")}
    steps = PIPELINE[:2]

    def setup(world: World, ex: Executor) -> None:
        for t in (1.0, 1.5, 2.0):
            world.at(t, lambda: ex.on_signal(signal.SIGINT))

    world, _, results, code = run(tmp_path, scripts, steps, setup=setup)
    assert {n for _, n, what in world.events if what == "kill"} == {"lint", "security"}
    assert status(results) == {"lint": "cancelled", "security": "cancelled"}
    assert "no result written" in results["lint"].summary
    assert code == 130


def test_hard_limit_stops_the_stage_and_reports_timeout(tmp_path: Path) -> None:
    steps = [Step("unit", (), True, 2.0, 5.0), Step("integration", ("unit",), True, 1)]
    scripts = {"unit": Script(duration=1000.0, teardown=1.0), "integration": Script()}
    world, _, results, code = run(tmp_path, scripts, steps)
    assert results["unit"].status is Status.TIMEOUT
    assert "hard limit of 5s reached (budget 2s)" in results["unit"].summary
    assert results["integration"].status is Status.BLOCKED
    assert 5.0 <= world.now < 8.0 and code == 1


def test_hung_stage_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    steps = [Step("unit", (), True, 2.0, 5.0)]
    scripts = {"unit": Script(duration=1000.0, ignores_interrupt=True)}
    world, _, results, _ = run(tmp_path, scripts, steps, grace_s=10.0)
    kills = [t for t, _, what in world.events if what == "kill"]
    assert kills and 15.0 <= kills[0] < 16.0
    assert results["unit"].status is Status.TIMEOUT
    assert results["unit"].summary.endswith("; killed; no result written (exit code -9)")


def test_stage_without_a_result_is_an_error(tmp_path: Path) -> None:
    steps = [Step("lint", (), True, 1)]
    _, _, results, code = run(tmp_path, {"lint": Script(0.1, "none")}, steps)
    assert results["lint"].status is Status.ERROR
    assert "wrote no result (exit code 1)" in results["lint"].summary
    assert code == 1


def test_internal_error_has_its_own_exit_code(tmp_path: Path) -> None:
    steps = [Step("lint", (), True, 1)]
    _, _, results, code = run(tmp_path, {"lint": Script(0.1, "internal-error")}, steps)
    assert results["lint"].status is Status.INTERNAL and code == 70


def test_closed_stdout_does_not_stop_the_pipeline(tmp_path: Path) -> None:
    class Closed(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            Closed.writes += 1
            if Closed.writes > 2:
                raise BrokenPipeError(32, "Broken pipe")
            return super().write(text)

    scripts = {n: Script(duration=1.0) for n in ("lint", "security", "unit", "integration")}
    _, ex, results, code = run(tmp_path, scripts, stream=Closed())
    assert code == 0 and set(status(results).values()) == {"passed"}
    assert ex.stream is None  # went quiet instead of raising


def test_stale_results_are_removed_before_running(tmp_path: Path) -> None:
    (tmp_path / "unit.json").write_text(json.dumps({"stage": "unit", "status": "passed"}))
    steps = [Step("lint", (), True, 1), Step("unit", ("lint",), True, 1)]
    _, _, results, _ = run(tmp_path, {"lint": Script(0.1, "failed"), "unit": Script()}, steps)
    assert results["unit"].status is Status.BLOCKED


def test_real_signal_handlers_only_record_and_are_restored(tmp_path: Path) -> None:
    steps = [Step("lint", (), True, 1)]
    world = World(tmp_path)
    launcher = FakeLauncher(world, {"lint": Script(5.0)})
    before = signal.getsignal(signal.SIGINT)
    ex = Executor(
        steps, tmp_path, launcher, stream=io.StringIO(), clock=world.clock, sleep=world.sleep
    )
    world.at(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    outcome = ex.run()
    assert ex.signals == ["SIGINT"]
    assert outcome.results[0].status is Status.CANCELLED and outcome.interrupted
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("github", [False, True])
def test_failed_stage_output_is_replayed(tmp_path: Path, github: bool) -> None:
    out = io.StringIO()
    steps = [Step("lint", (), True, 1)]
    run(tmp_path, {"lint": Script(0.1, "failed")}, steps, stream=out, github=github)
    text = out.getvalue()
    assert "lint output line" in text
    if github:
        group = text.index("::group::lint output")
        end = text.index("::endgroup::")
        assert group < end < text.index("── last lines of lint ──")


def test_exclusive_stage_runs_alone(tmp_path: Path) -> None:
    steps = [
        Step("unit", (), True, 1),
        Step("bench", (), True, 1, exclusive=True),
        Step("security", (), True, 1),
    ]
    scripts = {"unit": Script(2.0), "bench": Script(2.0), "security": Script(2.0)}
    world, _, _, code = run(tmp_path, scripts, steps, parallelism=3)
    assert code == 0
    t = starts(world)
    spans = {n: (t[n], t[n] + 2.0) for n in t}
    b0, b1 = spans["bench"]
    for other in ("unit", "security"):
        o0, o1 = spans[other]
        assert o1 <= b0 or o0 >= b1, f"{other} overlapped the exclusive bench"


# -- early start: integration starts beside unit, unit still gates its verdict ----------

EARLY = [
    Step("lint", (), True, 60),
    Step("unit", ("lint",), True, 120),
    Step("integration", ("unit",), True, 300, starts_after=("lint",)),
    Step("bench", ("integration",), True, 180),
]


def test_early_stage_runs_beside_its_need_and_its_dependents_wait_for_the_verdict(
    tmp_path: Path,
) -> None:
    scripts = {
        "lint": Script(1.0),
        "unit": Script(3.0),
        "integration": Script(1.5),  # ends before unit: its verdict waits for unit's
        "bench": Script(1.0),
    }
    world, _, results, code = run(tmp_path, scripts, EARLY, parallelism=2)
    assert code == 0 and set(status(results).values()) == {"passed"}
    t = starts(world)
    assert t["unit"] == pytest.approx(t["integration"], abs=0.1)  # side by side after lint
    assert t["integration"] >= 1.0
    ends = {name: when for when, name, what in world.events if what.startswith("end")}
    assert t["bench"] >= ends["unit"]  # a dependent waits for the held verdict
    assert world.now < 1.0 + 3.0 + 1.0 + 0.5  # lint, unit, bench: not the sum of all four
    assert results["integration"].summary == "passed"  # its own verdict, kept


def test_need_failing_while_the_early_stage_runs_stops_it_as_blocked(tmp_path: Path) -> None:
    scripts = {
        "lint": Script(1.0),
        "unit": Script(1.0, "failed"),
        "integration": Script(10.0, teardown=0.5),
        "bench": Script(),
    }
    world, _, results, code = run(tmp_path, scripts, EARLY)
    assert status(results) == {
        "lint": "passed",
        "unit": "failed",
        "integration": "blocked",
        "bench": "blocked",
    }
    assert results["integration"].summary == (
        "not counted: needs unit failed (stopped; it had started early)"
    )
    assert read_result(tmp_path, "integration").status is Status.BLOCKED
    assert (2.0, "integration", "interrupt") in [(round(a, 1), b, c) for a, b, c in world.events]
    assert world.now < 4 and code == 1


def test_need_failing_after_the_early_stage_ended_sets_its_run_aside(tmp_path: Path) -> None:
    scripts = {
        "lint": Script(1.0),
        "unit": Script(3.0, "failed"),
        "integration": Script(1.0),  # passed, but unit had not passed yet
        "bench": Script(),
    }
    _, _, results, code = run(tmp_path, scripts, EARLY)
    assert status(results)["integration"] == "blocked"
    assert results["integration"].summary == (
        "not counted: needs unit failed (it ran early: passed)"
    )
    assert read_result(tmp_path, "integration").status is Status.BLOCKED  # file overwritten
    assert results["bench"].summary == "not run: needs integration blocked"
    assert code == 1


def test_early_failure_counts_once_its_need_passed(tmp_path: Path) -> None:
    scripts = {
        "lint": Script(1.0),
        "unit": Script(3.0),
        "integration": Script(1.0, "failed"),
        "bench": Script(),
    }
    _, _, results, code = run(tmp_path, scripts, EARLY)
    assert status(results) == {
        "lint": "passed",
        "unit": "passed",
        "integration": "failed",
        "bench": "blocked",
    }
    assert code == 1


def test_lint_failure_blocks_both_and_nothing_starts(tmp_path: Path) -> None:
    scripts = {n: Script() for n in ("unit", "integration", "bench")}
    scripts["lint"] = Script(1.0, "failed")
    world, _, results, _ = run(tmp_path, scripts, EARLY)
    assert status(results) == {
        "lint": "failed",
        "unit": "blocked",
        "integration": "blocked",
        "bench": "blocked",
    }
    assert set(starts(world)) == {"lint"}
    assert results["integration"].summary == "not run: needs unit blocked, lint failed"


def test_interrupt_while_an_early_verdict_is_held_cancels_it(tmp_path: Path) -> None:
    scripts = {
        "lint": Script(1.0),
        "unit": Script(10.0),
        "integration": Script(1.0),
        "bench": Script(),
    }

    def setup(world: World, ex: Executor) -> None:
        world.at(4.0, lambda: ex.on_signal(signal.SIGINT))

    _, _, results, code = run(tmp_path, scripts, EARLY, setup=setup)
    assert status(results) == {
        "lint": "passed",
        "unit": "cancelled",
        "integration": "cancelled",
        "bench": "cancelled",
    }
    assert results["integration"].summary == (
        "not counted: needs unit cancelled (it ran early: passed)"
    )
    assert code == 130


def test_need_failing_in_the_same_poll_the_early_stage_ends_sets_its_run_aside(
    tmp_path: Path,
) -> None:
    # unit started beside lint and both end at the same moment: lint's failure is seen
    # first in that poll, so unit's own pass must not count
    steps = [Step("lint", (), True, 60), Step("unit", ("lint",), True, 120, starts_after=())]
    scripts = {"lint": Script(1.0, "failed"), "unit": Script(1.0)}
    _, _, results, code = run(tmp_path, scripts, steps)
    assert status(results) == {"lint": "failed", "unit": "blocked"}
    assert results["unit"].summary == "not counted: needs lint failed (it ran early: passed)"
    assert read_result(tmp_path, "unit").status is Status.BLOCKED
    assert code == 1
