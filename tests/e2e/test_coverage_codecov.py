"""The Codecov client against the local fake of Codecov's upload API: the two-step
upload, retries on 5xx and dropped connections, one line for every refusal, and a
token that appears only in the Authorization header of the API request."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from fakes.codecov_api import FakeCodecov

from ci import settings
from ci.coverage.codecov import Codecov, UploadError, UploadMeta
from ci.coverage.config import load

ROOT = Path(__file__).resolve().parents[2]
REPORT = b'<?xml version="1.0"?><coverage><packages/></coverage>'
META = UploadMeta(commit="c" * 40, slug="acme/trading", branch="main", flags=("rust",))


def client(url: str, token: str, said: list[str], attempts: int = 3) -> Codecov:
    env = {
        "CIPIPE_COVERAGE__CODECOV__URL": url,
        "CIPIPE_COVERAGE__CODECOV__ATTEMPTS": str(attempts),
    }
    cfg = load(settings.load(ROOT, env)).codecov
    return Codecov(cfg, token, say=said.append, sleep=lambda s: None)


@pytest.fixture
def token() -> str:
    return "cc-" + secrets.token_hex(16)  # made at run time: nothing secret-looking is committed


def test_upload_registers_then_stores_the_report(token: str) -> None:
    said: list[str] = []
    with FakeCodecov(token) as api:
        where = client(api.url, token, said).upload(REPORT, "cobertura.xml", META)
    assert where == f"https://app.codecov.io/github/acme/trading/commit/{'c' * 40}"
    [upload] = api.uploads
    assert upload.stored and upload.files == {"cobertura.xml": REPORT}
    body = upload.body
    assert (body["commitid"], body["branch"], body["code"], body["flags"]) == (
        "c" * 40,
        "main",
        "default",
        ["rust"],
    )
    post, put = api.log
    assert post.path == "/upload/github/acme::::trading/upload-coverage"
    assert post.headers["authorization"] == f"token {token}"
    assert "authorization" not in put.headers  # the storage URL is pre-signed
    for req in api.log:
        assert token not in req.path and token not in json.dumps(req.query)
        assert token.encode() not in req.body
    assert said == []


def test_server_errors_are_retried_then_succeed(token: str) -> None:
    said: list[str] = []
    with FakeCodecov(token) as api:
        api.fail("POST", "upload-coverage$", 503, times=2)
        api.fail("PUT", "^/storage/", 502)
        client(api.url, token, said).upload(REPORT, "cobertura.xml", META)
    assert len(api.requests("POST")) == 3 and len(api.requests("PUT")) == 2
    assert api.uploads[-1].stored
    assert len(said) == 3 and all(token not in line for line in said)
    assert said[0].startswith("codecov: register the upload for cccccccccccc: 503")


def test_a_server_that_keeps_failing_is_one_line(token: str) -> None:
    with FakeCodecov(token) as api:
        api.fail("POST", "upload-coverage$", 500, times=10)
        with pytest.raises(UploadError) as err:
            client(api.url, token, [], attempts=2).upload(REPORT, "cobertura.xml", META)
    assert len(api.requests("POST")) == 2
    assert str(err.value).startswith("Codecov answered 500")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("token_sent", "slug", "expected"),
    [
        ("wrong", "acme/trading", "Codecov rejected CODECOV_TOKEN while trying to register"),
        (None, "acme/unknown", "Codecov does not know acme/unknown"),
    ],
)
def test_refusals_say_what_to_fix(
    token: str, token_sent: str | None, slug: str, expected: str
) -> None:
    sent = token if token_sent is None else token_sent + token[:4]
    with FakeCodecov(token) as api, pytest.raises(UploadError) as err:
        meta = UploadMeta(commit="c" * 40, slug=slug)
        client(api.url, sent, []).upload(REPORT, "cobertura.xml", meta)
    assert expected in str(err.value)
    assert sent not in str(err.value) and token not in str(err.value)
    assert len(api.requests("POST")) == 1  # 4xx is never retried


def test_an_unreachable_codecov_is_one_line(token: str) -> None:
    with FakeCodecov(token) as api:
        url = api.url  # stopped on leaving the block: nothing listens there any more
    with pytest.raises(UploadError) as err:
        client(url, token, [], attempts=2).upload(REPORT, "cobertura.xml", META)
    assert str(err.value).startswith(f"cannot reach Codecov at {url} to register the upload")
