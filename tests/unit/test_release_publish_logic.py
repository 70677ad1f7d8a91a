"""Publishing decisions (pure) and how GitHub's answers are explained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from ci.github.client import classify, explain
from ci.release.checksums import format_sums
from ci.release.errors import PublishError
from ci.release.publish import LocalAsset, api_digest, plan_round

A = "a" * 64
B = "b" * 64
ASSET = LocalAsset("ts-1.0.0-linux.tar.gz", Path("/dist/x"), 100, A, "application/gzip")
OURS = {ASSET.name: A}


def _remote(name: str, size: int = 100, digest: str | None = A, state: str = "uploaded") -> dict:
    asset = {"id": 7, "name": name, "size": size, "state": state}
    if digest:
        asset["digest"] = f"sha256:{digest}"
    return asset


def _never(_asset: dict) -> str:
    raise AssertionError("no download expected")


def test_empty_release_uploads_the_archive_and_the_sums() -> None:
    actions, unchanged = plan_round([ASSET], OURS, {}, None, "refuse", _never)
    assert [(a.kind, a.name) for a in actions] == [("upload", ASSET.name), ("upload", "SHA256SUMS")]
    assert actions[1].data == format_sums(OURS).encode()
    assert unchanged == []


def test_identical_release_needs_nothing() -> None:
    remote = {ASSET.name: _remote(ASSET.name), "SHA256SUMS": _remote("SHA256SUMS", 10)}
    actions, unchanged = plan_round([ASSET], OURS, remote, format_sums(OURS), "refuse", _never)
    assert actions == []
    assert unchanged == [ASSET.name, "SHA256SUMS"]


def test_without_an_api_digest_the_asset_is_downloaded_and_hashed() -> None:
    remote = {ASSET.name: _remote(ASSET.name, digest=None)}
    seen = []
    _, unchanged = plan_round(
        [ASSET], OURS, remote, None, "refuse", lambda a: seen.append(a["name"]) or A
    )
    assert seen == [ASSET.name] and unchanged == [ASSET.name]


@pytest.mark.parametrize(
    ("size", "digest", "why"),
    [(99, A, "size 99 on GitHub, 100 here"), (100, B, "sha256 bbbbbbbbbbbb... on GitHub")],
)
def test_a_different_asset_with_our_name_is_refused_or_replaced(size, digest, why) -> None:
    remote = {ASSET.name: _remote(ASSET.name, size=size, digest=digest)}
    with pytest.raises(PublishError) as err:
        plan_round([ASSET], OURS, remote, None, "refuse", _never)
    assert why in str(err.value)
    assert "CIPIPE_RELEASE__ASSET_CONFLICT=replace" in str(err.value)
    actions, _ = plan_round([ASSET], OURS, remote, None, "replace", _never)
    assert (actions[0].kind, actions[0].remote) == ("replace", remote[ASSET.name])


def test_a_half_uploaded_asset_is_replaced_even_when_refusing_conflicts() -> None:
    remote = {ASSET.name: _remote(ASSET.name, size=0, digest=None, state="starter")}
    actions, _ = plan_round([ASSET], OURS, remote, None, "refuse", _never)
    assert actions[0].kind == "replace" and "state starter" in actions[0].reason


def test_sums_of_other_targets_are_kept_and_ours_added() -> None:
    theirs = format_sums({"ts-1.0.0-mac.tar.gz": B, "ts-1.0.0-win.zip": B})
    remote = {ASSET.name: _remote(ASSET.name), "SHA256SUMS": _remote("SHA256SUMS", 10)}
    actions, _ = plan_round([ASSET], OURS, remote, theirs, "refuse", _never)
    assert [(a.kind, a.name) for a in actions] == [("replace", "SHA256SUMS")]
    assert f"lacks {ASSET.name}" in actions[0].reason
    assert (
        actions[0].data
        == format_sums({"ts-1.0.0-mac.tar.gz": B, "ts-1.0.0-win.zip": B, ASSET.name: A}).encode()
    )


def test_api_digest_reads_only_sha256() -> None:
    assert api_digest({"digest": "sha256:" + A.upper()}) == A
    assert api_digest({"digest": None}) is None
    assert api_digest({"digest": "md5:00"}) is None


def _response(status: int, body: object = None, headers: dict | None = None) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.reason = {401: "Unauthorized", 502: "Bad Gateway"}.get(status, "")
    resp._content = json.dumps(body).encode() if body is not None else b""
    resp.headers.update(headers or {})
    return resp


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            401,
            {"message": "Bad credentials"},
            "GitHub rejected the token while trying to create the release v1.0.0 "
            "(401 Bad credentials): GITHUB_TOKEN is invalid or expired",
        ),
        (
            404,
            {"message": "Not Found"},
            "repository acme/trading does not exist or the token cannot access it",
        ),
        (
            403,
            {"message": "Resource not accessible by integration"},
            "needs 'contents: write' permission on acme/trading",
        ),
        (
            422,
            {
                "message": "Validation Failed",
                "errors": [{"resource": "Release", "field": "target_commitish", "code": "invalid"}],
            },
            "(422 Validation Failed: Release target_commitish invalid)",
        ),
        (418, {"message": "teapot"}, "GitHub answered 418 teapot"),
    ],
)
def test_client_errors_are_one_line_with_what_to_do(status, body, expected) -> None:
    line = explain(_response(status, body), "create the release v1.0.0", "acme/trading")
    assert expected in line
    assert "\n" not in line


def test_rate_limited_403_says_so() -> None:
    resp = _response(403, {"message": "API rate limit exceeded"}, {"X-RateLimit-Remaining": "0"})
    assert "rate limit exhausted" in explain(resp, "upload x", "acme/trading")


def test_server_errors_and_429_are_retried_with_retry_after() -> None:
    assert classify(_response(502)).retry
    assert classify(_response(500)).why == "500"
    verdict = classify(_response(429, headers={"Retry-After": "7"}))
    assert verdict.retry and verdict.hint == 7
    assert not classify(_response(404)).retry
    assert not classify(_response(201)).retry
