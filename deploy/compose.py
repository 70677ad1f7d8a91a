"""The release on a compose host: the files it is made of and the compose commands that
start it.

On the host, in `remote_dir`:

    compose.yaml   deploy/compose.yaml as of this release
    release.env    APP_IMAGE (pinned by digest), POSTGRES_IMAGE, REDIS_IMAGE, APP_BIND,
                   APP_PORT, RELEASE_VERSION, RELEASE_REVISION, RELEASE_DIGEST
    app.env        extra service environment ([staging] service_env)
    secrets.env    POSTGRES_PASSWORD and DATABASE_URL: made once, mode 0600, never rewritten
                   (the database volume was initialised with that password)
    good/          the three release files of the last release that passed its health
                   check and smoke tests: the rollback target
    .deploy.lock/  held while a deployment changes the host (owner: who, since when)

Rendering is pure (tested without a host); `Stack` runs compose there.
"""

from __future__ import annotations

import posixpath
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ci.interrupts import shield
from ci.parsers import strip_ansi
from ci.runner import CommandResult
from deploy.errors import HostError
from deploy.host import Host

COMPOSE_FILE = Path(__file__).with_name("compose.yaml")
RELEASE_FILES = ("compose.yaml", "release.env", "app.env")
GOOD = "good"
SECRETS = "secrets.env"
LOCK = ".deploy.lock"
SERVICE = "app"
DB_USER = "trading"  # compose.yaml's POSTGRES_USER / POSTGRES_DB


@dataclass(frozen=True)
class ReleaseFiles:
    """The text of a release's files on the host."""

    compose: str
    release_env: str
    app_env: str

    def as_dict(self) -> dict[str, str]:
        """{file name: text}."""
        return dict(zip(RELEASE_FILES, (self.compose, self.release_env, self.app_env), strict=True))


@dataclass(frozen=True)
class Running:
    """What a release file set says runs: version, revision, image digest."""

    version: str
    revision: str
    digest: str
    image: str

    def describe(self) -> str:
        """`0.1.0 (abc123def456, sha256:1234…)`."""
        return f"{self.version} ({self.revision[:12]}, {self.digest[:19]}…)"


def env_text(pairs: Mapping[str, str] | list[tuple[str, str]]) -> str:
    """A compose env file: KEY=VALUE lines (values taken literally, no quotes needed)."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    lines = []
    for key, value in items:
        if "\n" in value:
            raise ValueError(f"{key}: a value in an env file cannot span lines")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def parse_env(text: str) -> dict[str, str]:
    """The variables of an env file (comments and blank lines skipped)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value
    return out


def render(
    *,
    image: str,
    postgres: str,
    redis: str,
    bind: str,
    port: int,
    version: str,
    revision: str,
    digest: str,
    service_env: tuple[tuple[str, str], ...],
    compose: str | None = None,
) -> ReleaseFiles:
    """The files of a release (`image` pinned by digest)."""
    release = {
        "APP_IMAGE": image,
        "POSTGRES_IMAGE": postgres,
        "REDIS_IMAGE": redis,
        "APP_BIND": bind,
        "APP_PORT": str(port),
        "RELEASE_VERSION": version,
        "RELEASE_REVISION": revision,
        "RELEASE_DIGEST": digest,
    }
    return ReleaseFiles(
        compose=compose if compose is not None else COMPOSE_FILE.read_text(encoding="utf-8"),
        release_env=env_text(release),
        app_env=env_text(list(service_env)),
    )


def running_of(release_env: str | None) -> Running | None:
    """What a release.env says runs, or None (no file, or not one of ours)."""
    if not release_env:
        return None
    env = parse_env(release_env)
    if "APP_IMAGE" not in env:
        return None
    return Running(
        version=env.get("RELEASE_VERSION", "unknown"),
        revision=env.get("RELEASE_REVISION", ""),
        digest=env.get("RELEASE_DIGEST", ""),
        image=env["APP_IMAGE"],
    )


def make_secrets(password: str | None = None) -> str:
    """secrets.env for a new host: a fresh database password and the URL using it."""
    password = password or secrets.token_urlsafe(24)
    url = f"postgres://{DB_USER}:{password}@postgres:5432/{DB_USER}"
    return env_text({"POSTGRES_PASSWORD": password, "DATABASE_URL": url})


def compose_command(choice: str, probe: dict[str, bool]) -> list[str]:
    """The compose command to use: the configured one, or under "auto" the plugin
    (`docker compose`) when `probe` says it works, else `docker-compose`."""
    if choice != "auto":
        return choice.split()
    if probe.get("docker compose"):
        return ["docker", "compose"]
    if probe.get("docker-compose"):
        return ["docker-compose"]
    raise HostError(
        "neither `docker compose` nor `docker-compose` works on the host: install the "
        "Compose plugin or Debian's docker-compose there"
    )


