"""Service provisioning against real servers: local binaries and docker containers."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ci import settings
from ci.errors import ServiceError
from ci.services import choose_backend, provision, specs_from_settings
from ci.services.base import port_in_use, probe_postgres, probe_redis
from ci.services.docker_backend import LABEL
from ci.services.local import reap_orphans

from .images import build_scratch_image

ROOT = Path(__file__).resolve().parents[2]


def cfg(**env: str) -> settings.Settings:
    return settings.load(ROOT, {f"PIPELINE_{k.upper()}": v for k, v in env.items()})


def test_local_services_answer_and_are_torn_down() -> None:
    with provision(cfg(services__backend="local"), ["postgres", "redis"]) as svc:
        pg, rd = svc["postgres"], svc["redis"]
        assert pg.url == f"postgres://postgres@127.0.0.1:{pg.port}/postgres"
        assert rd.url == f"redis://127.0.0.1:{rd.port}/0"
        assert probe_postgres("127.0.0.1", pg.port) == "ready"
        assert probe_redis("127.0.0.1", rd.port) == "ready"
        dirs = [Path(pg.where), Path(rd.where)]
        assert all(d.is_dir() for d in dirs)
    assert not port_in_use(pg.port) and not port_in_use(rd.port)
    assert not any(d.exists() for d in dirs)


def test_parallel_runs_do_not_collide() -> None:
    ports: list[set[int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def one_run() -> None:
        try:
            with provision(cfg(services__backend="local"), ["postgres", "redis"]) as svc:
                ports.append({s.port for s in svc.values()})
                barrier.wait(timeout=60)  # all three hold their services at once
        except BaseException as err:
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=one_run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(ports) == 3
    assert len(set().union(*ports)) == 6, ports


def test_teardown_on_exception() -> None:
    with pytest.raises(RuntimeError), provision(cfg(services__backend="local"), ["redis"]) as svc:
        port = svc["redis"].port
        raise RuntimeError("test body failed")
    assert not port_in_use(port)


def test_auto_falls_back_to_local_when_images_are_missing() -> None:
    s = cfg(services__postgres__image="pipeline-test/no-such-image:1")
    backend = choose_backend(s, specs_from_settings(s, ["postgres"]))
    assert backend.name == "local"


def test_docker_only_without_image_says_why() -> None:
    s = cfg(services__backend="docker", services__redis__image="pipeline-test/no-such-image:1")
    with pytest.raises(
        ServiceError, match=r"docker: image\(s\) not present: pipeline-test/no-such"
    ):
        choose_backend(s, specs_from_settings(s, ["redis"]))


def docker_ready() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not docker_ready(), reason="no docker engine on this machine")
def test_docker_backend_runs_a_real_container() -> None:
    image = build_scratch_image(
        "pipeline-test/redis:local",
        "/usr/bin/redis-server",
        ["--bind", "0.0.0.0", "--protected-mode", "no", "--save", ""],
    )
    s = cfg(services__backend="docker", services__redis__image=image)
    with provision(s, ["redis"]) as svc:
        rd = svc["redis"]
        assert rd.backend == "docker"
        assert probe_redis("127.0.0.1", rd.port) == "ready"
        running = subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label={LABEL}=redis"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert running
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert left == []
    assert not port_in_use(rd.port)


ORPHAN = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from ci import settings
from ci.services import provision
cfg = settings.load(Path(sys.argv[1]), {"PIPELINE_SERVICES__BACKEND": "local"})
with provision(cfg, ["postgres", "redis"]) as svc:
    print(" ".join(f"{s.port}:{s.where}" for s in svc.values()), flush=True)
    time.sleep(120)
"""


def test_orphans_of_a_killed_run_are_reaped() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, str(ROOT)], stdout=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline().split()
    proc.kill()  # SIGKILL: no teardown runs
    proc.wait()
    started = [(int(p), Path(w)) for p, w in (item.split(":", 1) for item in line)]
    assert len(started) == 2 and all(port_in_use(p) for p, _ in started)
    reaped = reap_orphans()
    assert {w for _, w in started} <= set(reaped)
    deadline = time.monotonic() + 10
    while any(port_in_use(p) for p, _ in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(port_in_use(p) for p, _ in started)
    assert not any(w.exists() for _, w in started)
