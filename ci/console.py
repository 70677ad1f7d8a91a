"""The console as a masking sink.

`MaskedStream` wraps a text stream (the process's stdout/stderr) and masks every line on
its way out, so nothing a stage process prints — its own lines, nox's, an exception
message — can carry a secret, whatever produced it. A closed reader (`invoke ci | head`)
turns the stream quiet instead of raising: the run goes on, tears down and writes every
result; only the terminal stops receiving lines.

`AddMask` sends `::add-mask::` commands to the CI runner's real terminal only: to the
channel the `invoke ci` executor passes (a pipe it forwards to its own stdout), or to
stdout when the stage runs directly under GitHub Actions and stdout is not a file. Never
into a saved log.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Protocol, TextIO

from ci.redact import add_mask_lines


class Writer(Protocol):
    """Where lines go: a text stream, or a MaskedStream in front of one."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


# Environment variable through which the executor hands a stage process the write end
# of its add-mask pipe. Double underscore: internal, never a configuration key.
MASK_FD_ENV = "CIPIPE__MASK_FD"
_PARTIAL_MAX = 65536  # a "line" longer than this is flushed in pieces


class MaskedStream(io.TextIOBase):
    """A line-buffered text stream that masks each complete line before writing it."""

    def __init__(self, raw: TextIO, redact: Callable[[str], str]) -> None:
        super().__init__()
        self.raw = raw
        self.redact = redact
        self.broken = False
        self._partial = ""
        self._lock = threading.RLock()  # the add-mask forwarder writes from a thread

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            return self._write(text)

    def _write(self, text: str) -> int:
        self._partial += text
        while True:
            cut = max(self._partial.rfind("\n"), self._partial.rfind("\r"))
            if cut < 0:
                break
            lines, self._partial = self._partial[: cut + 1], self._partial[cut + 1 :]
            self._emit(lines)
        if len(self._partial) > _PARTIAL_MAX:
            # A piece of a very long line goes out now, but never half a secret: the
            # tail that could be the start of one waits for the rest of the line.
            safe_cut = getattr(self.redact, "safe_cut", None)
            cut = safe_cut(self._partial) if safe_cut else len(self._partial)
            self._emit(self._partial[:cut])
            self._partial = self._partial[cut:]
        return len(text)

    def _emit(self, text: str) -> None:
        self._emit_raw(self.redact(text))

    def _gone(self) -> None:
        """The reader is gone: stay quiet, keep running. The descriptor is pointed at
        /dev/null so Python's own flush at exit cannot complain either."""
        self.broken = True
        with contextlib.suppress(ValueError, OSError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.raw.fileno())
            os.close(devnull)

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self.raw.flush()
        except (BrokenPipeError, ValueError, OSError):
            self._gone()

    def finish(self) -> None:
        """Write out a trailing partial line."""
        with self._lock:
            if self._partial:
                self._emit(self._partial)
                self._partial = ""

    def raw_write(self, text: str) -> None:
        """Write unmasked (workflow commands that must reach the runner verbatim)."""
        with self._lock:
            self.finish()
            self._emit_raw(text)

    def _emit_raw(self, text: str) -> None:
        if self.broken:
            return
        try:
            self.raw.write(text)
            self.raw.flush()
        except (BrokenPipeError, ValueError, OSError):
            self._gone()

    def isatty(self) -> bool:
        try:
            return self.raw.isatty()
        except (ValueError, OSError):
            return False

    def fileno(self) -> int:
        return self.raw.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.raw, "encoding", "utf-8") or "utf-8"


@contextlib.contextmanager
def masked_stdio(redact: Callable[[str], str]) -> Iterator[MaskedStream]:
    """Replace sys.stdout and sys.stderr by masking streams for the block; yields stdout's."""
    old_out, old_err = sys.stdout, sys.stderr
    out = MaskedStream(old_out, redact)
    err = MaskedStream(old_err, redact)
    sys.stdout, sys.stderr = out, err
    try:
        yield out
    finally:
        out.finish()
        err.finish()
        sys.stdout, sys.stderr = old_out, old_err


def _is_file(fd: int) -> bool:
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return True  # unknown: treat as a file, never leak into it


class AddMask:
    """Registers secret values with the GitHub Actions runner (see module docstring)."""

    def __init__(self, env: Mapping[str, str], stdout: MaskedStream | None = None) -> None:
        self._fd: int | None = None
        self._stdout: MaskedStream | None = None
        channel = env.get(MASK_FD_ENV, "")
        if channel.isdigit():
            self._fd = int(channel)
        elif env.get("GITHUB_ACTIONS") == "true" and stdout is not None:
            with contextlib.suppress(ValueError, OSError):
                if not _is_file(stdout.raw.fileno()):
                    self._stdout = stdout

    @property
    def active(self) -> bool:
        """True when the commands go somewhere."""
        return self._fd is not None or self._stdout is not None

    def __call__(self, values: Iterable[str]) -> None:
        lines = add_mask_lines(values)
        if not lines:
            return
        text = "\n".join(lines) + "\n"
        if self._fd is not None:
            try:
                os.write(self._fd, text.encode())
            except OSError:
                self._fd = None
        elif self._stdout is not None:
            self._stdout.raw_write(text)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned fixed-width columns with a rule under the header."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
