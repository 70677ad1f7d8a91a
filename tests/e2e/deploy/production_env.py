"""A production environment on this machine for the rollout tests and the false-abort
script: HAProxy (started through `invoke deploy.proxy`), blue and green containers of
the service image (built from a release binary, pushed to a test registry, its e2e
verdict recorded as the staging flow records it), Postgres and Redis on loopback, a
stand-in staging /health, and a bounded load generator on HAProxy's loopback port."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Short windows: a whole 10/50/100 rollout in about half a minute on 2 cores.
FAST = {
    "BAKE": "6",
    "FINAL_WATCH": "2",
    "SAMPLE_INTERVAL": "0.5",
    "HEALTH_INTERVAL": "0.5",
    "ERROR_WINDOW": "2",
    "P99_WINDOW": "4",
    "MIN_SAMPLES": "4",
    "MIN_REQUESTS": "5",
    "HOLD_MAX": "6",
    "HEALTH_TIMEOUT": "30",
    "DRAIN_TIMEOUT": "5",
    "STOP_TIMEOUT": "5",
}


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status":"ok"}'
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def staging_stand_in() -> Iterator[str]:
    """A /health answering 200: the staging the production pre-check probes."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Production:
    """One production environment (its own ports, names, state and history)."""

    def __init__(
        self, root: Path, registry: str, database_url: str, redis_url: str, staging_url: str
    ) -> None:
        self.root = root
        self.registry = registry
        self.database_url = database_url
        self.redis_url = redis_url
        self.staging_url = staging_url
        self.name = f"prd{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.ports = {"blue": free_port(), "green": free_port()}
        self.out = root / "out"
        self.state = root / "state"
        self.url = f"http://127.0.0.1:{self.port}"
        self.approvers = root / "approvers"  # the allowed-signers file of the approvers
        self.approvers.touch()
        self.extra: dict[str, str] = {}

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIPIPE_")}
        for name in ("GITHUB_ACTIONS", "GITHUB_TOKEN", "SLACK_WEBHOOK_URL", "GITHUB_RUN_ID"):
            env.pop(name, None)
        env.pop("DEPLOY_SIGNING_KEY", None)
        env.update(
            CIPIPE_OUTPUT_DIR=str(self.out),
            CIPIPE_HISTORY__PATH=str(self.root / "history.sqlite3"),
            CIPIPE_STAGING__URL=self.staging_url,
            CIPIPE_PRODUCTION__REGISTRY=self.registry,
            CIPIPE_PRODUCTION__STATE_DIR=str(self.state),
            CIPIPE_PRODUCTION__APPROVERS_FILE=str(self.approvers),
            CIPIPE_PRODUCTION__HAPROXY__BIND=f"127.0.0.1:{self.port}",
            CIPIPE_PRODUCTION__HAPROXY__BLUE_PORT=str(self.ports["blue"]),
            CIPIPE_PRODUCTION__HAPROXY__GREEN_PORT=str(self.ports["green"]),
            CIPIPE_PRODUCTION__HAPROXY__NAME=self.name,
            CIPIPE_PRODUCTION__HAPROXY__CHECK_INTERVAL="0.5",
            PRODUCTION_DATABASE_URL=self.database_url,
            PRODUCTION_REDIS_URL=self.redis_url,
        )
        env.update({f"CIPIPE_PRODUCTION__{k}": v for k, v in FAST.items()})
        env.update(self.extra)
        env.update(extra)
        return env

    def settings(self, **extra: str) -> Any:
        from ci import settings as settings_mod

        return settings_mod.load(ROOT, self.env(**extra))

    def invoke(self, *args: str, timeout: float = 600, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=ROOT,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def spawn(self, *args: str, **extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "invoke", *args],
            cwd=ROOT,
            env=self.env(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def publish(self, client: Any, release: Any, version: str) -> str:
        """Build the image of `release` labelled `version`, push it as
        <registry>/trading-system:<version>, record its e2e verdict (passed); its digest."""
        from ci.runner import Runner
        from deploy import local_images
        from deploy.engine import Engine
        from deploy.record import DeploymentLog

        rel = dataclasses.replace(release, version=version)
        ref = f"{self.registry}/trading-system:{version}"
        with Runner(echo=False) as runner:
            eng = Engine(client, runner)
            base = local_images.ensure(
                client, local_images.runtime_base(rel.binary, runner), runner
            )
            eng.build(rel, base, [ref])
            digest = eng.push(ref, None, self.registry)
        DeploymentLog(self.settings(), "staging", print).e2e(
            version, digest, "passed", 1.0, "1 passed"
        )
        return digest

    def signing_key(self, person: str) -> Path:
        """`person`'s SSH key (made on first use) and their line in the approvers file."""
        key = self.root / "keys" / person
        if not key.is_file():
            key.parent.mkdir(exist_ok=True)
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", person, "-f", str(key)],
                check=True,
            )
            pub = " ".join(Path(f"{key}.pub").read_text().split()[:2])
            with self.approvers.open("a", encoding="utf-8") as fh:
                fh.write(f"{person} {pub}\n")
        return key

    def approve_as(self, version: str, person: str) -> subprocess.CompletedProcess:
        """`invoke deploy.approve` signed with `person`'s key."""
        key = str(self.signing_key(person))
        return self.invoke("deploy.approve", "--version", version, DEPLOY_SIGNING_KEY=key)

    def approve(self, version: str, *people: str) -> None:
        for person in people:
            r = self.approve_as(version, person)
            assert r.returncode == 0 or "already approved" in r.stderr, r.stdout + r.stderr

    def weights(self) -> dict[str, int]:
        from deploy.rollout.haproxy import Runtime

        rt = Runtime(self.state / "haproxy.sock")
        return {c: rt.weight(c) for c in ("blue", "green")}

    def running(self, client: Any) -> dict[str, bool]:
        out = {}
        for c in ("blue", "green"):
            try:
                out[c] = client.containers.get(f"{self.name}-{c}").status == "running"
            except Exception:
                out[c] = False
        return out

    def rollout_state(self) -> dict:
        return json.loads((self.state / "rollout.json").read_text())

    def cleanup(self, client: Any) -> None:
        self.invoke("deploy.proxy", "--stop", timeout=60)
        for c in ("blue", "green"):
            with contextlib.suppress(Exception):
                client.containers.get(f"{self.name}-{c}").remove(force=True)


@dataclass
class Hit:
    t: float
    status: int  # 0: no answer
    served_by: str
    ms: float


@dataclass
class Load:
    """A bounded load generator: `rate` requests/s over `threads` keep-alive connections
    to `port` (GET /book/ACME, every 10th a small limit order), until stopped or
    `max_seconds`."""

    port: int
    rate: float = 200.0
    threads: int = 8
    max_seconds: float = 300.0
    hits: list[Hit] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _worker(self, index: int) -> None:
        interval = self.threads / self.rate
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        start = time.monotonic()
        n = 0
        while not self._stop.is_set() and time.monotonic() - start < self.max_seconds:
            due = start + n * interval + index * interval / self.threads
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            n += 1
            t0 = time.monotonic()
            try:
                if n % 10 == 0:
                    side = "buy" if (n // 10 + index) % 2 else "sell"
                    body = json.dumps(
                        {
                            "symbol": "ACME",
                            "side": side,
                            "type": "limit",
                            "price": 10000,
                            "qty": 1,
                            "client_id": f"l{index}-{n}",
                            "account": f"acct{index}",
                        }
                    )
                    conn.request("POST", "/orders", body, {"Content-Type": "application/json"})
                else:
                    conn.request("GET", "/book/ACME")
                resp = conn.getresponse()
                resp.read()
                hit = Hit(
                    t0,
                    resp.status,
                    resp.getheader("X-Served-By") or "",
                    (time.monotonic() - t0) * 1000,
                )
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                hit = Hit(t0, 0, "", (time.monotonic() - t0) * 1000)
            self.hits.append(hit)
        conn.close()

    def start(self) -> Load:
        for i in range(self.threads):
            t = threading.Thread(target=self._worker, args=(i,), daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def stop(self) -> Load:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=10)
        return self

    def failed(self, since: float = 0.0, until: float = float("inf")) -> list[Hit]:
        return [
            h for h in self.hits if since <= h.t <= until and (h.status == 0 or h.status >= 500)
        ]

    def rate_achieved(self) -> float:
        if len(self.hits) < 2:
            return 0.0
        return len(self.hits) / (self.hits[-1].t - self.hits[0].t)


def release_from_binary(binary: Path) -> Any:
    """A Release for a built service binary (no manifest: scripts on a dev machine)."""
    from deploy.release import Release, sha256_file

    commit = (
        subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
        or "0" * 40
    )
    return Release(
        version="0.0.0",
        commit=commit,
        target="",
        binary=binary,
        binary_name="trading-system",
        sha256=sha256_file(binary),
        manifest=binary,
    )


@contextlib.contextmanager
def environment(root: Path, client: Any, registry: str | None = None) -> Iterator[Production]:
    """Everything a rollout needs on this machine; torn down at the end. `registry`: an
    address already serving (else a local registry is started on a free port)."""
    from ci import settings as settings_mod
    from ci.services import provision
    from deploy.config import RegistryTarget
    from deploy.registry import DistributionRegistry, LocalRegistry

    with contextlib.ExitStack() as stack:
        if registry is None:
            registry = f"127.0.0.1:{free_port()}"
            data = root / "registry"
            local = LocalRegistry(registry, data)
            stack.enter_context(
                local.running(DistributionRegistry(RegistryTarget(registry, "", None, False, data)))
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIPIPE_")}
        env["CIPIPE_SERVICES__BACKEND"] = "local"
        services = stack.enter_context(
            provision(settings_mod.load(ROOT, env), ["postgres", "redis"])
        )
        staging = stack.enter_context(staging_stand_in())
        prod = Production(root, registry, services["postgres"].url, services["redis"].url, staging)
        stack.callback(prod.cleanup, client)
        r = prod.invoke("deploy.proxy", "--start", timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        yield prod
