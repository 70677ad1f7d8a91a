"""The `invoke ci` executor: runs stages as a dependency graph, independent stages side
by side (each its own `nox -s <stage>` process, output buffered to
`<out_dir>/<stage>.console.log`), and always leaves one result file per stage.

Semantics follow GitHub Actions' `needs`: a stage that does not pass blocks what depends
on it (status `blocked`), independent stages still run and report. `fail_fast` instead
cancels everything running and starts nothing more after the first blocking failure
(stages marked non-interruptible, like a production rollout, are left to finish).

Promises kept whatever happens:
- every planned stage ends with a result file, whatever signal, crash or closed terminal;
- a stage past its hard limit is asked to stop (SIGINT to its process group), killed after
  the grace period, and reported `timeout`;
- a second SIGINT/SIGTERM during cancellation is noted, not obeyed (GitHub sends SIGTERM
  7.5 s after SIGINT): teardown goes on; a third escalates to SIGKILL of every stage group;
- a result a stage wrote itself (passed, failed, ...) is never overwritten by a cancel
  that arrived in the same poll;
- a closed stdout (`invoke ci | head`) stops the printing, not the pipeline.

Planning (`plan`, ci/graph.py) is a pure function; the executor takes a launcher, a clock
and a sleep function, so its behaviour is tested in the fast tier with scripted stand-in
stages. What it shows goes through a `Display` (ci/progress.py): plain lines by default, the live
terminal view (ci/live.py) when `invoke ci` runs in a terminal.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ci.console import Writer
from ci.graph import Step
from ci.progress import Display, LineDisplay, Running
from ci.registry import STAGES, StageSpec
from ci.result import StageResult, Status, read_result, result_path, write_result

POLL_S = 0.05


class Handle(Protocol):
    """A running stage process."""

    def poll(self) -> int | None:
        """Its exit code, or None while it runs."""
        ...

    def interrupt(self) -> None:
        """Ask it to stop and tear down (SIGINT to its process group)."""
        ...

    def kill(self) -> None:
        """Stop it now (SIGKILL to its process group)."""
        ...


class Launcher(Protocol):
    """Starts stage processes."""

    def start(self, name: str, console: Path) -> Handle:
        """Start stage `name`, its output going to `console`."""
        ...


class _Process:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def poll(self) -> int | None:
        return self.proc.poll()

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)

    def interrupt(self) -> None:
        self._signal(signal.SIGINT)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


class ProcessLauncher:
    """Runs `command(name)` per stage in its own session (our signal handling decides what
    a stage gets), stdout and stderr into the console file, optionally handing the stage
    the add-mask channel's write end."""

    def __init__(
        self,
        command: Callable[[str], list[str]],
        env: Mapping[str, str] | None = None,
        mask_fd: int | None = None,
    ) -> None:
        self.command = command
        self.env = dict(os.environ if env is None else env)
        self.mask_fd = mask_fd
        if mask_fd is not None:
            from ci.console import MASK_FD_ENV

            self.env[MASK_FD_ENV] = str(mask_fd)

    def start(self, name: str, console: Path) -> Handle:
        with console.open("wb") as fh:
            proc = subprocess.Popen(
                self.command(name),
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
                pass_fds=(self.mask_fd,) if self.mask_fd is not None else (),
            )
        return _Process(proc)


class MaskChannel:
    """A pipe whose write end stage processes get (`CIPIPE__MASK_FD`) for `::add-mask::`
    commands; a thread forwards what arrives to the runner's real terminal."""

    def __init__(self, forward: Callable[[str], None]) -> None:
        self._read, self.write_fd = os.pipe()
        self._forward = forward
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        with os.fdopen(self._read, "r", encoding="utf-8", errors="replace") as pipe:
            for line in pipe:
                if line.startswith("::add-mask::"):
                    self._forward(line)

    def close(self) -> None:
        """Close our write end and wait for what is still in flight."""
        with contextlib.suppress(OSError):
            os.close(self.write_fd)
        self._thread.join(timeout=5)