class Stack:
    """The compose project of one environment on a host."""

    def __init__(self, host: Host, command: list[str], directory: str, project: str) -> None:
        self.host = host
        self.command = command
        self.directory = directory
        self.project = project

    def path(self, name: str) -> str:
        """A file of the release folder on the host."""
        return posixpath.join(self.directory, name)

    def compose(
        self, *args: str, timeout: float | None = None, check: bool = True, echo: bool = True
    ) -> CommandResult:
        """`compose -p <project> --project-directory <dir> -f compose.yaml --env-file
        release.env <args>` on the host."""
        argv = [
            *self.command,
            "-p",
            self.project,
            "--project-directory",
            self.directory,
            "-f",
            self.path("compose.yaml"),
            "--env-file",
            self.path("release.env"),
            *args,
        ]
        return self.host.run(argv, timeout=timeout, check=check, echo=echo)

    def read_files(self, folder: str = "") -> ReleaseFiles | None:
        """The release files in the folder (or `good/`), None when incomplete."""
        texts = [self.host.read(self.path(posixpath.join(folder, n))) for n in RELEASE_FILES]
        if any(t is None for t in texts):
            return None
        compose, release_env, app_env = (t or "" for t in texts)
        return ReleaseFiles(compose, release_env, app_env)

    def write_files(self, files: ReleaseFiles, folder: str = "") -> None:
        """Write a release's files (each atomically); release.env last, so a reader that
        finds it also finds the files it goes with."""
        texts = files.as_dict()
        for name in ("compose.yaml", "app.env", "release.env"):
            self.host.write(self.path(posixpath.join(folder, name)), texts[name])

    def ensure_secrets(self) -> str:
        """secrets.env's text: made (mode 0600) when the host has none."""
        text = self.host.read(self.path(SECRETS))
        if text is None:
            text = make_secrets()
            self.host.write(self.path(SECRETS), text, mode=0o600)
        return text

    @contextmanager
    def locked(self, owner: str) -> Iterator[None]:
        """Hold the release folder's deploy lock for the block: two deployments never
        change one host at once. The lock names its owner; a run that died leaves it,
        and the message says how to clear it."""
        path = self.path(LOCK)
        if not self.host.make_dir(path):
            held = (self.host.read(posixpath.join(path, "owner")) or "unknown owner").strip()
            raise HostError(
                f"another deployment holds {self.host.name}:{path} ({held}): wait for it to "
                "finish, or remove that folder if the run died"
            )
        try:
            self.host.write(posixpath.join(path, "owner"), owner + "\n")
            yield
        finally:
            with shield():
                self.host.run(["rm", "-rf", path], check=False)

    def container(self) -> str | None:
        """The id of the service's container, if it exists."""
        res = self.compose("ps", "-q", SERVICE, check=False, echo=False)
        ids = res.stdout.split()
        return ids[0] if res.ok and ids else None

    def state(self) -> dict[str, str]:
        """The service container's state: status, exit code, restarts, image id."""
        cid = self.container()
        if cid is None:
            return {"status": "missing"}
        fmt = "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}} {{.Image}}"
        res = self.host.run(["docker", "inspect", "--format", fmt, cid], check=False, echo=False)
        parts = res.stdout.split()
        if not res.ok or len(parts) < 4:
            return {"status": "missing"}
        return {"status": parts[0], "exit_code": parts[1], "restarts": parts[2], "image": parts[3]}

    def repo_digests(self, image_id: str) -> list[str]:
        """The `name@sha256:...` digests the host knows for an image id."""
        fmt = "{{range .RepoDigests}}{{println .}}{{end}}"
        res = self.host.run(["docker", "image", "inspect", "--format", fmt, image_id], check=False)
        return [line.strip() for line in res.stdout.splitlines() if line.strip()]

    def logs(self, lines: int = 20) -> str:
        """The service's last log lines."""
        res = self.compose("logs", "--no-color", "--tail", str(lines), SERVICE, check=False)
        return res.stdout + res.stderr


def crash_reason(state: dict[str, str]) -> str | None:
    """Why the service container is not going to become healthy, or None while it may:
    exited, dead, or restarted by its restart policy (a crash loop)."""
    status = state.get("status", "missing")
    restarts = int(state.get("restarts", "0") or 0)
    code = state.get("exit_code", "?")
    if status in ("exited", "dead"):
        return f"the service container {status} with code {code}"
    if status == "restarting" or restarts > 0:
        return f"the service container keeps exiting (restarted {restarts}x)"
    if status == "missing":
        return "the service container does not exist"
    return None


def last_log_line(logs: str) -> str:
    """The last meaningful line of `compose logs` (prefix `app_1  | ` dropped)."""
    for line in reversed(strip_ansi(logs).splitlines()):
        text = re.sub(r"^\S+\s+\|\s?", "", line).strip()
        if text and not text.startswith("Attaching to"):
            return text[:200]
    return ""
