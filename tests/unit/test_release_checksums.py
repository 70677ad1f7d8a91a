"""SHA256SUMS format."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci.release.checksums import format_sums, merge, parse_sums, sha256_bytes, sha256_file
from ci.release.errors import PublishError

A = "a" * 64
B = "B" * 64


def test_sums_lines_are_sha256sum_format_sorted_by_name() -> None:
    text = format_sums({"z.zip": A, "a.tar.gz": B})
    assert text == f"{'b' * 64}  a.tar.gz\n{A}  z.zip\n"


def test_sums_round_trip_and_binary_mode_lines_parse() -> None:
    assert parse_sums(format_sums({"x.tar.gz": A})) == {"x.tar.gz": A}
    assert parse_sums(f"{A} *x.zip\n\n") == {"x.zip": A}


def test_sums_refuse_paths_and_malformed_lines() -> None:
    with pytest.raises(ValueError):
        format_sums({"dist/x.tar.gz": A})
    with pytest.raises(PublishError, match="SHA256SUMS line 2 is not '<sha256>  <name>'"):
        parse_sums(f"{A}  ok\nnot a checksum line\n")


def test_merge_keeps_other_targets_and_replaces_ours() -> None:
    theirs = {"linux.tar.gz": A, "mac.tar.gz": A}
    assert merge(theirs, {"mac.tar.gz": B, "win.zip": B}) == {
        "linux.tar.gz": A,
        "mac.tar.gz": B,
        "win.zip": B,
    }


def test_file_digest_matches_bytes_digest(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x" * (3 << 20))
    assert sha256_file(f) == sha256_bytes(b"x" * (3 << 20))
