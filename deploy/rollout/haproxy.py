"""HAProxy on one host: the configuration (rendered from `[production.haproxy]`), a
process started in the background for a single host without a service manager
(`invoke deploy.proxy --start`), and its runtime API: weights and server states
changed over the admin socket (no reload; open connections are untouched) and
`show stat` read for what the proxy saw of each colour.

In front: one frontend on `bind`; one backend `app` with two servers, `blue` and
`green`, weighted 0-100 (percent), health-checked on /health; `X-Served-By` names the
colour that answered. A connection refused by a colour is retried on the other
(`retries`, `option redispatch`); the request was never sent, so this is safe for POST.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from ci.result import atomic_write
from ci.runner import which
from ci.services.base import pid_alive
from deploy.errors import DeployError, PreconditionFailed
from deploy.rollout.config import COLOURS, HaproxyConfig

BACKEND = "app"
HINT = "apt-get install haproxy"


class ProxyError(DeployError):
    """HAProxy's runtime API is unreachable or refused a command: traffic unchanged."""

    exit_code = 27


def render(cfg: HaproxyConfig, weights: Mapping[str, int], pidfile: Path) -> str:
    """haproxy.cfg for `cfg` with the servers' starting `weights` (the live split)."""
    servers = "\n".join(
        f"    server {c} {cfg.host}:{cfg.ports[c]} weight {int(weights.get(c, 0))} check"
        for c in COLOURS
    )
    inter = max(100, int(cfg.check_interval * 1000))
    return f"""# Rendered by `invoke deploy.proxy` from [tool.pipeline.production.haproxy].
global
    stats socket {cfg.socket} mode 600 level admin
    stats timeout 30s
    pidfile {pidfile}
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 30s
    timeout http-keep-alive 10s
    retries 3
    option redispatch 1
    option http-keep-alive

frontend trading
    bind {cfg.bind}
    default_backend {BACKEND}
    http-response set-header X-Served-By %[srv_name]

backend {BACKEND}
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server inter {inter} fall 3 rise 2
{servers}
"""


class Runtime:
    """HAProxy's runtime API over its unix socket: one command per connection."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout

    def command(self, line: str) -> str:
        """Send one command, return the answer; ProxyError when the socket does not answer."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(self.timeout)
                conn.connect(str(self.path))
                conn.sendall(line.encode() + b"\n")
                chunks = []
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
        except (OSError, TimeoutError) as err:
            reason = getattr(err, "strerror", None) or type(err).__name__
            raise ProxyError(
                f"HAProxy's runtime API at {self.path} does not answer ({reason}): start it "
                "(`invoke deploy.proxy --start`) or fix [production.haproxy] socket"
            ) from None
        return b"".join(chunks).decode(errors="replace")

    def stat(self) -> str:
        """`show stat` (CSV)."""
        return self.command("show stat")

    def set_weight(self, server: str, weight: int) -> None:
        """`set server app/<server> weight N`; ProxyError unless HAProxy accepted it."""
        answer = self.command(f"set server {BACKEND}/{server} weight {int(weight)}").strip()
        if answer:
            raise ProxyError(f"HAProxy refused weight {weight} for {server}: {answer}")

    def set_state(self, server: str, state: str) -> None:
        """`set server app/<server> state ready|drain|maint`."""
        answer = self.command(f"set server {BACKEND}/{server} state {state}").strip()
        if answer:
            raise ProxyError(f"HAProxy refused state {state} for {server}: {answer}")

    def weight(self, server: str) -> int:
        """The server's current weight (`get weight`: "10 (initial 0)")."""
        answer = self.command(f"get weight {BACKEND}/{server}").strip()
        try:
            return int(answer.split()[0])
        except (ValueError, IndexError):
            raise ProxyError(f"HAProxy answered {answer!r} to `get weight {server}`") from None


class Daemon:
    """HAProxy in the background for this host, its files under `folder`."""

    def __init__(self, cfg: HaproxyConfig, folder: Path) -> None:
        self.cfg = cfg
        self.folder = folder
        self.conf = folder / "haproxy.cfg"
        self.pidfile = folder / "haproxy.pid"
        self.log = folder / "haproxy.log"

    def pid(self) -> int | None:
        """The running HAProxy's pid (started from this folder), or None."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        return pid if pid_alive(pid) and str(self.conf) in cmdline else None

    def start(self, weights: Mapping[str, int]) -> int:
        """Render the configuration with `weights`, check it, start HAProxy; its pid."""
        running = self.pid()
        if running is not None:
            return running
        exe = which("haproxy")
        if exe is None:
            raise PreconditionFailed(f"HAProxy is not installed: {HINT}")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.cfg.socket.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.conf, render(self.cfg, weights, self.pidfile))
        check = subprocess.run(
            [exe, "-c", "-q", "-f", str(self.conf)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            last = (check.stderr.strip() or check.stdout.strip() or "?").splitlines()[-1]
            raise PreconditionFailed(f"HAProxy rejects {self.conf}: {last}")
        with self.log.open("ab") as log:
            proc = subprocess.Popen(
                [exe, "-db", "-f", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        atomic_write(self.pidfile, f"{proc.pid}\n")
        runtime = Runtime(self.cfg.socket, timeout=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-1:]
                raise PreconditionFailed(f"HAProxy exited at start: {' '.join(tail) or '?'}")
            with contextlib.suppress(ProxyError):
                runtime.command("show info")
                return proc.pid
            time.sleep(0.05)
        raise PreconditionFailed(f"HAProxy did not open {self.cfg.socket} within 10s")

    def stop(self) -> bool:
        """Stop it (SIGTERM, then SIGKILL after 5 s); False when none ran."""
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while pid_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)
        return True
