"""The e2e stage's options, its one-line findings, the production gate on its verdict,
and the fake Slack receiver's contract."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakes.slack_webhook import FakeSlack

from ci import settings as settings_mod
from ci.errors import ConfigError
from ci.history import Machine, RunInfo, open_store
from ci.result import Finding
from ci.stages.e2e import one_line, parse_args
from deploy.record import E2E_KIND, promotion_verdict

ROOT = Path(__file__).resolve().parents[2]


def test_options_and_pytest_pass_through() -> None:
    args = parse_args(["--url", "http://h:8080/", "--smoke", "--", "-k", "book"], "")
    assert (args.url, args.smoke, args.pytest_args) == ("http://h:8080", True, ["-k", "book"])
    assert parse_args([], "http://configured:1").url == "http://configured:1"


@pytest.mark.parametrize(
    ("posargs", "message"),
    [
        ([], "nox -s e2e needs the service's base URL: nox -s e2e -- --url http://host:port"),
        (["--url", "ftp://x"], "is not an http(s) URL"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_options_are_one_line(posargs: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_args(posargs, "")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_multi_line_assertions_become_one_line() -> None:
    finding = Finding("e2e", "test_x failed: AssertionError: boom\n  assert 1 == 2\n")
    assert one_line(finding).message == "test_x failed: AssertionError: boom | assert 1 == 2"


def record(settings, status: str, digest: str, at: datetime) -> None:
    meta = {"environment": "staging", "version": "1.0.0", "digest": digest}
    run = RunInfo(E2E_KIND, "c" * 40, "main", "r1", Machine("m", "m"), at, meta=meta)
    with open_store(settings) as store:
        store.record(run.finished(status, at=at))


def test_production_needs_a_passed_e2e_run_of_that_very_digest(tmp_path: Path) -> None:
    settings = settings_mod.load(ROOT, {"CIPIPE_HISTORY__PATH": str(tmp_path / "h.sqlite3")})
    first = datetime(2026, 1, 1, 10, tzinfo=UTC)
    later = datetime(2026, 1, 1, 11, tzinfo=UTC)
    verdict = promotion_verdict(settings, "1.0.0", "sha256:aa")
    assert not verdict.ok and "no e2e run on staging" in verdict.reason
    record(settings, "passed", "sha256:aa", first)
    assert promotion_verdict(settings, "1.0.0", "sha256:aa").ok
    assert not promotion_verdict(settings, "1.0.0", "sha256:bb").ok  # another image
    record(settings, "failed", "sha256:aa", later)  # the latest verdict wins
    verdict = promotion_verdict(settings, "1.0.0", "sha256:aa")
    assert not verdict.ok and "the e2e suite failed for 1.0.0 on staging" in verdict.reason


def post(url: str, body: bytes) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_fake_slack_speaks_the_webhook_contract() -> None:
    with FakeSlack() as slack:
        assert post(slack.url, json.dumps({"text": "hello"}).encode()) == (200, "ok")
        base = slack.url.rsplit("/", 1)[0]
        assert post(base + "/wrong", b'{"text": "x"}') == (404, "no_service")
        assert post(slack.url, b"not json") == (400, "invalid_payload")
        assert post(slack.url, b'{"text": " "}') == (400, "no_text")
        slack.fail(500, 429)
        assert post(slack.url, b'{"text": "a"}')[0] == 500
        assert post(slack.url, b'{"text": "b"}')[0] == 429
        assert post(slack.url, b'{"text": "c"}') == (200, "ok")
    assert slack.messages == ["hello", "c"] and len(slack.log) == 7
