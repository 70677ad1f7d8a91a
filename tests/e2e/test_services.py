"""Service provisioning against real servers: local binaries and docker containers."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from helpers import ROOT, docker_problem, run_nox

from ci import settings
from ci.errors import ServiceError
from ci.services import choose_backend, provision, specs_from_settings
from ci.services.base import port_in_use, probe_postgres, probe_redis, wait_ready
from ci.services.docker_backend import LABEL
from ci.services.local import reap_orphans

from .images import postgres_image, redis_image


def cfg(**env: str) -> settings.Settings:
    return settings.load(ROOT, {f"CIPIPE_{k.upper()}": v for k, v in env.items()})


def test_local_services_answer_and_are_torn_down() -> None:
    with provision(cfg(services__backend="local"), ["postgres", "redis"]) as svc:
        pg, rd = svc["postgres"], svc["redis"]
        [password] = pg.secrets  # generated per run, password auth over TCP
        assert len(password) >= 16
        assert pg.url == f"postgres://postgres:{password}@127.0.0.1:{pg.port}/postgres"
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


@pytest.fixture(scope="module")
def docker_engine() -> None:
    """Skips without an engine on a laptop; under CI=true a missing engine FAILS: the CI
    machine is meant to have one, and a skipped docker test must not count as a pass."""
    problem = docker_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"docker backend tests need a Docker engine under CI: {problem}")
    pytest.skip(f"no docker engine on this machine: {problem}")


needs_docker = pytest.mark.usefixtures("docker_engine")


def containers(*filters: str) -> list[str]:
    args = [a for f in filters for a in ("--filter", f)]
    out = subprocess.run(["docker", "ps", "-aq", *args], capture_output=True, text=True, check=True)
    return out.stdout.split()


@needs_docker
def test_docker_backend_runs_real_containers() -> None:
    s = cfg(
        services__backend="docker",
        services__postgres__image=postgres_image(),
        services__redis__image=redis_image(),
    )
    with provision(s, ["postgres", "redis"]) as svc:
        pg, rd = svc["postgres"], svc["redis"]
        assert pg.backend == rd.backend == "docker"
        password = pg.secrets[0]
        assert pg.url == f"postgres://postgres:{password}@127.0.0.1:{pg.port}/postgres"
        assert probe_postgres("127.0.0.1", pg.port) == "ready"
        assert probe_redis("127.0.0.1", rd.port) == "ready"
        assert len(containers(f"label={LABEL}")) == 2
    assert containers(f"label={LABEL}") == []
    assert not port_in_use(pg.port) and not port_in_use(rd.port)


@needs_docker
def test_integration_stage_on_docker_masks_the_generated_password(fixture_env) -> None:
    env = fixture_env(
        "integration_fault",
        CIPIPE_SERVICES__BACKEND="docker",
        CIPIPE_SERVICES__POSTGRES__IMAGE=postgres_image(),
        CIPIPE_SERVICES__REDIS__IMAGE=redis_image(),
    )
    r = run_nox(["integration"], env)
    assert r.returncode != 0  # the fixture's planted failure
    out_dir = Path(env["CIPIPE_OUTPUT_DIR"])
    log = (out_dir / "integration.log").read_text()
    assert "services backend: docker" in log
    # the failing test printed DATABASE_URL: the password is masked in every output
    assert re.search(r"database: postgres://postgres:\*\*\*@127\.0\.0\.1:\d+/postgres", log)
    junit = (out_dir / "integration" / "junit.xml").read_text()
    assert "postgres://postgres:***@" in junit
    for text in (r.stdout + r.stderr, log, junit):
        assert not re.search(r"postgres://postgres:(?!\*\*\*)[^@]+@", text)
    assert containers(f"label={LABEL}") == []


ORPHAN = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from ci import settings
from ci.services import provision
cfg = settings.load(Path(sys.argv[1]), {"CIPIPE_SERVICES__BACKEND": "local"})
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


def test_a_server_that_never_answers_times_out() -> None:
    """A listener that accepts connections but never speaks the protocol."""
    spec = specs_from_settings(cfg(), ["postgres"])[0]
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(ServiceError, match=rf"postgres on 127.0.0.1:{port} not ready after 1s"):
            wait_ready(spec, "127.0.0.1", port, alive=lambda: None, timeout=1.0)
        assert time.monotonic() - start < 1.5


def test_postgres_from_a_template_with_a_fresh_password_every_run() -> None:
    import psycopg

    # Not pytest's tmp_path: as root the server runs as another account, which must be
    # able to reach the folder (pytest's is private to root).
    root = Path(tempfile.mkdtemp(prefix="cipipe-template-test-"))
    root.chmod(0o755)
    try:
        check_template_runs(root, psycopg)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def check_template_runs(tmp_path: Path, psycopg) -> None:
    s = cfg(services__backend="local", services__template_dir=str(tmp_path / "templates"))
    passwords = []
    for _ in range(2):
        with provision(s, ["postgres"]) as svc:
            pg = svc["postgres"]
            [password] = pg.secrets
            passwords.append(password)
            with psycopg.connect(pg.url, connect_timeout=5) as conn:  # password auth works
                assert conn.execute("select 1").fetchone() == (1,)
            wrong = pg.url.replace(password, "not-the-password")
            with pytest.raises(psycopg.OperationalError, match="password authentication"):
                psycopg.connect(wrong, connect_timeout=5)
    assert passwords[0] != passwords[1]
    [template] = list((tmp_path / "templates").iterdir())  # made once, then copied
    assert (template / "PG_VERSION").is_file()
    assert not [p for p in (tmp_path / "templates").iterdir() if p.name.startswith(".")]


def test_auto_prefers_local_binaries_to_a_pull(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pull is tried only when nothing else can run (offline it costs a DNS timeout)."""
    from ci.services import docker_backend

    pulled: list[str] = []
    original = docker_backend.DockerBackend.available

    def spy(self: docker_backend.DockerBackend, specs: list) -> str | None:
        if self.pull:
            pulled.extend(s.image for s in specs)
        return original(self, specs)

    monkeypatch.setattr(docker_backend.DockerBackend, "available", spy)
    s = cfg(services__postgres__image="pipeline-test/no-such-image:1", services__pull="true")
    backend = choose_backend(s, specs_from_settings(s, ["postgres"]))
    assert backend.name == "local" and pulled == []
