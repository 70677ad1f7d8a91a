"""What a backing service is, how its readiness is probed, and the backend Protocol.

Readiness is checked by speaking each server's real wire protocol from the host, so
the same probe serves containers and local processes and "port open" is never
mistaken for "ready".
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ci.errors import ServiceError


@dataclass(frozen=True)
class ServiceSpec:
    """A service to provision, from `[tool.pipeline.services.<name>]`."""

    name: str  # "postgres" | "redis"
    image: str
    port: int = 0  # 0 = any free port
    version: str = ""
    user: str = "postgres"
    database: str = "postgres"
    startup_timeout: float = 30.0


@dataclass
class RunningService:
    """A started, ready service and how tests reach it."""

    name: str
    backend: str
    host: str
    port: int
    url: str
    env_var: str
    ready_s: float = 0.0
    secrets: list[str] = field(default_factory=list)
    where: str = ""  # data dir (local) or container id (docker), for the log

    def describe(self) -> str:
        """One log line: what runs where, and how long it took to become ready."""
        text = (
            f"{self.name} ({self.backend}) ready on {self.host}:{self.port} in {self.ready_s:.2f}s"
        )
        return f"{text} [{self.where}]" if self.where else text


class Backend(Protocol):
    """A way to run services: docker containers or local server processes."""

    name: str

    def available(self, specs: list[ServiceSpec]) -> str | None:
        """None when this backend can run all `specs`, else the reason it cannot."""
        ...

    def start(self, spec: ServiceSpec) -> RunningService:
        """Start one service and return once it is ready; raise ServiceError otherwise.
        Whatever was started is registered for `stop_all` before waiting."""
        ...

    def stop_all(self) -> None:
        """Tear down everything this backend started (idempotent, never raises)."""
        ...


PROBE_TIMEOUT_S = 2.0
ENV_VARS = {"postgres": "DATABASE_URL", "redis": "REDIS_URL"}
CONTAINER_PORTS = {"postgres": 5432, "redis": 6379}


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (on this host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free right now (callers retry if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on host:port. SO_REUSEADDR, as servers set it, so a
    closed server's TIME_WAIT connections do not count as "in use"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def probe_postgres(
    host: str,
    port: int,
    user: str = "postgres",
    database: str = "postgres",
    timeout: float = PROBE_TIMEOUT_S,
) -> str:
    """Send a StartupMessage; 'ready' when the server answers with an authentication
    request, else the server's reason (e.g. 'the database system is starting up')."""
    params = f"user\0{user}\0database\0{database}\0\0".encode()
    packet = struct.pack("!ii", 8 + len(params), 196608) + params
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(packet)
        kind = _recv_exact(sock, 1)
        length = struct.unpack("!i", _recv_exact(sock, 4))[0]
        body = _recv_exact(sock, length - 4)
    if kind == b"R":
        return "ready"
    if kind == b"E":
        fields = {f[:1]: f[1:].decode(errors="replace") for f in body.split(b"\0") if f}
        return fields.get(b"M", "error response")
    return f"unexpected reply {kind!r}"


def _messages(sock: socket.socket) -> Iterator[tuple[bytes, bytes]]:
    """Backend messages (type, body) from a Postgres connection."""
    while True:
        kind = _recv_exact(sock, 1)
        length = struct.unpack("!i", _recv_exact(sock, 4))[0]
        yield kind, _recv_exact(sock, length - 4)


def postgres_unix_query(
    socket_dir: Path, port: int, user: str, database: str, sql: str, timeout: float = 10.0
) -> None:
    """Run one statement over the server's unix socket with trust authentication (how
    the local backend sets the per-run password without it ever being on a command
    line); ServiceError with the server's message when it fails."""
    params = f"user\0{user}\0database\0{database}\0\0".encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(socket_dir / f".s.PGSQL.{port}"))
        sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
        stream = _messages(sock)
        error = ""
        sent = False
        for kind, body in stream:
            if kind == b"E":
                fields = {f[:1]: f[1:].decode(errors="replace") for f in body.split(b"\0") if f}
                error = fields.get(b"M", "error")
            elif kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
                raise ServiceError("postgres: the local socket asked for a password (not trust)")
            elif kind == b"Z":
                if error or sent:
                    break
                query = sql.encode() + b"\0"
                sock.sendall(b"Q" + struct.pack("!i", 4 + len(query)) + query)
                sent = True
        if error:
            raise ServiceError(f"postgres: {error}")


def probe_redis(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> str:
    """Send PING; 'ready' on +PONG (a loading server answers -LOADING)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"PING\r\n")
        reply = sock.recv(64)
    if reply.startswith(b"+PONG"):
        return "ready"
    return reply.decode(errors="replace").strip() or "no reply"


def probe(spec: ServiceSpec, host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> str:
    """Readiness of `spec` at host:port."""
    if spec.name == "postgres":
        return probe_postgres(host, port, spec.user, spec.database, timeout)
    return probe_redis(host, port, timeout)


def wait_ready(
    spec: ServiceSpec,
    host: str,
    port: int,
    *,
    alive: Callable[[], str | None],
    timeout: float,
) -> float:
    """Poll until the service answers its protocol; returns seconds waited.

    `alive()` returns None while the server process/container runs, or the reason it
    died (so a crash is reported at once instead of after the timeout)."""
    start = time.monotonic()
    deadline = start + timeout
    delay = 0.02
    while True:
        dead = alive()
        if dead is not None:
            raise ServiceError(f"{spec.name} exited before becoming ready: {dead}")
        # A server that accepts but never answers must not hold us past the deadline.
        wait = min(PROBE_TIMEOUT_S, max(0.05, deadline - time.monotonic()))
        try:
            state = probe(spec, host, port, wait)
        except OSError as err:
            state = err.strerror or str(err) or type(err).__name__
        if state == "ready":
            return time.monotonic() - start
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ServiceError(
                f"{spec.name} on {host}:{port} not ready after {timeout:g}s ({state}); "
                "raise [tool.pipeline.services] startup_timeout if the machine is slow"
            )
        time.sleep(min(delay, remaining))
        delay = min(delay * 1.5, 0.25)


def make_url(spec: ServiceSpec, host: str, port: int, password: str | None = None) -> str:
    """The URL tests read from DATABASE_URL / REDIS_URL."""
    if spec.name == "postgres":
        auth = f"{spec.user}:{password}" if password else spec.user
        return f"postgres://{auth}@{host}:{port}/{spec.database}"
    return f"redis://{host}:{port}/0"
