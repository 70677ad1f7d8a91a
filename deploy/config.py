"""What a deployment is configured with: `[tool.pipeline.staging]` (ci/defaults.toml lists
every key) read once into frozen dataclasses, and the credentials, which come only from
the environment or from files, never from pyproject.toml or the command line.

Credentials and where they are read from (`<ENV>` is the environment's name in upper
case: STAGING now, PRODUCTION for the production flow):

| credential | environment | file (config key) |
|---|---|---|
| SSH private key | `$<ENV>_SSH_KEY` (the key itself) | `ssh_key` (a path) |
| its passphrase | `$<ENV>_SSH_KEY_PASSPHRASE` | |
| registry login | `$REGISTRY_USERNAME`, `$REGISTRY_PASSWORD` | `registry_password_file` |
| Slack incoming webhook | `$SLACK_WEBHOOK_URL` | `webhook_file` |

Every value read here is registered with the run's redactor before anything is printed.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ci.settings import Section, Settings
from deploy.errors import PreconditionFailed

COMPOSE_CHOICES = ("auto", "docker compose", "docker-compose")
LOCAL_IMAGES = ("auto", "always", "never")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Secret:
    """A credential: its value and where it came from (for messages; never the value)."""

    value: str = field(repr=False)
    source: str

    def __bool__(self) -> bool:
        return bool(self.value)


@dataclass(frozen=True)
class SshTarget:
    """How to reach a deployment host."""

    host: str
    port: int
    user: str
    key: Secret | None  # None: ssh's defaults (agent, ~/.ssh/id_*)
    key_passphrase: Secret | None
    known_hosts: Path
    connect_timeout: float
    command_timeout: float

    @property
    def where(self) -> str:
        """`user@host:port` for messages."""
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class RegistryTarget:
    """Where images are pushed and pulled."""

    address: str  # host:port
    username: str
    password: Secret | None
    start_local: bool
    data_dir: Path

    @property
    def loopback(self) -> bool:
        """True for a registry on this machine's loopback (plain HTTP, startable here)."""
        return is_loopback(self.address.rsplit(":", 1)[0])

    @property
    def url(self) -> str:
        """Base URL of its HTTP API: plain HTTP on loopback (as Docker allows), else TLS."""
        return f"{'http' if self.loopback else 'https'}://{self.address}"


@dataclass(frozen=True)
class Images:
    """The public images the stack runs on, and whether local stand-ins may replace them."""

    base: str
    postgres: str
    redis: str
    local: str  # auto | always | never


@dataclass(frozen=True)
class StagingConfig:
    """Everything `invoke deploy.staging` is configured with."""

    environment: str
    ssh: SshTarget
    registry: RegistryTarget
    repository: str
    images: Images
    remote_dir: str
    project: str
    compose: str
    bind: str
    port: int
    url: str
    service_env: tuple[tuple[str, str], ...]
    health_timeout: float
    request_timeout: float
    e2e: bool
    rollback: bool
    webhook: Secret | None
    budget: float

    def secrets(self) -> list[str]:
        """Every secret value this configuration holds (for the redactor)."""
        values: list[str] = []
        for secret in (self.ssh.key, self.ssh.key_passphrase, self.registry.password):
            if secret:
                values.append(secret.value)
        if self.webhook:
            values.append(self.webhook.value)
            # Error texts of HTTP libraries quote the path without the scheme and host.
            path = urlsplit(self.webhook.value).path
            if len(path) >= 8:
                values.append(path)
        return values


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8 / ::1 addresses."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_secret_file(path: Path, what: str) -> Secret:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise PreconditionFailed(f"cannot read the {what} file {path}: {err.strerror}") from None
    value = text if what == "SSH key" else text.strip()
    if not value.strip():
        raise PreconditionFailed(f"the {what} file {path} is empty")
    return Secret(value, str(path))


def _secret(env: Mapping[str, str], name: str, file: Path | None, what: str) -> Secret | None:
    """The credential from `$name`, else from `file`, else None."""
    value = env.get(name, "")
    if value.strip():
        return Secret(value if what == "SSH key" else value.strip(), f"${name}")
    if file is not None:
        return _read_secret_file(file, what)
    return None


def service_env(entries: list[str]) -> tuple[tuple[str, str], ...]:
    """`KEY=VALUE` strings as pairs; a malformed entry is one line naming it."""
    pairs: list[tuple[str, str]] = []
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not _ENV_NAME.fullmatch(key.strip()):
            raise PreconditionFailed(
                f"[tool.pipeline] staging.service_env: {entry!r} is not KEY=VALUE"
            )
        if "\n" in value:
            raise PreconditionFailed(f"staging.service_env: the value of {key} spans lines")
        pairs.append((key.strip(), value))
    return tuple(pairs)


