"""The `invoke ci` executor: runs stages as a dependency graph, independent stages
side by side (each as its own `nox -s <stage>` process with buffered output),
fail-fast, with live progress, and always leaves one result file per stage.

Planning (`plan`) is a pure function; `Executor` does the running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ci.errors import ConfigError
from ci.result import StageResult, Status, read_result, result_path, write_result
from ci.stages import STAGES, StageSpec

HEARTBEAT_S = 15.0
POLL_S = 0.1
CANCEL_GRACE_S = 30.0


@dataclass(frozen=True)
class Step:
    """One planned stage and the stages it waits for (restricted to the plan)."""

    name: str
    needs: tuple[str, ...]
    blocking: bool
    budget_s: float


def plan(
    selected: Sequence[str] | None,
    budgets: Callable[[str], float],
    stages: Sequence[StageSpec] = STAGES,
) -> list[Step]:
    """The steps to run, in a valid order. `selected` None means every `in_ci` stage.
    A need outside the selection is dropped (running `unit` alone does not pull in
    `lint`). Unknown names and cycles raise ConfigError."""
    by_name = {s.name: s for s in stages}
    names = [s.name for s in stages if s.in_ci] if selected is None else list(selected)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(
            f"unknown stage(s) {', '.join(unknown)}; known stages: {', '.join(by_name)}"
        )
    chosen = set(names)
    ordered: list[Step] = []
    done: set[str] = set()
    pending = [n for n in by_name if n in chosen]
    while pending:
        progress = False
        for name in list(pending):
            spec = by_name[name]
            needs = tuple(n for n in spec.needs if n in chosen)
            if all(n in done for n in needs):
                ordered.append(Step(name, needs, spec.blocking, budgets(name)))
                done.add(name)
                pending.remove(name)
                progress = True
        if not progress:
            raise ConfigError(f"stage dependency cycle among: {', '.join(pending)}")
    return ordered


@dataclass
class _Running:
    step: Step
    proc: subprocess.Popen[bytes]
    console: Path
    started: float
    last_beat: float


@dataclass
class FlowOutcome:
    """Every planned stage's result, in plan order, and whether the flow is green."""

    results: list[StageResult] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(
            r.status in (Status.PASSED, Status.SKIPPED) or not r.blocking for r in self.results
        )


