#!/usr/bin/env python3
"""Benchmarks of the reference trading system (numbers, not pass/fail):

1. matching engine throughput, single thread (trading-core `throughput` example);
2. `POST /orders` latency at a fixed rate on loopback, against the release binary
   with real Postgres and Redis provisioned by the pipeline.

Usage: python3 scripts/bench_service.py [--rate 500] [--seconds 10] [--connections 8]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ci import settings  # noqa: E402
from ci.services import provision  # noqa: E402
from ci.services.base import free_port  # noqa: E402


def cargo(*args: str) -> None:
    subprocess.run(["cargo", *args], cwd=ROOT, check=True)


def wait_listening(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"trading-system did not listen on {port} within {timeout:g}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()

    print("== matching engine throughput (release)", flush=True)
    cargo("run", "--release", "-q", "-p", "trading-core", "--example", "throughput")

    print("\n== POST /orders latency (release binary, real Postgres + Redis)", flush=True)
    cargo("build", "--release", "-q", "-p", "trading-system", "--bin", "trading-system")
    cargo("build", "--release", "-q", "-p", "trading-system", "--example", "loadgen")
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
    cfg = settings.load(ROOT)
    with provision(cfg, ["postgres", "redis"]) as svc:
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": svc["postgres"].url,
            "REDIS_URL": svc["redis"].url,
            "BIND_ADDR": f"127.0.0.1:{port}",
            "RUST_LOG": "warn",
        }
        server = subprocess.Popen([str(target / "trading-system")], env=env)
        try:
            wait_listening(port)
            subprocess.run(
                [
                    str(target / "examples" / "loadgen"),
                    f"127.0.0.1:{port}",
                    str(args.rate),
                    str(args.seconds),
                    str(args.connections),
                ],
                check=True,
            )
        finally:
            server.terminate()
            print(f"server exit code on SIGTERM: {server.wait(timeout=40)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
