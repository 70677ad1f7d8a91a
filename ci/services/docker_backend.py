"""Docker backend: `postgres:15` / `redis:7-alpine` containers via the docker SDK,
published on 127.0.0.1 with a port docker picks (so parallel runs never collide),
labelled so a crashed run's containers can be found, always force-removed."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
from typing import Any

from ci.errors import ServiceError
from ci.services.base import (
    CONTAINER_PORTS,
    ENV_VARS,
    RunningService,
    ServiceSpec,
    make_url,
    pid_alive,
    port_in_use,
    wait_ready,
)

LABEL = "io.pipeline.service"
OWNER_LABEL = "io.pipeline.owner-pid"
HOST_LABEL = "io.pipeline.owner-host"


class DockerBackend:
    """Runs services as containers on the local Docker engine."""

    name = "docker"

    def __init__(self, *, pull: bool = True, client: Any = None) -> None:
        self.pull = pull
        self._client = client
        self._containers: list[Any] = []

    def _docker(self) -> Any:
        if self._client is None:
            # nox turns on debug logging; the SDK's HTTP chatter is not for users.
            logging.getLogger("urllib3").setLevel(logging.WARNING)
            logging.getLogger("docker").setLevel(logging.WARNING)
            try:
                import docker
            except ImportError as err:
                raise ServiceError(
                    "the docker Python SDK is not installed (pip install docker)"
                ) from err
            try:
                self._client = docker.from_env(timeout=20)
                self._client.ping()
            except Exception as err:  # the SDK raises many kinds; all mean "no engine"
                self._client = None
                raise ServiceError(f"docker engine not reachable: {_short(err)}") from None
        return self._client

    def available(self, specs: list[ServiceSpec]) -> str | None:
        """None when the engine answers and has (or may pull) every image."""
        try:
            client = self._docker()
        except ServiceError as err:
            return str(err)
        import docker.errors

        missing = []
        for spec in specs:
            try:
                client.images.get(spec.image)
            except docker.errors.ImageNotFound:
                if not self.pull:
                    missing.append(spec.image)
                    continue
                try:
                    client.images.pull(spec.image)
                except Exception as err:
                    missing.append(f"{spec.image} (pull failed: {_short(err)})")
            except Exception as err:
                return f"docker engine error: {_short(err)}"
        if missing:
            hint = "" if self.pull else " (set [tool.pipeline.services] pull = true to pull)"
            return "image(s) not present: " + ", ".join(missing) + hint
        return None

    def start(self, spec: ServiceSpec) -> RunningService:
        """Run the container, find its published port, wait for the protocol."""
        client = self._docker()
        self.reap_orphans()
        if spec.port and port_in_use(spec.port):
            raise ServiceError(
                f"{spec.name}: port {spec.port} is already in use; free it or set "
                f"[tool.pipeline.services.{spec.name}] port = 0 for a free port"
            )
        cport = CONTAINER_PORTS[spec.name]
        environment: dict[str, str] = {}
        password: str | None = None
        command: list[str] | None = None
        if spec.name == "postgres":
            password = secrets.token_urlsafe(18)
            environment = {
                "POSTGRES_USER": spec.user,
                "POSTGRES_PASSWORD": password,
                "POSTGRES_DB": spec.database,
                # A subdir of the tmpfs mount, so images that initialise as a non-root
                # user can create it (the mount point itself is root's).
                "PGDATA": "/var/lib/postgresql/data/pgdata",
            }
            command = ["postgres", "-c", "fsync=off", "-c", "synchronous_commit=off"]
        try:
            container = client.containers.run(
                spec.image,
                command=command,
                detach=True,
                environment=environment,
                ports={f"{cport}/tcp": ("127.0.0.1", spec.port or None)},
                labels={
                    LABEL: spec.name,
                    OWNER_LABEL: str(os.getpid()),
                    HOST_LABEL: socket.gethostname(),
                },
                tmpfs={"/var/lib/postgresql/data": "rw"} if spec.name == "postgres" else None,
            )
        except Exception as err:
            raise ServiceError(
                f"{spec.name}: docker run {spec.image} failed: {_short(err)}"
            ) from None
        self._containers.append(container)
        port = self._published_port(container, cport)

        def alive() -> str | None:
            container.reload()
            if container.status in ("exited", "dead"):
                logs = container.logs(tail=3).decode(errors="replace").strip().replace("\n", " | ")
                return f"container {container.short_id} {container.status}: {logs}"
            return None

        # The postgres image's init server listens on the unix socket only, so the first
        # TCP answer comes from the final server.
        ready = wait_ready(spec, "127.0.0.1", port, alive=alive, timeout=spec.startup_timeout)
        return RunningService(
            name=spec.name,
            backend=self.name,
            host="127.0.0.1",
            port=port,
            url=make_url(spec, "127.0.0.1", port, password),
            env_var=ENV_VARS[spec.name],
            ready_s=ready,
            secrets=[password] if password else [],
            where=f"container {container.short_id}",
        )

    def _published_port(self, container: Any, cport: int) -> int:
        container.reload()
        bindings = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(
            f"{cport}/tcp"
        )
        if not bindings:
            raise ServiceError(f"container {container.short_id} published no port for {cport}")
        return int(bindings[0]["HostPort"])

    def reap_orphans(self) -> int:
        """Remove containers that a pipeline process on this host started and did not
        remove because it was killed (SIGKILL, OOM). Containers of other hosts sharing
        the engine are left alone."""
        reaped = 0
        host = socket.gethostname()
        with contextlib.suppress(Exception):
            for container in self._docker().containers.list(
                all=True, filters={"label": [LABEL, f"{HOST_LABEL}={host}"]}
            ):
                pid = int(container.labels.get(OWNER_LABEL, "0"))
                if pid and not pid_alive(pid):
                    container.remove(force=True, v=True)
                    reaped += 1
        return reaped

    def stop_all(self) -> None:
        """Force-remove every container started here."""
        while self._containers:
            container = self._containers.pop()
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)


def _short(err: BaseException) -> str:
    """One short line from a docker SDK error (its explanation, not the HTTP wrapper)."""
    explanation = getattr(err, "explanation", None)
    text = (str(explanation) if explanation else str(err)).strip().splitlines()
    line = text[0] if text else type(err).__name__
    return line if len(line) <= 160 else line[:159] + "…"
