"""The one command runner: argument lists only, echoed, tool resolved first, children in
their own process group with a secret-free environment, raw output returned to parsers and
masked on its way to the terminal and the stage log, CI log groups."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ci.console import Writer
from ci.errors import ToolMissing
from ci.interrupts import shield
from ci.redact import Redactor, secret_env_names

# What to tell the user when a program is missing.
INSTALL_HINTS: dict[str, str] = {
    "cargo": "install Rust with rustup (https://rustup.rs) and make sure ~/.cargo/bin is on PATH",
    "rustfmt": "rustup component add rustfmt",
    "cargo-fmt": "rustup component add rustfmt",
    "cargo-clippy": "rustup component add clippy",
    "cargo-nextest": "run `invoke tools.install --only cargo-nextest`",
    "cargo-audit": "run `invoke tools.install --only cargo-audit`",
    "cargo-deny": "run `invoke tools.install --only cargo-deny`",
    "cargo-tarpaulin": "run `invoke tools.install --only cargo-tarpaulin`",
    "cargo-llvm-cov": "run `invoke tools.install --only cargo-llvm-cov`",
    "docker": "install Docker Engine, or set [tool.pipeline.services] backend = 'local'",
    "initdb": "install PostgreSQL server binaries (apt-get install postgresql-15)",
    "postgres": "install PostgreSQL server binaries (apt-get install postgresql-15)",
    "redis-server": "install Redis (apt-get install redis-server)",
    "nox": "pip install -e . (installs nox and invoke)",
}


def which(tool: str, extra_dirs: Sequence[Path] = ()) -> str | None:
    """Resolve a program on PATH, then in `extra_dirs`."""
    found = shutil.which(tool)
    if found:
        return found
    for folder in extra_dirs:
        candidate = folder / tool
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require(tool: str, extra_dirs: Sequence[Path] = ()) -> str:
    """Resolve a program or raise ToolMissing with an install hint."""
    found = which(tool, extra_dirs)
    if not found:
        raise ToolMissing(tool, INSTALL_HINTS.get(tool, f"install {tool}"))
    return found


@dataclass(frozen=True)
class CommandResult:
    """A finished command: exit code, RAW stdout/stderr (parse them; mask only what you
    write, which the runner's own output already is), wall time."""

    cmd: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        """stdout then stderr, for messages."""
        return self.stdout + self.stderr


STOP_GRACE_S = 10.0  # a child asked to stop (SIGINT to its group) gets this long


def child_env(
    base: Mapping[str, str], pass_env: Iterable[str] = (), secret_names: Iterable[str] = ()
) -> dict[str, str]:
    """The environment child processes get: `base` without its secrets (variables whose
    names say secret, `secret_names`, and URLs with passwords), except those in `pass_env`.
    Cargo, build scripts and tests never see GITHUB_TOKEN unless a stage declares it."""
    keep = set(pass_env)
    drop = secret_env_names(base, secret_names) - keep
    return {k: v for k, v in base.items() if k not in drop}


class Runner:
    """Runs external programs for one stage.

    Programs run in their own process group with an environment stripped of secrets; on
    Ctrl-C, SIGTERM or a timeout the whole group is asked to stop, then killed. Their
    output is returned raw for parsing and written masked to the terminal and the stage
    log: no secret the pipeline knows is ever shown or stored.
    """

    def __init__(
        self,
        redactor: Redactor | None = None,
        *,
        log_path: Path | None = None,
        echo: bool = True,
        github: bool = False,
        stream: Writer | None = None,
        base_env: Mapping[str, str] | None = None,
        pass_env: Iterable[str] = (),
        secret_names: Iterable[str] = (),
    ) -> None:
        self.redact = redactor or Redactor()
        self.log_path = log_path
        self.echo = echo
        self.github = github
        self._stream = stream
        self.base_env = child_env(
            dict(os.environ if base_env is None else base_env), pass_env, secret_names
        )
        self._lock = threading.Lock()
        self._log: IO[str] | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = log_path.open("a", encoding="utf-8")

    def _out(self) -> Writer:
        return self._stream or sys.stdout

    def close(self) -> None:
        """Close the stage log."""
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, line: str, *, log: bool = True, show: bool = True) -> None:
        """One masked line to the log and (if echoing) the terminal. A closed terminal
        only stops the echo; the log keeps everything."""
        with self._lock:
            if log and self._log is not None:
                self._log.write(line)
                self._log.flush()
            if show and self.echo:
                try:
                    self._out().write(line)
                    self._out().flush()
                except (BrokenPipeError, ValueError, OSError):
                    self.echo = False

    def say(self, text: str, *, to_terminal: bool = True) -> None:
        """Print one masked message to the terminal and the log."""
        self._write(self.redact(text.rstrip("\n")) + "\n", show=to_terminal)

    def log_only(self, text: str) -> None:
        """A masked message for the stage log only (tracebacks, bulky details)."""
        self._write(self.redact(text.rstrip("\n")) + "\n", show=False)

    def error(self, text: str) -> None:
        """An error line; an `::error::` annotation under GitHub Actions."""
        self.say(f"::error::{text}" if self.github else f"error: {text}")

    @contextlib.contextmanager
    def group(self, title: str) -> Iterator[None]:
        """A collapsible log group under GitHub Actions, a header elsewhere."""
        self.say(f"::group::{title}" if self.github else f"── {title}")
        try:
            yield
        finally:
            if self.github:
                self.say("::endgroup::")

    def run(
        self,
        cmd: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        capture: bool = False,
        echo_output: bool | None = None,
        log_stdout: bool = True,
        timeout: float | None = None,
        merge_stderr: bool = False,
    ) -> CommandResult:
        """Run `cmd` (an argument list). `merge_stderr` sends stderr into stdout, in the
        order the program wrote them (cargo test's "Running <binary>" lines and the
        test output between them). stderr is always streamed; stdout is streamed
        unless `capture` (then it is only returned, e.g. cargo's JSON messages, and logged
        unless `log_stdout` is false, for bulky machine output like `cargo metadata`).
        `env` adds to the runner's (secret-free) environment: a stage passes the secrets
        a command needs explicitly (DATABASE_URL for integration tests).
        Raises ToolMissing when the program does not exist."""
        argv = [str(part) for part in cmd]
        exe = require(argv[0]) if os.sep not in argv[0] else argv[0]
        full_env = {**self.base_env, **(env or {})}
        show = self.echo if echo_output is None else echo_output
        self.say("+ " + shlex.join(argv))
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                [exe, *argv[1:]],
                cwd=cwd,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
                process_group=0,  # its own group: a timeout or Ctrl-C stops the whole tree
            )
        except OSError as err:
            raise ToolMissing(argv[0], f"cannot execute: {err.strerror}") from None
        out: list[str] = []
        err_lines: list[str] = []
        threads = [
            threading.Thread(
                target=self._pump,
                args=(proc.stdout, out, show and not capture, log_stdout),
                daemon=True,
            ),
            threading.Thread(
                target=self._pump, args=(proc.stderr, err_lines, show, True), daemon=True
            ),
        ]
        for t in threads:
            t.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            with shield():
                stop_group(proc)
            err_lines.append(f"timed out after {timeout:g}s\n")
        except BaseException:
            # Ctrl-C, SIGTERM or the stage's hard limit: stop the child's whole group.
            with shield():
                stop_group(proc)
            raise
        finally:
            for t in threads:
                t.join(timeout=5)
        return CommandResult(
            cmd=tuple(argv),
            returncode=proc.returncode if proc.returncode is not None else -9,
            stdout="".join(out),
            stderr="".join(err_lines),
            duration_s=time.monotonic() - start,
            timed_out=timed_out,
        )

    def _pump(self, pipe: IO[str] | None, sink: list[str], show: bool, log: bool) -> None:
        if pipe is None:
            return
        for raw in pipe:
            sink.append(raw)
            line = self.redact(raw)
            self._write(line if line.endswith("\n") else line + "\n", log=log, show=show)
        pipe.close()


def stop_group(
    proc: subprocess.Popen[Any],
    grace: float = STOP_GRACE_S,
    signum: signal.Signals = signal.SIGINT,
) -> None:
    """Ask a child's process group to stop (SIGINT, as a terminal would, unless `signum`
    says otherwise), then kill it after `grace` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
