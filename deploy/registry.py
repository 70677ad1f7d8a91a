"""Image registries. `Registry` is what the flows need from one (reachable, credentials
accepted, which digest a tag names); `DistributionRegistry` speaks the Distribution HTTP
API (v2) that Docker Hub, GHCR, Harbor and the reference `registry` all serve, with basic
auth. `LocalRegistry` runs Debian's `docker-registry` (the Distribution registry) on a
loopback address, for a run (`running()`) or in the background (`start_daemon()`)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from ci.result import atomic_write
from ci.runner import which
from ci.services.base import pid_alive
from deploy.config import RegistryTarget
from deploy.errors import PreconditionFailed, RegistryError

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)
REGISTRY_HINT = "apt-get install docker-registry (Debian's Distribution registry)"


class Registry(Protocol):
    """What the deploy flows need from a registry."""

    address: str

    def check(self) -> None:
        """Reachable and, when a login is configured, accepting it; RegistryError otherwise."""
        ...

    def digest(self, repository: str, reference: str) -> str | None:
        """The manifest digest `repository:reference` names, or None when it does not exist."""
        ...

    def auth(self) -> dict[str, str] | None:
        """The login for the engine's push (docker SDK auth_config), or None."""
        ...


class DistributionRegistry:
    """A registry speaking the Distribution API v2 with optional basic auth."""

    def __init__(self, target: RegistryTarget, timeout: float = 10) -> None:
        self.target = target
        self.address = target.address
        self.timeout = timeout

    def _get(self, path: str, *, head: bool = False, accept: str | None = None) -> object:
        import requests

        auth = None
        if self.target.password:
            auth = (self.target.username, self.target.password.value)
        headers = {"Accept": accept} if accept else {}
        try:
            return requests.request(
                "HEAD" if head else "GET",
                f"{self.target.url}{path}",
                auth=auth,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.RequestException as err:
            # The exception text quotes the URL; the address is all a user needs.
            raise RegistryError(
                f"registry {self.address} not reachable ({type(err).__name__}): start it "
                "(`invoke deploy.registry --start` for the local one) or fix "
                "[tool.pipeline.staging] registry"
            ) from None

    def reachable(self) -> bool:
        """True when something answers the registry API at the address."""
        try:
            self._get("/v2/")
        except RegistryError:
            return False
        return True

    def check(self) -> None:
        """Reachable, and the login (if any) accepted; RegistryError otherwise."""
        resp = self._get("/v2/")
        status = getattr(resp, "status_code", 0)
        if status == 200:
            return
        if status == 401:
            if self.target.password:
                raise RegistryError(
                    f"registry {self.address} rejected the login of {self.target.username} "
                    f"(password from {self.target.password.source}): fix the credentials"
                )
            raise RegistryError(
                f"registry {self.address} requires a login: set $REGISTRY_USERNAME and "
                "$REGISTRY_PASSWORD (or [tool.pipeline.staging] registry_password_file)"
            )
        raise RegistryError(
            f"registry {self.address} answered {status} to /v2/: not a Distribution registry?"
        )

    def digest(self, repository: str, reference: str) -> str | None:
        """The digest of `repository:reference` (HEAD on its manifest), None if absent."""
        resp = self._get(
            f"/v2/{repository}/manifests/{reference}", head=True, accept=MANIFEST_TYPES
        )
        status = getattr(resp, "status_code", 0)
        if status == 404:
            return None
        if status != 200:
            raise RegistryError(
                f"registry {self.address} answered {status} for {repository}:{reference}"
            )
        headers = getattr(resp, "headers", {})
        value = str(headers.get("Docker-Content-Digest", ""))
        return value or None

    def auth(self) -> dict[str, str] | None:
        """The basic-auth login for pushes, when one is configured."""
        if not self.target.password:
            return None
        return {"username": self.target.username, "password": self.target.password.value}


CONFIG = """version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: {address}
"""


class LocalRegistry:
    """Debian's `docker-registry` on a loopback address, storage under `data_dir`
    (kept between runs, so digests pushed earlier stay pullable)."""

    def __init__(self, address: str, data_dir: Path, extra_config: str = "") -> None:
        self.address = address
        self.data_dir = data_dir
        self.extra_config = extra_config
        self.pidfile = data_dir / "registry.pid"

    def _prepare(self) -> tuple[str, Path]:
        exe = which("docker-registry") or which("registry")
        if exe is None:
            raise PreconditionFailed(f"no local registry to start: {REGISTRY_HINT}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "config.yml"
        text = CONFIG.format(storage=self.data_dir / "storage", address=self.address)
        atomic_write(config, text + self.extra_config)
        return exe, config

    def _spawn(self) -> subprocess.Popen[bytes]:
        exe, config = self._prepare()
        log = (self.data_dir / "registry.log").open("ab")
        try:
            # Its own session: a terminal Ctrl-C reaches the deploy, which stops it.
            return subprocess.Popen(
                [exe, "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        finally:
            log.close()

    def _wait(self, proc: subprocess.Popen[bytes], probe: DistributionRegistry) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = _tail(self.data_dir / "registry.log")
                raise RegistryError(f"the local registry on {self.address} exited at start: {tail}")
            if probe.reachable():
                return
            time.sleep(0.1)
        _stop(proc.pid)
        raise RegistryError(f"the local registry on {self.address} did not answer within 15s")

    @contextmanager
    def running(self, probe: DistributionRegistry) -> Iterator[None]:
        """Run the registry for the block; always stopped afterwards."""
        proc = self._spawn()
        try:
            self._wait(proc, probe)
            yield
        finally:
            _stop(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def start_daemon(self, probe: DistributionRegistry) -> int:
        """Start it in the background (pid file in `data_dir`); returns its pid."""
        pid = self.daemon_pid()
        if pid is not None:
            return pid
        proc = self._spawn()
        self._wait(proc, probe)
        atomic_write(self.pidfile, f"{proc.pid}\n")
        return proc.pid

    def daemon_pid(self) -> int | None:
        """The pid of the background registry this folder started, if it still runs."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            cmdline = ""
        if not pid_alive(pid) or str(self.data_dir / "config.yml") not in cmdline:
            return None  # gone, or the pid now belongs to another program
        return pid

    def stop_daemon(self) -> bool:
        """Stop the background registry; False when none was running."""
        pid = self.daemon_pid()
        self.pidfile.unlink(missing_ok=True)
        if pid is None:
            return False
        _stop(pid)
        return True


def _stop(pid: int) -> None:
    """SIGTERM the registry's process group, SIGKILL after 5 s."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _tail(log: Path, lines: int = 2) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(text[-lines:]) or "no output"
