"""Fixtures of the deploy tests: a real Docker engine, a real registry, a real sshd on
loopback, the fake Slack receiver, and one staging "host" per test module (a compose
project and a folder on localhost reached over SSH). Everything is torn down."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.slack_webhook import FakeSlack
from helpers import docker_problem, run_invoke

from ci.runner import Runner
from deploy import engine
from deploy.config import RegistryTarget
from deploy.registry import DistributionRegistry, LocalRegistry

from .cleanup import compose_down, remove_images
from .sshd import Sshd, free_port

REGISTRY_USER = "deployer"


@pytest.fixture(scope="session", autouse=True)
def _needs_engine_sshd_and_registry() -> None:
    """Skips on a laptop without them; under CI=true a missing piece FAILS (.ci/setup
    installs them), so a skipped deploy test never counts as a pass there."""
    missing = docker_problem()
    for path, package in (
        ("/usr/sbin/sshd", "openssh-server"),
        ("/usr/bin/docker-registry", "docker-registry"),
    ):
        if missing is None and not Path(path).exists():
            missing = f"{path} is missing (apt-get install {package})"
    if missing is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"deploy tests need Docker, sshd and docker-registry under CI: {missing}")
    pytest.skip(f"deploy tests cannot run here: {missing}")


@pytest.fixture(scope="session")
def manifest(built: dict) -> Path:
    """The release manifest of the session's one real release build."""
    return Path(built["out"]) / "release" / "manifest.json"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Distribution registry on a free loopback port for the session; its address.
    Images pushed to it are removed from the engine at the end."""
    address = f"127.0.0.1:{free_port()}"
    data = tmp_path_factory.mktemp("registry")
    target = RegistryTarget(address, "", None, False, data)
    local = LocalRegistry(address, data)
    local.start_daemon(DistributionRegistry(target))
    try:
        yield address
    finally:
        local.stop_daemon()
        remove_images(f"{address}/")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    server = Sshd(tmp_path_factory.mktemp("sshd")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


class Staging:
    """One staging environment on localhost over SSH: a compose project, its folder, a
    port, an output dir and a history store, and the secrets planted in its runs."""

    def __init__(self, root: Path, sshd: Sshd, registry: str) -> None:
        self.root = root
        self.sshd = sshd
        self.registry = registry
        self.project = f"stg{uuid.uuid4().hex[:10]}"
        self.remote = root / "remote"
        self.out = root / "out"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Planted credentials: none may appear in any output or file.
        self.registry_password = "rp-" + secrets.token_urlsafe(16)
        self.key_text = sshd.client_key.read_text()

    def env(self, slack: FakeSlack | None = None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIPIPE_")}
        for name in ("GITHUB_ACTIONS", "SLACK_WEBHOOK_URL", "DOCKER_HOST"):
            env.pop(name, None)
        env.update(
            CIPIPE_OUTPUT_DIR=str(self.out),
            CIPIPE_HISTORY__PATH=str(self.root / "history.sqlite3"),
            CIPIPE_STAGING__HOST="127.0.0.1",
            CIPIPE_STAGING__SSH_PORT=str(self.sshd.port),
            CIPIPE_STAGING__USER=self.sshd.user,
            CIPIPE_STAGING__KNOWN_HOSTS=str(self.sshd.known_hosts),
            CIPIPE_STAGING__REMOTE_DIR=str(self.remote),
            CIPIPE_STAGING__PROJECT=self.project,
            CIPIPE_STAGING__REGISTRY=self.registry,
            CIPIPE_STAGING__PORT=str(self.port),
            CIPIPE_STAGING__BIND="127.0.0.1",
            CIPIPE_STAGING__HEALTH_TIMEOUT="30",
            STAGING_SSH_KEY=self.key_text,
            REGISTRY_USERNAME=REGISTRY_USER,
            REGISTRY_PASSWORD=self.registry_password,
        )
        if slack is not None:
            env["SLACK_WEBHOOK_URL"] = slack.url
        env.update(extra)
        return env

    def deploy(self, env: dict[str, str], *args: str, timeout: float = 900):
        """`invoke deploy.staging <args>` from the project root."""
        return run_invoke(["deploy.staging", *args], env, timeout=timeout)

    def secrets(self, slack: FakeSlack | None = None) -> list[str]:
        lines = [
            line for line in self.key_text.splitlines() if len(line) > 20 and "-----" not in line
        ]
        values = [self.registry_password, *lines]
        if slack is not None:
            values += [slack.url, slack.secret]
        return values

    def every_output(self, *runs: subprocess.CompletedProcess) -> str:
        """All the runs printed and every file under the output dir, as one text."""
        texts = [r.stdout + r.stderr for r in runs]
        if self.out.exists():
            for path in self.out.rglob("*"):
                if path.is_file():
                    texts.append(path.read_text(errors="replace"))
        return "\n".join(texts)

    def release_env(self) -> dict[str, str] | None:
        path = self.remote / "release.env"
        if not path.exists():
            return None
        return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)

    def running_digests(self) -> list[str]:
        """The repo digests of the image the service container runs."""
        ids = subprocess.run(
            [
                "docker",
                "ps",
                "-q",
                "--filter",
                f"label=com.docker.compose.project={self.project}",
                "--filter",
                "label=com.docker.compose.service=app",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert len(ids) == 1, f"expected one running service container, found {ids}"
        image = subprocess.run(
            ["docker", "inspect", "--format", "{{.Image}}", ids[0]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        out = subprocess.run(
            [
                "docker",
                "image",
                "inspect",
                "--format",
                "{{range .RepoDigests}}{{println .}}{{end}}",
                image,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def staging(
    tmp_path_factory: pytest.TempPathFactory, sshd: Sshd, registry: str
) -> Iterator[Staging]:
    """A staging environment shared by the tests of one module (they run in order)."""
    env = Staging(tmp_path_factory.mktemp("staging"), sshd, registry)
    try:
        yield env
    finally:
        compose_down(env.project)


@pytest.fixture
def fresh_staging(tmp_path: Path, sshd: Sshd, registry: str) -> Iterator[Staging]:
    """A staging environment of its own (nothing deployed yet)."""
    env = Staging(tmp_path, sshd, registry)
    try:
        yield env
    finally:
        compose_down(env.project)


@pytest.fixture(scope="session")
def docker_client():
    with Runner(echo=False):
        client = engine.connect(os.environ)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()
