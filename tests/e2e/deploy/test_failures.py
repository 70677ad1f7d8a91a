"""What goes wrong before a deployment can start: each is one clear line, a non-zero
exit, nothing half-deployed (no container, no release file on the host, nothing pushed),
and no planted secret in any output or file."""

from __future__ import annotations

import secrets
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .cleanup import containers, remove_images
from .conftest import REGISTRY_USER, Staging
from .sshd import free_port

warnings.filterwarnings("ignore", category=DeprecationWarning)

REGISTRY_CONFIG = """version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}/storage
{storage_extra}
http:
  addr: {address}
{extra}
"""


class Registry:
    """A registry variant (auth, read-only) run by the test itself."""

    def __init__(self, root: Path, storage_extra: str = "", extra: str = "") -> None:
        self.address = f"127.0.0.1:{free_port()}"
        root.mkdir(parents=True, exist_ok=True)
        config = root / "config.yml"
        config.write_text(
            REGISTRY_CONFIG.format(
                root=root, address=self.address, storage_extra=storage_extra, extra=extra
            )
        )
        self.proc = subprocess.Popen(
            ["/usr/bin/docker-registry", "serve", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://{self.address}/v2/", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError("test registry did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A registry requiring basic auth; (address, the right password)."""
    import bcrypt

    password = "right-" + secrets.token_hex(8)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"{REGISTRY_USER}:{hashed}\n")
    auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n"
    reg = Registry(tmp_path / "auth-registry", extra=auth)
    yield reg.address, password
    reg.stop()


@pytest.fixture
def readonly_registry(tmp_path: Path) -> Iterator[str]:
    """A registry in read-only maintenance mode: it answers, and refuses every push."""
    extra = "  maintenance:\n    readonly:\n      enabled: true"
    reg = Registry(tmp_path / "ro-registry", storage_extra=extra)
    yield reg.address
    reg.stop()
    remove_images(f"{reg.address}/")  # the image was built and tagged before the refusal


def assert_refused_cleanly(staging: Staging, r, code: int, *phrases: str, slack=None) -> str:
    text = r.stdout + r.stderr
    assert r.returncode == code, text
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in text
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert containers(staging.project) == []
    assert not (staging.remote / "release.env").exists()
    everything = staging.every_output(r)
    for value in staging.secrets(slack):
        assert value not in everything, f"a planted secret leaked: {value[:6]}…"
    return lines[0]


def test_docker_engine_unreachable(fresh_staging: Staging, manifest, slack) -> None:
    env = fresh_staging.env(slack, DOCKER_HOST="unix:///nonexistent/docker.sock")
    r = fresh_staging.deploy(env, "--manifest", str(manifest))
    assert_refused_cleanly(
        fresh_staging,
        r,
        21,
        "docker engine not reachable at unix:///nonexistent/docker.sock",
        slack=slack,
    )
    assert slack.messages == []


def test_registry_rejecting_the_login(
    fresh_staging: Staging, manifest, slack, auth_registry
) -> None:
    address, _ = auth_registry
    env = fresh_staging.env(slack, CIPIPE_STAGING__REGISTRY=address)
    r = fresh_staging.deploy(env, "--manifest", str(manifest))
    assert_refused_cleanly(
        fresh_staging,
        r,
        22,
        f"registry {address} rejected the login of {REGISTRY_USER}",
        "$REGISTRY_PASSWORD",
        slack=slack,
    )


def test_registry_refusing_the_push(
    fresh_staging: Staging, manifest, slack, readonly_registry
) -> None:
    env = fresh_staging.env(slack, CIPIPE_STAGING__REGISTRY=readonly_registry)
    r = fresh_staging.deploy(env, "--manifest", str(manifest))
    assert_refused_cleanly(
        fresh_staging, r, 22, f"registry {readonly_registry} refused the push", slack=slack
    )
    tags = requests.get(f"http://{readonly_registry}/v2/trading-system/tags/list", timeout=5)
    assert tags.status_code == 404  # nothing was pushed
    assert slack.messages == []


def test_ssh_authentication_failure(fresh_staging: Staging, manifest, slack) -> None:
    stranger = fresh_staging.sshd.other_key.read_text()
    env = fresh_staging.env(slack, STAGING_SSH_KEY=stranger)
    r = fresh_staging.deploy(env, "--manifest", str(manifest))
    line = assert_refused_cleanly(
        fresh_staging, r, 23, "ssh authentication failed for", "$STAGING_SSH_KEY", slack=slack
    )
    for part in stranger.splitlines()[1:-1]:
        assert part not in r.stdout + r.stderr + line


def test_unknown_host(fresh_staging: Staging, manifest, slack) -> None:
    env = fresh_staging.env(slack, CIPIPE_STAGING__HOST="staging.invalid")
    r = fresh_staging.deploy(env, "--manifest", str(manifest))
    assert_refused_cleanly(fresh_staging, r, 23, "unknown host 'staging.invalid'", slack=slack)


def test_unknown_host_key_is_refused_not_trusted(
    fresh_staging: Staging, manifest, slack, tmp_path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    env = fresh_staging.env(slack, CIPIPE_STAGING__KNOWN_HOSTS=str(empty))
    r = fresh_staging.deploy(env, "--manifest", str(manifest))
    assert_refused_cleanly(fresh_staging, r, 23, "is not in", "ssh-keyscan", slack=slack)
    assert empty.read_text() == ""  # never added on the fly


def test_missing_release_manifest(fresh_staging: Staging, slack, tmp_path) -> None:
    r = fresh_staging.deploy(fresh_staging.env(slack), "--manifest", str(tmp_path / "none.json"))
    assert_refused_cleanly(
        fresh_staging, r, 20, "no release manifest", "invoke release", slack=slack
    )
