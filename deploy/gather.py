"""Read-only probes before a deployment: the release, the engine, the registry, the host
and the history store. Every unreachable or misconfigured part is found here, before
anything is built, pushed or changed, and reported as one line."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.runner import Runner, which
from ci.settings import Settings
from deploy import compose, engine
from deploy.config import StagingConfig
from deploy.errors import RegistryError
from deploy.host import Host, open_host
from deploy.notify import Notifier
from deploy.plan import Facts
from deploy.record import DeploymentLog
from deploy.registry import REGISTRY_HINT, DistributionRegistry, LocalRegistry
from deploy.release import MANIFEST, ImageName, read_release


@dataclass
class Parts:
    """The live parts a deployment acts on (opened by `gather`, closed by the flow)."""

    engine: engine.Engine
    registry: DistributionRegistry
    local_registry: LocalRegistry | None  # started for the run when set
    host: Host
    stack: compose.Stack
    log: DeploymentLog
    notifier: Notifier

    def close(self) -> None:
        """Close the SSH connection and the docker client."""
        with contextlib.suppress(Exception):
            self.host.close()
        with contextlib.suppress(Exception):
            self.engine.client.close()


def manifest_path(settings: Settings, given: str) -> Path:
    """The release manifest: `--manifest`, else `<output_dir>/release/manifest.json`."""
    if given:
        path = Path(given).expanduser()
        return path if path.is_absolute() else (settings.root / path)
    return settings.out_dir / MANIFEST


def _registry(cfg: StagingConfig, runner: Runner) -> tuple[DistributionRegistry, bool]:
    """The registry client and whether a local one must be started for the run."""
    remote = DistributionRegistry(cfg.registry)
    if remote.reachable():
        remote.check()
        return remote, False
    if not (cfg.registry.loopback and cfg.registry.start_local):
        remote.check()  # raises the unreachable error with its fix
    if which("docker-registry") is None and which("registry") is None:
        raise RegistryError(
            f"no registry answers at {cfg.registry.address} and none can be started here: "
            f"{REGISTRY_HINT}, or point [tool.pipeline.staging] registry at one"
        )
    runner.say(f"registry {cfg.registry.address}: not running; a local one starts for this run")
    return remote, True


def _compose_probe(host: Host) -> dict[str, bool]:
    return {
        "docker compose": host.run(["docker", "compose", "version"], check=False).ok,
        "docker-compose": host.run(["docker-compose", "version"], check=False).ok,
    }


def gather(
    settings: Settings, cfg: StagingConfig, runner: Runner, notifier: Notifier, manifest: Path
) -> tuple[Facts, Parts]:
    """Probe everything the deployment needs; raise the first problem as one line."""
    release = read_release(manifest)
    client: Any = engine.connect(settings.env)
    eng = engine.Engine(client, runner)
    base = (
        cfg.images.base if cfg.images.local != "always" and eng.has_image(cfg.images.base) else ""
    )
    reg, start = _registry(cfg, runner)
    log = DeploymentLog(settings, cfg.environment, runner.say)
    history = log.check()
    host = open_host(cfg.ssh, runner)
    try:
        command = compose.compose_command(cfg.compose, _compose_probe(host))
        stack = compose.Stack(host, command, cfg.remote_dir, cfg.project)
        current = compose.running_of(host.read(stack.path("release.env")))
        good = compose.running_of(host.read(stack.path(f"{compose.GOOD}/release.env")))
    except BaseException:
        host.close()
        raise
    local = LocalRegistry(cfg.registry.address, cfg.registry.data_dir) if start else None
    facts = Facts(
        release=release,
        image=ImageName(cfg.registry.address, cfg.repository),
        base=base,
        base_public=cfg.images.base,
        registry_up=not start,
        registry_start=start,
        host=cfg.ssh.where,
        compose=tuple(command),
        remote_dir=cfg.remote_dir,
        project=cfg.project,
        current=current,
        good=good,
        url=cfg.url,
        health_timeout=cfg.health_timeout,
        notifier=notifier.describe(),
        history=history,
        e2e=cfg.e2e,
        rollback=cfg.rollback,
    )
    return facts, Parts(eng, reg, local, host, stack, log, notifier)
