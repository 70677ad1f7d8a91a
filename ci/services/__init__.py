"""Service provisioning for integration tests: pick a backend, start every service,
yield their URLs, and tear everything down on success, failure, exception, Ctrl-C
and SIGTERM (the stage runner turns SIGTERM into KeyboardInterrupt)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ci.errors import ConfigError, ServiceError
from ci.services.base import Backend, RunningService, ServiceSpec
from ci.services.docker_backend import DockerBackend
from ci.services.local import LocalBackend
from ci.settings import Settings

KNOWN = ("postgres", "redis")


def specs_from_settings(settings: Settings, names: list[str]) -> list[ServiceSpec]:
    """Typed service specs from `[tool.pipeline.services.<name>]`."""
    section = settings.section("services")
    timeout = section.number("startup_timeout", minimum=0.001)
    specs = []
    for name in names:
        if name not in KNOWN:
            raise ConfigError(
                f"[tool.pipeline] unknown service {name!r}; known services: {', '.join(KNOWN)}"
            )
        sub = section.sub(name)
        port = sub.whole("port", minimum=0)
        if port > 65535:
            raise ConfigError(f"[tool.pipeline] services.{name}.port: {port} is not a TCP port")
        specs.append(
            ServiceSpec(
                name=name,
                image=sub.text("image"),
                port=port,
                version=sub.text("version"),
                user=sub.text("user") or "postgres",
                database=sub.text("database") or "postgres",
                startup_timeout=timeout,
            )
        )
    return specs


def template_root(settings: Settings) -> Path | None:
    """Where the local backend keeps its initdb templates (None: initdb every run)."""
    text = settings.section("services").text("template_dir").strip()
    if text.lower() == "none":
        return None
    if text:
        return Path(os.path.expanduser(text))
    # Under the temp dir, like the servers' data dirs: when we run as root, the server
    # (and initdb) run as an unprivileged account, which cannot enter root's home.
    return Path(tempfile.gettempdir()) / f"cipipe-postgres-templates-{os.getuid()}"


def choose_backend(
    settings: Settings, specs: list[ServiceSpec], say: Callable[[str], None] | None = None
) -> Backend:
    """The configured backend, or under `auto`: docker when every image is already
    present, else the local binaries, else docker pulling the images (a pull is only
    tried when nothing else can run: it costs a registry round trip, or a DNS timeout
    offline). ServiceError naming what to install when none can."""
    section = settings.section("services")
    kind = section.choice("backend", ("auto", "docker", "local"))
    pull = section.flag("pull")
    docker = DockerBackend(pull=pull)
    local = LocalBackend(template_root=template_root(settings))
    options: dict[str, list[Backend]] = {"docker": [docker], "local": [local]}
    auto: list[Backend] = [DockerBackend(pull=False), local]
    if pull:
        auto.append(docker)
    candidates = options.get(kind, auto)
    reasons: list[str] = []
    for backend in candidates:
        reason = backend.available(specs)
        if reason is None:
            if say:
                why = f" (not {'; '.join(reasons)})" if reasons else ""
                say(f"services backend: {backend.name}{why}")
            return backend
        reasons.append(f"{backend.name}: {reason}")
    raise ServiceError(
        "cannot provide " + ", ".join(s.name for s in specs) + "; " + "; ".join(reasons)
    )


@contextmanager
def provision(
    settings: Settings,
    names: list[str],
    *,
    say: Callable[[str], None] | None = None,
) -> Iterator[dict[str, RunningService]]:
    """Start `names` and yield {name: RunningService}; always tear down. `say` gets
    the backend choice and one line per service once it is ready."""
    specs = specs_from_settings(settings, names)
    backend = choose_backend(settings, specs, say)
    running: dict[str, RunningService] = {}
    try:
        for spec in specs:
            service = backend.start(spec)
            running[spec.name] = service
            if say:
                say(service.describe())
        yield running
    finally:
        backend.stop_all()


__all__ = ["RunningService", "ServiceError", "ServiceSpec", "provision"]
