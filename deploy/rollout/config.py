"""`[tool.pipeline.production]` (ci/defaults.toml lists every key) read once into frozen
dataclasses. Windows and intervals are multiplied by `time_scale`, so a drill or a
test runs the same rollout in seconds. Credentials come from the environment only:
`$PRODUCTION_DATABASE_URL` and `$PRODUCTION_REDIS_URL` (the colours' backing services),
`$GITHUB_TOKEN` (deployments, approvals, incident issues), `$SLACK_WEBHOOK_URL`."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.settings import Section, Settings
from deploy.config import Secret, _secret, is_loopback, service_env
from deploy.errors import PreconditionFailed

BACKENDS = ("haproxy", "kubernetes")
COLOURS = ("blue", "green")


def other(colour: str) -> str:
    """The other colour."""
    return "green" if colour == "blue" else "blue"


@dataclass(frozen=True)
class Thresholds:
    """What the analysis compares against (seconds already scaled)."""

    error_rate: float
    error_window: float
    p99_ms: float
    p99_window: float
    health_failures: int
    alert_error_rate: float
    alert_p99_ms: float
    min_samples: int
    min_requests: int
    relative: bool
    alpha: float
    relative_min_weight: float
    latency_ratio: float
    error_ratio: float


@dataclass(frozen=True)
class HaproxyConfig:
    """The single-host backend."""

    socket: Path
    bind: str
    host: str
    ports: Mapping[str, int]
    name: str
    check_interval: float


@dataclass(frozen=True)
class KubeConfig:
    """The Kubernetes backend."""

    kubectl: str
    context: str
    namespace: str
    name: str
    gateway: str
    gateway_namespace: str
    replicas: int
    port: int
    secret: str


@dataclass(frozen=True)
class ProductionConfig:
    """Everything `invoke deploy.production` is configured with."""

    backend: str
    steps: tuple[int, ...]
    bake: float
    final_watch: float
    sample_interval: float
    health_interval: float
    hold_max: float
    thresholds: Thresholds
    approvals: int
    approval_max_age: float
    approvers_file: Path
    approval_namespace: str
    approval_environments: tuple[str, ...]
    require_e2e: bool
    check_staging: bool
    registry: str
    repository: str
    service_env: tuple[tuple[str, str], ...]
    health_timeout: float
    request_timeout: float
    stop_timeout: float
    drain_timeout: float
    state_dir: Path
    github_api: str
    github_repository: str
    github_token: Secret | None
    environment: str
    issue_labels: tuple[str, ...]
    webhook: Secret | None
    database_url: Secret | None
    redis_url: Secret | None
    log_lines: int
    haproxy: HaproxyConfig
    kube: KubeConfig

    def secrets(self) -> list[str]:
        """Every secret value held (for the redactor)."""
        return [
            s.value
            for s in (self.github_token, self.webhook, self.database_url, self.redis_url)
            if s
        ]

    @property
    def registry_loopback(self) -> bool:
        """True for a registry on this machine (plain HTTP)."""
        return is_loopback(self.registry.rsplit(":", 1)[0])


def parse_steps(value: Any) -> tuple[int, ...]:
    """`[10, 50, 100]` (or "10,50,100" from the environment) checked: whole percents,
    rising, ending at 100."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise PreconditionFailed(
            f"[tool.pipeline] production.steps: expected a list, got {value!r}"
        )
    try:
        steps = tuple(int(str(v).strip()) for v in items if str(v).strip())
    except ValueError:
        raise PreconditionFailed(
            f"[tool.pipeline] production.steps: {value!r} is not a list of whole percents"
        ) from None
    rising = all(a < b for a, b in itertools.pairwise(steps))
    if not steps or steps[-1] != 100 or steps[0] <= 0 or not rising:
        raise PreconditionFailed(
            f"[tool.pipeline] production.steps: {list(steps)} must rise from above 0 to 100"
        )
    return steps


def _scaled(section: Section, key: str, scale: float, minimum: float = 0) -> float:
    return section.number(key, minimum=minimum) * scale


def _haproxy(section: Section, state_dir: Path) -> HaproxyConfig:
    socket = section.path("socket") or state_dir / "haproxy.sock"
    bind = section.text("bind").strip()
    if not re.fullmatch(r"[\w.\-\[\]:]*:\d+", bind):
        raise PreconditionFailed(
            f"[tool.pipeline] production.haproxy.bind: {bind!r} is not host:port"
        )
    ports = {c: section.whole(f"{c}_port", minimum=1) for c in COLOURS}
    if ports["blue"] == ports["green"]:
        raise PreconditionFailed(
            "[tool.pipeline] production.haproxy: blue_port and green_port are equal"
        )
    return HaproxyConfig(
        socket=socket,
        bind=bind,
        host=section.text("host").strip(),
        ports=ports,
        name=section.text("name").strip(),
        check_interval=section.number("check_interval", minimum=0.1),
    )


