"""The Codecov upload through Codecov's official uploader (`codecovcli`, the pinned
codecov-cli of the coverage stage's own virtualenv, made by `nox -s coverage
--install-only`) against the local server implementing the API it calls: the upload
itself, the token only in the Authorization header (never on the CLI's command line),
its retries, one line for every refusal, and no telemetry leaving the machine."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fakes.codecov_api import FakeCodecov
from helpers import run_nox

from ci import settings
from ci.coverage import codecov
from ci.coverage.codecov import UploadError, UploadMeta
from ci.coverage.config import load
from ci.registry import get_stage
from ci.runner import Runner

ROOT = Path(__file__).resolve().parents[2]
REPORT = b'<?xml version="1.0"?><coverage><packages/></coverage>'
META = UploadMeta(commit="c" * 40, slug="acme/trading", branch="main", flags=("rust",))
PINNED = next(p for p in get_stage("coverage").python if p.startswith("codecov-cli=="))
AGENT = "codecov-cli/" + PINNED.split("==")[1]


@pytest.fixture(scope="module")
def cli() -> str:
    """The coverage stage's virtualenv, provisioned as the stage provisions it."""
    made = subprocess.run(
        [sys.executable, "-m", "nox", "-s", "coverage", "--install-only"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    found = ROOT / ".nox" / "coverage" / "bin" / codecov.CLI
    assert found.is_file(), f"nox made no {found}"
    return str(found)


@pytest.fixture
def token() -> str:
    return "cc-" + secrets.token_hex(16)  # made at run time: nothing secret-looking is committed


class Recorder:
    """A proxy that records where each connection wanted to go and lets none through:
    set as HTTP(S)_PROXY, it sees every request that is not for 127.0.0.1."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.seen.append(conn.recv(1024).split(b"\r\n")[0].decode())
                except OSError as err:
                    self.seen.append(repr(err))

    def env(self) -> dict[str, str]:
        proxy = {"HTTPS_PROXY": self.url, "HTTP_PROXY": self.url, "NO_PROXY": "127.0.0.1"}
        return {**proxy, **{k.lower(): v for k, v in proxy.items()}}

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


def _upload(
    cli: str,
    url: str,
    token: str,
    tmp_path: Path,
    meta: UploadMeta = META,
    *,
    env: dict[str, str] | None = None,
) -> tuple[str, str]:
    """Upload REPORT through the CLI; returns (where, the runner's log)."""
    report = tmp_path / "cobertura.xml"
    report.write_bytes(REPORT)
    cfg = load(settings.load(ROOT, {"CIPIPE_COVERAGE__CODECOV__URL": url})).codecov
    log = tmp_path / "upload.log"
    runner = Runner(log_path=log, echo=False, base_env={**dict(_base_env()), **(env or {})})
    runner.redact.add([token])
    try:
        where = codecov.upload(runner, cfg, token, report, meta, ROOT, cli=cli)
    finally:
        runner.close()
    return where, log.read_text()


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CODECOV_"))}
    env.pop("CI", None)
    return env


def test_the_official_cli_registers_then_stores_the_report(
    cli: str, token: str, tmp_path: Path, recorder: Recorder
) -> None:
    with FakeCodecov(token) as api:
        where, log = _upload(cli, api.url, token, tmp_path, env=recorder.env())
    assert where == f"https://app.codecov.io/github/acme/trading/commit/{'c' * 40}"
    [upload] = api.uploads
    [(name, sent)] = upload.files.items()
    assert upload.stored and name.endswith("cobertura.xml") and sent == REPORT
    body = upload.body
    assert (body["commitid"], body["branch"], body["code"], body["flags"]) == (
        "c" * 40,
        "main",
        "default",
        ["rust"],
    )
    post, put = api.log
    assert post.path == "/upload/github/acme::::trading/upload-coverage"
    assert post.headers["user-agent"] == AGENT  # the official uploader, not our code
    assert post.headers["authorization"] == f"token {token}"
    assert "authorization" not in put.headers  # the storage URL is pre-signed
    for req in api.log:
        assert token not in req.path and token not in json.dumps(req.query)
        assert token.encode() not in req.body  # not in cli_args, env, anything
    command = next(line for line in log.splitlines() if line.startswith("+ "))
    assert "--disable-telem" in command and f"--url {api.url}" in command
    assert token not in log and "CODECOV_TOKEN" not in command
    assert recorder.seen == []  # telemetry disabled: nothing but the local server reached


def test_the_recorder_does_see_the_clis_telemetry_when_it_is_on(
    cli: str, token: str, tmp_path: Path, recorder: Recorder
) -> None:
    """The check above can fail: without --disable-telem and with Codecov's own host,
    the CLI reports to Sentry (a dry run: nothing is uploaded anywhere)."""
    report = tmp_path / "cobertura.xml"
    report.write_bytes(REPORT)
    argv = [cli, "upload-coverage", "--file", str(report), "--disable-search", "--dry-run"]
    argv += ["--plugin", "noop", "--sha", "c" * 40, "--slug", "acme/trading"]
    argv += ["--git-service", "github"]
    env = {**_base_env(), **recorder.env(), "CODECOV_TOKEN": token}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert any("sentry.io" in line for line in recorder.seen), recorder.seen


def test_server_errors_are_retried_by_the_cli_then_succeed(
    cli: str, token: str, tmp_path: Path
) -> None:
    with FakeCodecov(token) as api:
        api.fail("POST", "upload-coverage$", 503, times=2)
        api.fail("PUT", "^/storage/", 502)
        _upload(cli, api.url, token, tmp_path)
    assert len(api.requests("POST")) == 3 and len(api.requests("PUT")) == 2
    assert api.uploads[-1].stored


def test_a_server_that_keeps_failing_is_one_line(cli: str, token: str, tmp_path: Path) -> None:
    with FakeCodecov(token) as api:
        api.fail("POST", "upload-coverage$", 500, times=10)
        with pytest.raises(UploadError) as err:
            _upload(cli, api.url, token, tmp_path)
    assert len(api.requests("POST")) == 3  # the CLI's own three tries
    line = str(err.value)
    assert line.startswith(f"Codecov at {api.url} did not take the upload") and "\n" not in line


@pytest.mark.parametrize(
    ("sent", "slug", "expected"),
    [
        ("wrong", "acme/trading", "Codecov rejected CODECOV_TOKEN (codecovcli: "),
        (None, "acme/unknown", "Codecov does not know acme/unknown"),
    ],
)
def test_refusals_are_one_line_that_says_what_to_fix(
    cli: str, token: str, tmp_path: Path, sent: str | None, slug: str, expected: str
) -> None:
    given = token if sent is None else sent + secrets.token_hex(8)
    with FakeCodecov(token) as api, pytest.raises(UploadError) as err:
        meta = UploadMeta(commit="c" * 40, slug=slug)
        _upload(cli, api.url, given, tmp_path, meta)
    line = str(err.value)
    assert expected in line and "\n" not in line
    assert given not in line and token not in line
    assert len(api.requests("POST")) == 1 and api.uploads == []  # 4xx: never retried


def test_an_unreachable_codecov_is_one_line(cli: str, token: str, tmp_path: Path) -> None:
    with FakeCodecov(token) as api:
        url = api.url  # stopped on leaving the block: nothing listens there any more
    with pytest.raises(UploadError) as err:
        _upload(cli, url, token, tmp_path)
    assert str(err.value).startswith(f"Codecov at {url} did not take the upload")
    assert "connection" in str(err.value).lower() or "retries" in str(err.value)


def test_the_fake_refuses_what_codecov_refuses(token: str) -> None:
    with FakeCodecov(token) as api:
        post = f"{api.url}/upload/github/acme::::trading/upload-coverage"
        auth = {"Authorization": f"token {token}"}
        body = {"commitid": "c" * 40, "code": "default"}
        assert requests.post(post, json=body).status_code == 401  # no token
        no_commit = requests.post(post, json={"code": "default"}, headers=auth)
        assert no_commit.status_code == 400 and "commitid" in no_commit.json()
        assert requests.post(post, data=b"[1]", headers=auth).status_code == 400
        other = post.replace("/github/", "/sourceforge/")
        assert requests.post(other, json={"commitid": "c" * 40}, headers=auth).status_code == 404
        ok = requests.post(post, json=body, headers=auth)
        location = ok.json()["raw_upload_location"]
        assert requests.put(location, data=b'{"coverage_files": "x"}').status_code == 400
        assert requests.put(location.split("?")[0], data=b"{}").status_code == 404  # unsigned
        assert requests.get(f"{api.url}/api/v2/github/acme").status_code == 404
    assert api.uploads[0].stored is False


def test_the_coverage_stage_uploads_through_the_cli(
    fixture_env, token: str, tmp_path: Path
) -> None:
    """`nox -s coverage` with figures from a Cobertura file: the real session, its own
    virtualenv, the official CLI, the token only in the environment."""
    report = tmp_path / "given.xml"
    report.write_bytes(
        b'<?xml version="1.0"?><coverage lines-valid="2" lines-covered="2" line-rate="1">'
        b'<packages><package name="p"><classes><class name="lib" filename="src/lib.rs">'
        b'<lines><line number="1" hits="1"/><line number="2" hits="3"/></lines>'
        b"</class></classes></package></packages></coverage>"
    )
    with FakeCodecov(token) as api:
        env = fixture_env(
            "clean",
            CIPIPE_COVERAGE__CRITICAL="",
            CODECOV_TOKEN=token,
            GITHUB_REPOSITORY="acme/trading",
            CIPIPE_COVERAGE__CODECOV__URL=api.url,
            CIPIPE_COVERAGE__CODECOV__REQUIRED="true",
        )
        done = run_nox(["coverage", "--", "--cobertura", str(report)], env)
    out = done.stdout + done.stderr
    data = json.loads((Path(env["CIPIPE_OUTPUT_DIR"]) / "coverage.json").read_text())
    check = {c["name"]: c for c in data["checks"]}["codecov"]
    assert check["status"] == "passed", out
    assert check["summary"].startswith("uploaded for ")
    [upload] = api.uploads
    [(name, sent)] = upload.files.items()
    assert upload.stored and name.endswith("cobertura.xml") and b'filename="src/lib.rs"' in sent
    assert api.log[0].headers["user-agent"] == AGENT
    assert token not in out
    for path in Path(env["CIPIPE_OUTPUT_DIR"]).rglob("*"):
        if path.is_file():
            assert token not in path.read_text(errors="replace"), path
