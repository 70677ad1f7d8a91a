"""The deploy flow's pure parts: release files, health waiting, the plan, crash reasons,
the engine's stream handling, registry and SSH error lines, notifications."""

from __future__ import annotations

import socket
from pathlib import Path
from secrets import token_hex

import paramiko
import pytest

from deploy import compose, engine, health, notify
from deploy.config import RegistryTarget, Secret, SshTarget
from deploy.errors import HostError
from deploy.host import brief, connect_error
from deploy.plan import Facts, make_plan, show
from deploy.release import ImageName, Release


def files(**over: object) -> compose.ReleaseFiles:
    args: dict = dict(
        image="r:5000/app@sha256:aa",
        postgres="postgres:15",
        redis="redis:7-alpine",
        bind="127.0.0.1",
        port=8080,
        version="1.0.0",
        revision="c" * 40,
        digest="sha256:aa",
        service_env=(("RUST_LOG", "debug"),),
        compose="services: {}\n",
    )
    args.update(over)
    return compose.render(**args)


def test_release_files_pin_the_image_and_round_trip() -> None:
    out = files()
    env = compose.parse_env(out.release_env)
    assert env["APP_IMAGE"] == "r:5000/app@sha256:aa" and env["APP_PORT"] == "8080"
    assert out.app_env == "RUST_LOG=debug\n"
    running = compose.running_of(out.release_env)
    assert running == compose.Running("1.0.0", "c" * 40, "sha256:aa", "r:5000/app@sha256:aa")
    assert compose.running_of(None) is None and compose.running_of("OTHER=1\n") is None
    assert list(out.as_dict()) == ["compose.yaml", "release.env", "app.env"]


def test_the_shipped_compose_file_uses_every_variable_the_release_sets() -> None:
    text = compose.COMPOSE_FILE.read_text()
    for name in compose.parse_env(files(compose=None).release_env):
        if name not in ("RELEASE_DIGEST",):
            assert "${" + name in text, name
    assert "secrets.env" in text and "app.env" in text


def test_env_values_cannot_span_lines() -> None:
    with pytest.raises(ValueError, match="cannot span lines"):
        compose.env_text({"A": "x\ny"})


def test_secrets_file_holds_a_fresh_password_and_the_url_using_it() -> None:
    one, two = compose.parse_env(compose.make_secrets()), compose.parse_env(compose.make_secrets())
    assert one["POSTGRES_PASSWORD"] != two["POSTGRES_PASSWORD"]
    assert one["DATABASE_URL"] == (
        f"postgres://trading:{one['POSTGRES_PASSWORD']}@postgres:5432/trading"
    )


def test_compose_command_choice() -> None:
    assert compose.compose_command("auto", {"docker compose": True}) == ["docker", "compose"]
    assert compose.compose_command("auto", {"docker-compose": True}) == ["docker-compose"]
    assert compose.compose_command("docker-compose", {}) == ["docker-compose"]
    with pytest.raises(HostError, match="neither `docker compose` nor `docker-compose`"):
        compose.compose_command("auto", {})


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ({"status": "running", "restarts": "0"}, None),
        ({"status": "created", "restarts": "0"}, None),
        ({"status": "exited", "exit_code": "1"}, "the service container exited with code 1"),
        ({"status": "restarting", "restarts": "3"}, "keeps exiting (restarted 3x)"),
        ({"status": "running", "restarts": "1"}, "keeps exiting (restarted 1x)"),
        ({"status": "missing"}, "does not exist"),
    ],
)
def test_crash_reason(state: dict[str, str], reason: str | None) -> None:
    found = compose.crash_reason(state)
    assert (found is None) if reason is None else (reason in (found or ""))


def test_last_log_line_drops_the_compose_prefix_and_colours() -> None:
    logs = "Attaching to x\napp_1  | \x1b[31mERROR\x1b[0m cannot connect to Postgres\n\n"
    assert compose.last_log_line(logs) == "ERROR cannot connect to Postgres"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_health_is_polled_with_growing_waits_until_it_answers() -> None:
    answers = iter([health.Probe(0, "no answer"), health.Probe(503, "503"), health.Probe(200, "")])
    clock = FakeClock()
    got = health.wait_healthy(lambda: next(answers), timeout=30, clock=clock, sleep=clock.sleep)
    assert got.healthy and got.attempts == 3 and clock.sleeps == [0.25, 0.5]


