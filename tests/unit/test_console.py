"""The console as a masking sink: whole lines masked even when written in pieces, a closed
reader turns it quiet, and add-mask commands go only where the runner reads them."""

from __future__ import annotations

import io
import os
from pathlib import Path

from ci.console import MASK_FD_ENV, AddMask, MaskedStream
from ci.redact import Redactor

SECRET = "s3cr3t-value-1234"


def test_a_secret_split_across_writes_is_still_masked() -> None:
    raw = io.StringIO()
    out = MaskedStream(raw, Redactor([SECRET]))
    out.write("token: " + SECRET[:5])
    out.write(SECRET[5:] + " end\npartial " + SECRET[:3])
    assert raw.getvalue() == "token: *** end\n"
    out.write(SECRET[3:])
    out.finish()
    assert raw.getvalue() == "token: *** end\npartial ***"


class Closed(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_closed_reader_makes_the_stream_quiet_not_raising() -> None:
    out = MaskedStream(Closed(), Redactor())
    out.write("one\n")
    out.write("two\n")
    out.flush()
    assert out.broken


def test_add_mask_goes_to_the_executor_channel(tmp_path: Path) -> None:
    read, write = os.pipe()
    try:
        mask = AddMask({MASK_FD_ENV: str(write)})
        r = Redactor()
        r.on_add(mask)
        r.add(["line-one-value\nline-two-value"])
        os.close(write)
        got = os.read(read, 4096).decode()
    finally:
        os.close(read)
    assert got == "::add-mask::line-one-value\n::add-mask::line-two-value\n"


def test_add_mask_never_goes_into_a_file(tmp_path: Path) -> None:
    with (tmp_path / "console.log").open("w") as fh:
        out = MaskedStream(fh, Redactor())
        mask = AddMask({"GITHUB_ACTIONS": "true"}, out)
        assert not mask.active
        mask([SECRET])
        out.finish()
    assert (tmp_path / "console.log").read_text() == ""


def test_add_mask_on_the_terminal_when_the_stage_runs_directly() -> None:
    read, write = os.pipe()  # a pipe, as GitHub's runner reads a step's output
    try:
        with os.fdopen(write, "w") as fh:
            out = MaskedStream(fh, Redactor([SECRET]))
            mask = AddMask({"GITHUB_ACTIONS": "true"}, out)
            assert mask.active
            mask([SECRET])
            out.write(f"using {SECRET}\n")
        got = os.read(read, 4096).decode()
    finally:
        os.close(read)
    assert got == f"::add-mask::{SECRET}\nusing ***\n"


def test_a_secret_cut_by_the_long_line_flush_is_still_masked() -> None:
    # no newline for 64 KiB: the stream flushes a piece; a secret across that cut
    # must not go out in two unmasked halves
    raw = io.StringIO()
    out = MaskedStream(raw, Redactor([SECRET]))
    filler = "x" * (65536 - 8)
    out.write(filler + SECRET[:10])
    out.write(SECRET[10:] + " end\n")
    out.finish()
    assert raw.getvalue() == filler + "*** end\n"
    assert SECRET[:6] not in raw.getvalue() and SECRET[-6:] not in raw.getvalue()


def test_a_long_line_without_secrets_is_still_flushed_in_pieces() -> None:
    raw = io.StringIO()
    out = MaskedStream(raw, Redactor([SECRET]))
    out.write("y" * 200_000)
    assert len(raw.getvalue()) >= 200_000 - len(SECRET)  # held back: at most a secret's length
    out.finish()
    assert raw.getvalue() == "y" * 200_000