@dataclass
class _Running:
    step: Step
    handle: Handle
    console: Path
    started: float
    stop_reason: str = ""  # why we asked it to stop ("" = we did not)
    stop_status: Status = Status.CANCELLED
    stop_at: float = 0.0


@dataclass
class FlowOutcome:
    """Every planned stage's result, in plan order, and whether the flow is green."""

    results: list[StageResult] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(r.status.ok or not r.blocking for r in self.results)

    @property
    def exit_code(self) -> int:
        """130 interrupted, 70 a pipeline defect, 1 any blocking stage not green, else 0."""
        if self.interrupted:
            return 130
        red = [r for r in self.results if r.blocking and not r.status.ok]
        if any(r.status is Status.INTERNAL for r in red):
            return 70
        return 1 if red else 0


class Executor:
    """Runs a plan with a launcher (normally `ProcessLauncher(nox_command(...))`); each
    stage itself writes `<out_dir>/<name>.json`, the executor fills in the rest."""

    def __init__(
        self,
        steps: list[Step],
        out_dir: Path,
        launcher: Launcher,
        *,
        parallelism: int = 2,
        fail_fast: bool = False,
        stream: Writer | None = None,
        github: bool = False,
        grace_s: float = 20.0,
        redact: Callable[[str], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        install_signals: bool = True,
        display: Display | None = None,
        on_result: Callable[[StageResult], None] | None = None,
    ) -> None:
        self.steps = steps
        self.out_dir = out_dir
        self.launcher = launcher
        self.parallelism = max(1, parallelism)
        self.fail_fast = fail_fast
        self.github = github
        self.grace_s = grace_s
        self.redact = redact or (lambda text: text)
        self.on_result = on_result or (lambda result: None)
        self.display: Display = display or LineDisplay(
            stream or sys.stdout, github=github, redact=self.redact
        )
        self.clock = clock
        self.sleep = sleep
        self.install_signals = install_signals
        self.results: dict[str, StageResult] = {}
        self.running: dict[str, _Running] = {}
        # Stages that ended before all their needs did (started early): their verdict
        # waits for those needs. Name -> (the run, its exit code, its wall time).
        self.held: dict[str, tuple[_Running, int | None, float]] = {}
        self.signals: list[str] = []
        self._cancel_reason = ""  # set once: everything running is being cancelled
        self._internal = False  # the loop itself failed (a defect): see _crashed
        self._noted_second = False
        self._escalated = False

    # -- output -----------------------------------------------------------------------

    @property
    def stream(self) -> Writer | None:
        """The plain display's stream (None once its reader has gone)."""
        return getattr(self.display, "stream", None)

    def say(self, text: str) -> None:
        """A note to the display; a closed terminal makes it quiet."""
        self.display.note(text)

    # -- signals ----------------------------------------------------------------------

    def on_signal(self, signum: int, _frame: object = None) -> None:
        """Signal handler: only records; the loop acts on it between polls."""
        self.signals.append(signal.Signals(signum).name)

    def _handle_signals(self) -> None:
        count = len(self.signals)
        if not count:
            return
        if not self._cancel_reason:
            self._cancel_reason = f"interrupted ({self.signals[0]})"
            self.say(
                f"{self.signals[0]}: cancelling the running stages; they tear down "
                f"what they started (up to {self.grace_s:.0f}s)"
            )
            self._stop_all(self._cancel_reason, include_uninterruptible=True)
        if count == 2 and not self._noted_second:
            self._noted_second = True
            self.say(f"{self.signals[1]}: already cancelling; teardown continues")
        if count >= 3 and not self._escalated:
            self._escalated = True
            self.say(f"{self.signals[2]}: killing every stage now")
            for run in self.running.values():
                run.handle.kill()

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> FlowOutcome:
        """Run to completion (or cancellation); always returns every step's result."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for step in self.steps:
            result_path(self.out_dir, step.name).unlink(missing_ok=True)
        previous: dict[signal.Signals, object] = {}
        if self.install_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self.on_signal)
        try:
            self._loop()
        except Exception as exc:  # a defect here: every stage still gets a result
            self._crashed(exc)
        finally:
            try:
                self._wrap_up(previous)
            finally:
                self.display.close()
        return FlowOutcome(
            [self.results[s.name] for s in self.steps], interrupted=bool(self.signals)
        )

    def _crashed(self, exc: Exception) -> None:
        """The loop itself failed: stop everything, say so in one line (the traceback
        goes to `executor.log`), and let the wrap-up give each stage its result."""
        log = self.out_dir / "executor.log"
        with contextlib.suppress(OSError):
            log.write_text(self.redact("".join(traceback.format_exception(exc))))
        text = (str(exc).strip().splitlines() or [""])[0]
        self._cancel_reason = f"internal error in the executor: {type(exc).__name__}: {text}"
        self._internal = True
        self.say(f"{self._cancel_reason} (a defect in the pipeline; traceback in {log})")
        for run in self.running.values():
            run.stop_reason, run.stop_status = self._cancel_reason, Status.INTERNAL

    def _wrap_up(self, previous: dict[signal.Signals, object]) -> None:
        """Restore the signal handlers and give every step a result, whatever happened."""
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        for run in list(self.running.values()):  # only after a crash of the loop itself
            run.handle.kill()
            self._finish(run, None)
        self._settle_held(final=True)
        for step in self.steps:
            if step.name not in self.results:
                why = self._cancel_reason or "not started"
                status = Status.INTERNAL if self._internal else Status.CANCELLED
                self._record(step, status, f"not started: {why}")

    def _loop(self) -> None:
        while True:
            self._handle_signals()
            self._settle_held()
            if not self.signals:  # interrupted: what has not started is cancelled, not blocked
                self._block_unrunnable()
            if not self._cancel_reason:
                for step in self._ready():
                    if not self._may_start(step):
                        break
                    self._start(step)
            # nothing running and nothing to start: done (a held stage whose need never
            # ran is settled by the wrap-up)
            if not self.running and (self._cancel_reason or not self._ready()):
                return
            if not self._poll():  # nothing ended (a replayed stage ends at once): wait
                self.sleep(POLL_S)
                self._poll()

    def _poll(self) -> bool:
        """Collect the stages that ended, watch the others; True when one ended."""
        now = self.clock()
        ended = False
        for name, run in list(self.running.items()):
            code = run.handle.poll()
            if code is not None:
                del self.running[name]
                result = self._finish(run, code)
                if result is not None:
                    self._after(result)
                ended = True
            else:
                self._watch(run, now)
        self.display.tick(
            [
                Running(r.step, now - r.started, r.console, r.stop_reason)
                for r in self.running.values()
            ]
        )
        return ended

    def _waiting(self) -> list[Step]:
        """The steps not started yet."""
        return [
            s
            for s in self.steps
            if s.name not in self.results and s.name not in self.running and s.name not in self.held
        ]

    def _ready(self) -> list[Step]:
        return [s for s in self._waiting() if all(n in self.results for n in s.waits_for)]

    def _failed(self, step: Step) -> list[str]:
        """The stages gating `step` that ended without passing (and block)."""
        return [
            n
            for n in step.gates
            if n in self.results and not self.results[n].status.ok and self.results[n].blocking
        ]

    def _why(self, bad: Sequence[str]) -> str:
        return ", ".join(f"{n} {self.results[n].status.value}" for n in bad)

    def _may_start(self, step: Step) -> bool:
        if len(self.running) >= self.parallelism:
            return False
        if any(run.step.exclusive for run in self.running.values()):
            return False
        return not (step.exclusive and self.running)

    def _block_unrunnable(self) -> None:
        """A step with a need that ended without passing is blocked (GitHub: skipped);
        one that started early on that need is stopped."""
        changed = True
        while changed:
            changed = False
            for step in self._waiting():
                bad = self._failed(step)
                if bad:
                    self._record(step, Status.BLOCKED, f"not run: needs {self._why(bad)}")
                    changed = True
        for run in self.running.values():
            bad = self._failed(run.step)
            if bad and run.stop_status is not Status.BLOCKED:
                self._stop(run, f"needs {self._why(bad)}", Status.BLOCKED, relabel=True)

    def _settle_held(self, final: bool = False) -> None:
        """Give a stage that ended early its verdict once its needs have theirs: its own
        when they passed, blocked when one did not. `final`: the flow is ending."""
        for name, (run, code, elapsed) in list(self.held.items()):
            pending = [n for n in run.step.needs if n not in self.results]
            if not self._failed(run.step) and pending and not final:
                continue
            del self.held[name]
            self._after(self._conclude(run, code, elapsed))

    def _conclude(self, run: _Running, code: int | None, elapsed: float) -> StageResult:
        """Settle a stage that has ended: its own verdict when every need passed; set
        aside (blocked, or cancelled when a need never got a verdict) when one did not,
        also when that need failed in the very poll the stage ended in."""
        own, is_file = self._verdict(run, code, elapsed)
        bad = self._failed(run.step)
        pending = [n for n in run.step.needs if n not in self.results]
        if not bad and not pending:
            return self._settle(run, own, is_file, elapsed)
        status = Status.CANCELLED if self.signals or pending else Status.BLOCKED
        why = self._why(bad) if bad else f"{', '.join(pending)} without a verdict"
        aside = StageResult(
            run.step.name,
            status,
            elapsed,
            run.step.budget_s,
            summary=f"not counted: needs {why} (it ran early: {own.status.value})",
        )
        return self._settle(run, aside, False, elapsed)

    def _start(self, step: Step) -> None:
        console = self.out_dir / f"{step.name}.console.log"
        try:
            handle = self.launcher.start(step.name, console)
        except Exception as exc:  # a defect or a full disk: that stage's verdict, not ours
            self._unstartable(step, console, exc)
            return
        self.running[step.name] = _Running(step, handle, console, self.clock())
        self.display.started(step, console)

    def _unstartable(self, step: Step, console: Path, exc: Exception) -> None:
        """A stage whose launch raised: internal error, the traceback in its console
        file, and the flow goes on (what needs it is blocked)."""
        with contextlib.suppress(OSError):
            console.write_text(self.redact("".join(traceback.format_exception(exc))))
        text = (str(exc).strip().splitlines() or [""])[0]
        why = f"internal error: could not start: {type(exc).__name__}: {text}".rstrip(": ")
        self._record(step, Status.INTERNAL, f"{why} (traceback in {console})")
        self._after(self.results[step.name])

    def _watch(self, run: _Running, now: float) -> None:
        """Hard limit, and kill after the grace period."""
        elapsed = now - run.started
        if run.stop_reason:
            if now - run.stop_at > self.grace_s and not run.stop_reason.endswith("; killed"):
                self.say(f"■ {run.step.name} did not stop within {self.grace_s:.0f}s: killing it")
                run.stop_reason += "; killed"
                run.handle.kill()
            return
        if run.step.limit_s and elapsed > run.step.limit_s:
            self._stop(
                run,
                f"hard limit of {run.step.limit_s:.0f}s reached (budget {run.step.budget_s:.0f}s)",
                Status.TIMEOUT,
            )

    def _stop(self, run: _Running, reason: str, status: Status, *, relabel: bool = False) -> None:
        """Ask a running stage to stop, once. `relabel`: when it is stopping already,
        this reason and status replace the earlier ones (no second interrupt)."""
        if run.stop_reason:
            if relabel:
                run.stop_reason, run.stop_status = reason, status
            return
        run.stop_reason, run.stop_status, run.stop_at = reason, status, self.clock()
        run.handle.interrupt()
        self.say(f"■ stopping {run.step.name}: {reason}")

    def _stop_all(self, reason: str, *, include_uninterruptible: bool) -> None:
        for run in self.running.values():
            if run.step.interruptible or include_uninterruptible:
                self._stop(run, reason, Status.CANCELLED)

    def _after(self, result: StageResult) -> None:
        failed = not result.status.ok and result.status is not Status.CANCELLED
        if failed and result.blocking and self.fail_fast and not self._cancel_reason:
            self._cancel_reason = f"fail-fast: {result.stage} {result.status.value}"
            self.say(f"{self._cancel_reason}: cancelling the rest")
            self._stop_all(self._cancel_reason, include_uninterruptible=False)

    def _finish(self, run: _Running, code: int | None) -> StageResult | None:
        """The stage's result, or None while a need it started early on has no verdict
        yet (it is held until then). Stopped because a need failed: blocked."""
        elapsed = round(self.clock() - run.started, 3)
        if run.stop_status is Status.BLOCKED:
            result = StageResult(
                run.step.name,
                Status.BLOCKED,
                elapsed,
                run.step.budget_s,
                summary=f"not counted: {run.stop_reason} (stopped; it had started early)",
            )
            return self._settle(run, result, False, elapsed)
        pending = [n for n in run.step.needs if n not in self.results]
        if pending:
            self.held[run.step.name] = (run, code, elapsed)
            self.say(f"{run.step.name} ended; its verdict waits for {', '.join(pending)}")
            return None
        return self._conclude(run, code, elapsed)

    def _verdict(self, run: _Running, code: int | None, elapsed: float) -> tuple[StageResult, bool]:
        """What the stage wrote itself if that is a verdict (a cancel that raced with its
        end never overwrites it), else what we know of why it ended; and whether it is
        the stage's own file."""
        written = read_result(self.out_dir, run.step.name)
        if written is not None and written.status.final:
            result = written
        elif run.stop_reason:
            summary = f"{run.stop_reason}; torn down"
            if written is None:
                summary = f"{run.stop_reason}; no result written (exit code {code})"
            result = StageResult(
                run.step.name, run.stop_status, elapsed, run.step.budget_s, summary=summary
            )
        elif written is not None:
            result = written
        else:
            result = StageResult(
                run.step.name,
                Status.ERROR,
                elapsed,
                run.step.budget_s,
                summary=f"stage wrote no result (exit code {code}); see {run.console}",
            )
        return result, result is written

    def _settle(self, run: _Running, result: StageResult, own: bool, elapsed: float) -> StageResult:
        """Record a stage's final result (written unless it is the stage's own file)."""
        result.blocking = run.step.blocking
        if not own:
            write_result(self.out_dir, result, self.redact)
        self.results[run.step.name] = result
        self.on_result(result)
        self.display.finished(run.step, result, elapsed, run.console)
        return result

    def _record(self, step: Step, status: Status, why: str) -> None:
        result = StageResult(step.name, status, 0.0, step.budget_s, summary=why)
        result.blocking = step.blocking
        write_result(self.out_dir, result, self.redact)
        self.results[step.name] = result
        self.on_result(result)
        self.display.finished(step, result, 0.0, None)


def nox_command(noxfile: Path, extra: Sequence[str] = ()) -> Callable[[str], list[str]]:
    """argv factory running one stage through nox with this interpreter."""

    def command(name: str) -> list[str]:
        return [sys.executable, "-m", "nox", "-f", str(noxfile), "-s", name, *extra]

    return command


def stage_command(
    noxfile: Path, stages: Sequence[StageSpec] = STAGES
) -> Callable[[str], list[str]]:
    """argv factory for `invoke ci`: a stage with its own virtualenv goes through nox
    (which provisions it); one without runs `ci.stage.main` directly, the very function
    its nox session would call in nox's own process, without nox's start-up (about
    0.15 s per stage, on the critical path of every run)."""
    through_nox = nox_command(noxfile)
    plain = {s.name for s in stages if not s.python}
    boot = (
        f"import sys; sys.path.insert(0, {str(noxfile.parent)!r}); "
        "from ci.stage import main; raise SystemExit(main())"
    )

    def command(name: str) -> list[str]:
        if name in plain:
            return [sys.executable, "-c", boot, name]
        return through_nox(name)

    return command