def _kube(section: Section) -> KubeConfig:
    namespace = section.text("namespace").strip()
    return KubeConfig(
        kubectl=section.text("kubectl").strip(),
        context=section.text("context").strip(),
        namespace=namespace,
        name=section.text("name").strip(),
        gateway=section.text("gateway").strip(),
        gateway_namespace=section.text("gateway_namespace").strip() or namespace,
        replicas=section.whole("replicas", minimum=1),
        port=section.whole("port", minimum=1),
        secret=section.text("secret").strip(),
    )


def _env_secret(env: Mapping[str, str], name: str) -> Secret | None:
    value = env.get(name, "").strip()
    return Secret(value, f"${name}") if value else None


def load(settings: Settings) -> ProductionConfig:
    """The production configuration with its credentials."""
    s = settings.section("production")
    env = settings.env
    scale = s.number("time_scale", minimum=0.0001)
    staging = settings.section("staging")
    registry = s.text("registry").strip() or staging.text("registry").strip()
    registry = registry.removeprefix("http://").removeprefix("https://")
    repository = (
        s.text("repository").strip()
        or staging.text("repository").strip()
        or settings.top.text("binary")
    )
    bake = _scaled(s, "bake", scale, 0.1)
    state_dir = s.path("state_dir")
    assert state_dir is not None
    webhook = _secret(env, "SLACK_WEBHOOK_URL", s.path("webhook_file"), "webhook URL")
    thresholds = Thresholds(
        error_rate=s.number("error_rate", minimum=0),
        error_window=_scaled(s, "error_window", scale, 0.01),
        p99_ms=s.number("p99_ms", minimum=0),
        p99_window=_scaled(s, "p99_window", scale, 0.01),
        health_failures=s.whole("health_failures", minimum=1),
        alert_error_rate=s.number("alert_error_rate", minimum=0),
        alert_p99_ms=s.number("alert_p99_ms", minimum=0),
        min_samples=s.whole("min_samples", minimum=1),
        min_requests=s.whole("min_requests", minimum=1),
        relative=s.flag("relative"),
        alpha=s.number("relative_alpha", minimum=1e-9),
        relative_min_weight=s.number("relative_min_weight", minimum=0),
        latency_ratio=s.number("latency_ratio", minimum=1),
        error_ratio=s.number("error_ratio", minimum=1),
    )
    backend = s.choice("backend", BACKENDS)
    return ProductionConfig(
        backend=backend,
        steps=parse_steps(s.data.get("steps", [10, 50, 100])),
        bake=bake,
        final_watch=_scaled(s, "final_watch", scale),
        sample_interval=_scaled(s, "sample_interval", scale, 0.01),
        health_interval=_scaled(s, "health_interval", scale, 0.01),
        hold_max=_scaled(s, "hold_max", scale) or bake,
        thresholds=thresholds,
        approvals=s.whole("approvals", minimum=0),
        approval_max_age=s.number("approval_max_age", minimum=1),
        approvers_file=s.path("approvers_file") or settings.root / "deploy" / "approvers",
        approval_namespace=s.text("approval_namespace").strip() or "production-approval",
        approval_environments=tuple(s.strings("approval_environments")),
        require_e2e=s.flag("require_e2e"),
        check_staging=s.flag("check_staging"),
        registry=registry,
        repository=repository,
        service_env=service_env(s.strings("service_env")),
        health_timeout=s.number("health_timeout", minimum=1),
        request_timeout=s.number("request_timeout", minimum=0.1),
        stop_timeout=s.number("stop_timeout", minimum=0),
        drain_timeout=s.number("drain_timeout", minimum=0),
        state_dir=state_dir,
        github_api=(
            s.text("github_api").strip()
            or env.get("GITHUB_API_URL", "")
            or "https://api.github.com"
        ).rstrip("/"),
        github_repository=s.text("github_repository").strip() or env.get("GITHUB_REPOSITORY", ""),
        github_token=_env_secret(env, "GITHUB_TOKEN"),
        environment=s.text("environment").strip() or "production",
        issue_labels=tuple(s.strings("issue_labels")),
        webhook=webhook,
        database_url=_env_secret(env, "PRODUCTION_DATABASE_URL"),
        redis_url=_env_secret(env, "PRODUCTION_REDIS_URL"),
        log_lines=s.whole("log_lines", minimum=1),
        haproxy=_haproxy(s.sub("haproxy"), state_dir),
        kube=_kube(s.sub("kubernetes")),
    )