def test_health_stops_at_the_deadline_naming_the_last_answer() -> None:
    clock = FakeClock()
    got = health.wait_healthy(
        lambda: health.Probe(503, "503 unavailable (fault injected)"),
        timeout=10,
        clock=clock,
        sleep=clock.sleep,
    )
    assert not got.healthy
    assert (
        got.reason == "/health did not answer 200 within 10s: last 503 unavailable (fault injected)"
    )
    assert sum(clock.sleeps) == pytest.approx(10) and max(clock.sleeps) == 2.0


def test_health_stops_at_once_when_the_container_is_down() -> None:
    clock = FakeClock()
    got = health.wait_healthy(
        lambda: health.Probe(0, "no answer"),
        timeout=300,
        down=lambda: "the service container exited with code 1",
        clock=clock,
        sleep=clock.sleep,
    )
    assert not got.healthy and got.attempts == 1 and clock.sleeps == []
    assert got.reason == "the service container exited with code 1"


def test_health_summary_names_the_failing_checks() -> None:
    body = (
        '{"status":"unavailable","checks":{"postgres":{"status":"error","error":"timeout"},'
        '"redis":{"status":"ok"}}}'
    )
    assert health.summarize(503, body) == "503 unavailable (postgres: timeout)"
    assert health.summarize(502, "<html>bad gateway</html>") == "502 <html>bad gateway</html>"


def facts(**over: object) -> Facts:
    release = Release("1.0.0", "c" * 40, "x86_64", Path("/r/bin/ts"), "ts", "f" * 64, Path("/m"))
    args: dict = dict(
        release=release,
        image=ImageName("127.0.0.1:5000", "ts"),
        base="",
        base_public="gcr.io/distroless/cc-debian12:nonroot",
        registry_up=True,
        registry_start=False,
        host="root@stage:22",
        compose=("docker-compose",),
        remote_dir="trading-staging",
        project="trading-staging",
        current=None,
        good=None,
        url="http://stage:8080",
        health_timeout=90,
        notifier="Slack incoming webhook from $SLACK_WEBHOOK_URL",
        history=".pipeline/history.sqlite3",
        e2e=True,
        rollback=True,
    )
    args.update(over)
    return Facts(**args)


def test_plan_of_a_first_deployment() -> None:
    plan = make_plan(facts(registry_start=True))
    lines = show(plan)
    assert lines[0] == "deploy ts 1.0.0 (cccccccccccc) to staging"
    assert "nothing deployed yet" in lines[1]
    text = "\n".join(lines)
    assert "1. start a local registry on 127.0.0.1:5000 for this run" in text
    assert "a local stand-in for gcr.io/distroless/cc-debian12:nonroot" in text
    assert "on failure: stop the new release (no earlier good release to restore)" in text
    assert plan.rollback_target is None


def test_plan_rolls_back_to_the_last_good_release() -> None:
    good = compose.Running("0.9.0", "b" * 40, "sha256:" + "9" * 64, "img")
    plan = make_plan(facts(good=good, current=good, base="distroless", e2e=False))
    text = "\n".join(show(plan))
    assert "on failure: redeploy 0.9.0 (bbbbbbbbbbbb, sha256:999999999999…)" in text
    assert "e2e: skipped (e2e = false)" in text and "on distroless" in text
    assert plan.rollback_target == good
    assert make_plan(facts(good=good, rollback=False)).rollback_target is None


def test_build_and_push_streams_raise_their_first_error() -> None:
    logged: list[str] = []
    chunks = [{"stream": "Step 1/3\n"}, {"aux": {"ID": "sha256:1"}}, {"status": "done"}]
    assert engine._stream(iter(chunks), logged.append) == {"ID": "sha256:1"}
    assert logged == ["Step 1/3", "done"]
    bad = [
        {"status": "Preparing"},
        {"errorDetail": {"message": "unauthorized: authentication required"}},
    ]
    with pytest.raises(engine._StreamError, match=r"^unauthorized: authentication required$"):
        engine._stream(iter(bad), logged.append)


def target(**over: object) -> SshTarget:
    args: dict = dict(
        host="stage.example",
        port=2222,
        user="deploy",
        key=Secret("k", "$STAGING_SSH_KEY"),
        key_passphrase=None,
        known_hosts=Path("/home/d/.ssh/known_hosts"),
        connect_timeout=15,
        command_timeout=600,
    )
    args.update(over)
    return SshTarget(**args)