def ssh_target(section: Section, env: Mapping[str, str], prefix: str) -> SshTarget:
    """The SSH target of a `[staging]`-like section; the key from `$<prefix>_SSH_KEY`
    or the `ssh_key` file."""
    host = section.text("host").strip()
    if not host:
        raise PreconditionFailed(f"[tool.pipeline] {section.name}.host is empty: name the host")
    port = section.whole("ssh_port", minimum=1)
    user = section.text("user").strip() or env.get("USER") or _login_name()
    key = _secret(env, f"{prefix}_SSH_KEY", section.path("ssh_key"), "SSH key")
    passphrase = _secret(env, f"{prefix}_SSH_KEY_PASSPHRASE", None, "SSH key passphrase")
    known = section.path("known_hosts") or Path("~/.ssh/known_hosts").expanduser()
    return SshTarget(
        host=host,
        port=port,
        user=user,
        key=key,
        key_passphrase=passphrase,
        known_hosts=known,
        connect_timeout=section.number("connect_timeout", minimum=1),
        command_timeout=section.number("command_timeout", minimum=1),
    )


def _login_name() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def registry_target(section: Section, env: Mapping[str, str]) -> RegistryTarget:
    """The registry of a `[staging]`-like section and its optional basic-auth login."""
    address = section.text("registry").strip().removeprefix("http://").removeprefix("https://")
    if not address or "/" in address:
        raise PreconditionFailed(
            f"[tool.pipeline] {section.name}.registry: expected host:port, got {address!r}"
        )
    password = _secret(
        env, "REGISTRY_PASSWORD", section.path("registry_password_file"), "registry password"
    )
    username = env.get("REGISTRY_USERNAME", "").strip()
    if password and not username:
        raise PreconditionFailed(
            f"a registry password is set ({password.source}) but $REGISTRY_USERNAME is not"
        )
    data = section.path("registry_dir")
    assert data is not None
    return RegistryTarget(
        address=address,
        username=username,
        password=password,
        start_local=section.flag("start_registry"),
        data_dir=data,
    )


def load(settings: Settings, environment: str = "staging") -> StagingConfig:
    """The `[tool.pipeline.<environment>]` configuration with its credentials."""
    section = settings.section(environment)
    env = settings.env
    prefix = environment.upper()
    ssh = ssh_target(section, env, prefix)
    port = section.whole("port", minimum=1)
    if port > 65535:
        raise PreconditionFailed(f"[tool.pipeline] {environment}.port: {port} is not a TCP port")
    url = section.text("url").strip().rstrip("/")
    if not url:
        host = ssh.host if ":" not in ssh.host else f"[{ssh.host}]"
        url = f"http://{host}:{port}"
    if urlsplit(url).scheme not in ("http", "https"):
        raise PreconditionFailed(f"[tool.pipeline] {environment}.url: {url!r} is not an http URL")
    repository = section.text("repository").strip() or settings.top.text("binary")
    project = section.text("project").strip()
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", project):
        raise PreconditionFailed(
            f"[tool.pipeline] {environment}.project: {project!r} is not a compose project "
            "name (lower-case letters, digits, '-' and '_')"
        )
    webhook = _secret(env, "SLACK_WEBHOOK_URL", section.path("webhook_file"), "webhook URL")
    if webhook and urlsplit(webhook.value).scheme not in ("http", "https"):
        raise PreconditionFailed(f"the Slack webhook from {webhook.source} is not an http(s) URL")
    return StagingConfig(
        environment=environment,
        ssh=ssh,
        registry=registry_target(section, env),
        repository=repository,
        images=Images(
            base=section.text("base_image").strip(),
            postgres=section.text("postgres_image").strip(),
            redis=section.text("redis_image").strip(),
            local=section.choice("local_images", LOCAL_IMAGES),
        ),
        remote_dir=section.text("remote_dir").strip().rstrip("/") or ".",
        project=project,
        compose=section.choice("compose", COMPOSE_CHOICES),
        bind=section.text("bind").strip(),
        port=port,
        url=url,
        service_env=service_env(section.strings("service_env")),
        health_timeout=section.number("health_timeout", minimum=1),
        request_timeout=section.number("request_timeout", minimum=0.1),
        e2e=section.flag("e2e"),
        rollback=section.flag("rollback"),
        webhook=webhook,
        budget=settings.budget(environment),
    )