class Executor:
    """Runs a plan. `command(name)` gives the argv that runs one stage (normally
    `python -m nox -s name`); the stage itself writes `<out_dir>/<name>.json`."""

    def __init__(
        self,
        steps: list[Step],
        out_dir: Path,
        command: Callable[[str], list[str]],
        *,
        parallelism: int = 2,
        fail_fast: bool = True,
        stream: TextIO | None = None,
        github: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.steps = steps
        self.out_dir = out_dir
        self.command = command
        self.parallelism = max(1, parallelism)
        self.fail_fast = fail_fast
        self.stream = stream or sys.stdout
        self.github = github
        self.env = env
        self.results: dict[str, StageResult] = {}
        self.running: dict[str, _Running] = {}

    def say(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def run(self) -> FlowOutcome:
        """Run to completion (or first blocking failure); Ctrl-C cancels and tears down."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for step in self.steps:
            result_path(self.out_dir, step.name).unlink(missing_ok=True)
        interrupted = False
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            self._loop()
        except KeyboardInterrupt:
            interrupted = True
            self.say("interrupted: cancelling running stages (they tear down their services)")
            self._cancel_all("interrupted")
        finally:
            signal.signal(signal.SIGTERM, previous)
        for step in self.steps:
            if step.name not in self.results:
                self._finish_without_running(step, Status.CANCELLED, "not started: interrupted")
        return FlowOutcome([self.results[s.name] for s in self.steps], interrupted)

    def _loop(self) -> None:
        stop = False
        why = ""
        while True:
            if not stop:
                for step in self._ready():
                    if len(self.running) >= self.parallelism:
                        break
                    self._start(step)
            if not self.running:
                if stop or not self._ready():
                    break
                continue
            time.sleep(POLL_S)
            for name, run in list(self.running.items()):
                if name not in self.running:  # cancelled by an earlier failure this round
                    continue
                if run.proc.poll() is None:
                    self._heartbeat(run)
                    continue
                del self.running[name]
                result = self._collect(run)
                failed = result.status in (Status.FAILED, Status.ERROR)
                if failed and result.blocking and self.fail_fast and not stop:
                    stop = True
                    why = f"{name} {result.status.value}"
                    self._cancel_all(why)
            if stop:
                self._skip_unstartable(why)

    def _ready(self) -> list[Step]:
        ready = []
        for step in self.steps:
            if step.name in self.results or step.name in self.running:
                continue
            blocked = [n for n in step.needs if n in self.results and not self.results[n].status.ok]
            if blocked:
                why = ", ".join(f"{n} {self.results[n].status.value}" for n in blocked)
                self._finish_without_running(step, Status.SKIPPED, f"skipped: needs {why}")
                continue
            if all(n in self.results for n in step.needs):
                ready.append(step)
        return ready

    def _skip_unstartable(self, why: str) -> None:
        self._ready()  # marks the steps whose own needs failed, with that reason
        for step in self.steps:
            if step.name not in self.results and step.name not in self.running:
                self._finish_without_running(step, Status.SKIPPED, f"skipped: fail-fast ({why})")

    def _start(self, step: Step) -> None:
        console = self.out_dir / f"{step.name}.console.log"
        with console.open("wb") as fh:
            proc = subprocess.Popen(
                self.command(step.name),
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our Ctrl-C handling decides what the stage gets
                env=self.env,
            )
        now = time.monotonic()
        self.running[step.name] = _Running(step, proc, console, now, now)
        self.say(f"▶ {step.name} started (budget {step.budget_s:.0f}s)")

    def _heartbeat(self, run: _Running) -> None:
        now = time.monotonic()
        if now - run.last_beat >= HEARTBEAT_S:
            run.last_beat = now
            elapsed = now - run.started
            over = " — over budget" if elapsed > run.step.budget_s else ""
            last = _last_line(run.console)
            self.say(
                f"… {run.step.name} running {elapsed:.0f}s / {run.step.budget_s:.0f}s{over}"
                + (f": {last}" if last else "")
            )

    def _collect(self, run: _Running) -> StageResult:
        elapsed = time.monotonic() - run.started
        result = read_result(self.out_dir, run.step.name)
        if result is None:
            code = run.proc.returncode
            result = StageResult(
                run.step.name,
                Status.ERROR,
                elapsed,
                run.step.budget_s,
                summary=f"stage wrote no result (exit code {code}); see {run.console}",
            )
            write_result(self.out_dir, result)
        result.blocking = run.step.blocking
        self.results[run.step.name] = result
        self.say(f"{_icon(result.status)} {run.step.name} {result.status.value} in {elapsed:.1f}s")
        if not result.status.ok and result.status is not Status.SKIPPED:
            self._replay(run)
        return result

    def _replay(self, run: _Running) -> None:
        """Show a failed stage's buffered output, grouped under GitHub Actions."""
        try:
            text = run.console.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        if self.github:
            self.say(f"::group::{run.step.name} output")
        else:
            self.say(f"──── {run.step.name} output ────")
        self.stream.write(text if text.endswith("\n") or not text else text + "\n")
        self.say("::endgroup::" if self.github else f"──── end of {run.step.name} output ────")

    def _cancel_all(self, why: str) -> None:
        for run in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.proc.pid, signal.SIGINT)
        deadline = time.monotonic() + CANCEL_GRACE_S
        for name, run in list(self.running.items()):
            try:
                run.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.proc.pid, signal.SIGKILL)
                run.proc.wait()
            del self.running[name]
            result = read_result(self.out_dir, name)
            if result is None or result.status is not Status.CANCELLED:
                result = StageResult(
                    name, Status.CANCELLED, time.monotonic() - run.started, run.step.budget_s
                )
            result.summary = f"cancelled ({why}); torn down"
            write_result(self.out_dir, result)
            result.blocking = run.step.blocking
            self.results[name] = result
            self.say(f"■ {name} cancelled ({why})")

    def _finish_without_running(self, step: Step, status: Status, why: str) -> None:
        result = StageResult(step.name, status, 0.0, step.budget_s, summary=why)
        result.blocking = step.blocking
        write_result(self.out_dir, result)
        self.results[step.name] = result


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _icon(status: Status) -> str:
    return {
        Status.PASSED: "✔",
        Status.FAILED: "✘",
        Status.ERROR: "✘",
        Status.SKIPPED: "○",
        Status.CANCELLED: "■",
    }[status]


def _last_line(path: Path) -> str:
    """The last non-empty line a running stage printed (progress for the heartbeat)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 2048))
            lines = [x.strip() for x in fh.read().decode(errors="replace").splitlines()]
    except OSError:
        return ""
    line = next((x for x in reversed(lines) if x), "")
    return line[:120]


def nox_command(noxfile: Path, extra: Sequence[str] = ()) -> Callable[[str], list[str]]:
    """argv factory running one stage through nox with this interpreter."""

    def command(name: str) -> list[str]:
        return [sys.executable, "-m", "nox", "-f", str(noxfile), "-s", name, *extra]

    return command
