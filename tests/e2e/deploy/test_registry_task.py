"""`invoke deploy.registry`: start a local registry in the background, report it, stop
only the one it started."""

from __future__ import annotations

import os
from pathlib import Path

import requests
from helpers import run_invoke

from ci.services.base import port_in_use

from .sshd import free_port


def test_start_status_stop(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIPIPE_")}
    env.update(CIPIPE_STAGING__REGISTRY=address, CIPIPE_STAGING__REGISTRY_DIR=str(tmp_path / "reg"))
    try:
        r = run_invoke(["deploy.registry", "--start"], env, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"registry {address} running (pid" in r.stdout
        assert requests.get(f"http://{address}/v2/", timeout=5).status_code == 200
        again = run_invoke(["deploy.registry", "--start"], env, timeout=60)
        assert again.stdout == r.stdout  # already running: the same one, not a second
        status = run_invoke(["deploy.registry"], env, timeout=60)
        assert "running (pid" in status.stdout and "; answers" in status.stdout
    finally:
        stop = run_invoke(["deploy.registry", "--stop"], env, timeout=60)
    assert stop.returncode == 0 and f"registry {address} stopped" in stop.stdout
    assert not port_in_use(int(address.rsplit(":", 1)[1]))
    gone = run_invoke(["deploy.registry", "--stop"], env, timeout=60)
    assert "was not started here" in gone.stdout

    remote = run_invoke(
        ["deploy.registry", "--start"],
        {**env, "CIPIPE_STAGING__REGISTRY": "registry.example.com:443"},
    )
    assert remote.returncode == 20
    assert remote.stderr.strip() == (
        "error: registry registry.example.com:443 is not on this machine's loopback: "
        "nothing to manage"
    )