@pytest.mark.parametrize(
    ("exc", "phrase"),
    [
        (socket.gaierror(-2, "Name or service not known"), "unknown host 'stage.example'"),
        (
            paramiko.AuthenticationException("x"),
            "failed for deploy@stage.example:2222 with the key from $STAGING_SSH_KEY",
        ),
        (
            paramiko.SSHException("Server '[stage.example]:2222' not found in known_hosts"),
            "ssh-keyscan -p 2222 stage.example >> /home/d/.ssh/known_hosts",
        ),
        (
            paramiko.ssh_exception.NoValidConnectionsError(
                {("1.2.3.4", 2222): OSError(111, "refused")}
            ),
            "cannot reach stage.example:2222",
        ),
        (TimeoutError(), "no answer within 15s"),
    ],
)
def test_ssh_failures_are_one_line_with_the_fix(exc: BaseException, phrase: str) -> None:
    line = str(connect_error(exc, target()))
    assert phrase in line and "\n" not in line


def test_long_commands_are_shortened_in_messages() -> None:
    argv = ["docker-compose", "-p", "x", "-f", "a/compose.yaml", "--env-file", "a/r.env", "pull"]
    assert brief(argv) == "docker-compose … --env-file a/r.env pull"
    assert brief(["docker", "info"]) == "docker info"


class Resp:
    def __init__(self, status: int, text: str = "") -> None:
        self.status_code, self.text, self.headers = status, text, {}


def test_slack_retries_overload_and_never_quotes_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    url = f"https://hooks.example/services/T1/B2/{token_hex(10)}"
    answers = iter([Resp(500, "internal_error"), Resp(429, "rate_limited"), Resp(200, "ok")])
    sent: list[dict] = []

    def post(target: str, json: dict, timeout: float) -> Resp:
        sent.append(json)
        return next(answers)

    monkeypatch.setattr(requests, "post", post)
    hook = notify.SlackWebhook(Secret(url, "$SLACK_WEBHOOK_URL"), sleep=lambda s: None)
    assert hook.send(notify.Message("deployed", ("line",))) is None
    assert len(sent) == 3 and sent[0]["text"] == ":white_check_mark: *deployed*\nline"
    assert url not in hook.describe()

    monkeypatch.setattr(requests, "post", lambda *a, **k: Resp(404, "no_service"))
    assert hook.send(notify.Message("x")) == "the webhook answered 404 no_service"

    def refuse(*a: object, **k: object) -> Resp:
        raise requests.ConnectionError(f"HTTPSConnectionPool: Max retries exceeded with url: {url}")

    monkeypatch.setattr(requests, "post", refuse)
    problem = hook.send(notify.Message("x")) or ""
    assert problem == "connection failed (ConnectionError)"


def test_no_webhook_is_said_not_hidden() -> None:
    quiet = notify.notifier(None)
    assert quiet.send(notify.Message("x")) == "skipped: no webhook configured"
    assert quiet.describe().startswith("skipped: no Slack webhook")


def test_registry_answers_become_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    from deploy.errors import RegistryError
    from deploy.registry import DistributionRegistry

    password = token_hex(8)  # made at run time: the repository's secret scan stays green
    tgt = RegistryTarget("reg:5000", "ci", Secret(password, "$REGISTRY_PASSWORD"), False, Path())
    reg = DistributionRegistry(tgt)
    monkeypatch.setattr(requests, "request", lambda *a, **k: Resp(401))
    with pytest.raises(
        RegistryError, match=r"rejected the login of ci \(password from \$REGISTRY_PASSWORD\)"
    ):
        reg.check()
    anonymous = DistributionRegistry(RegistryTarget("reg:5000", "", None, False, Path()))
    with pytest.raises(RegistryError, match="requires a login"):
        anonymous.check()

    def down(*a: object, **k: object) -> Resp:
        raise requests.ConnectionError("HTTPConnectionPool(host='reg', port=5000): refused")

    monkeypatch.setattr(requests, "request", down)
    with pytest.raises(RegistryError) as err:
        reg.check()
    assert "not reachable (ConnectionError)" in str(err.value) and "HTTPConnectionPool" not in str(
        err.value
    )
    assert reg.auth() == {"username": "ci", "password": password}
