"""The service image: deploy/Dockerfile on the locally made base, carrying exactly the
release binary, labelled with its source revision, answering /health from a container."""

from __future__ import annotations

import hashlib
import io
import secrets
import tarfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from ci.runner import Runner
from deploy import local_images
from deploy.engine import Engine
from deploy.release import read_release


@pytest.fixture(scope="module")
def image(docker_client, manifest: Path):
    """The image built from the session's release binary, removed afterwards."""
    release = read_release(manifest)
    tag = f"pipeline-test/trading-system:{uuid.uuid4().hex[:8]}"
    with Runner(echo=False) as runner:
        eng = Engine(docker_client, runner)
        base = local_images.ensure(
            docker_client, local_images.runtime_base(release.binary, runner), runner
        )
        built = eng.build(release, base, [tag])
    yield {"tag": tag, "release": release, "base": base, "id": built.image_id}
    docker_client.images.remove(tag, force=True)


def test_image_carries_the_release_binary_and_its_provenance(docker_client, image) -> None:
    release = image["release"]
    attrs = docker_client.images.get(image["tag"]).attrs
    labels = attrs["Config"]["Labels"]
    assert labels["org.opencontainers.image.revision"] == release.commit
    assert labels["org.opencontainers.image.version"] == release.version
    assert labels["org.opencontainers.image.created"] == release.created
    assert labels["io.pipeline.binary.sha256"] == release.sha256
    assert labels["org.opencontainers.image.base.name"] == image["base"]
    assert attrs["Config"]["User"] == "65532:65532"
    # the binary inside is the released one, byte for byte (not a rebuild)
    container = docker_client.containers.create(image["tag"])
    try:
        stream, _ = container.get_archive("/usr/local/bin/service")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile("service")
            assert member is not None
            assert hashlib.sha256(member.read()).hexdigest() == release.sha256
    finally:
        container.remove(force=True)
    out = docker_client.containers.run(image["tag"], ["--version"], remove=True)
    assert release.version in out.decode()


def test_the_image_answers_health_from_a_container(docker_client, image) -> None:
    with Runner(echo=False) as runner:
        pg = local_images.ensure(docker_client, local_images.postgres(), runner)
        rd = local_images.ensure(docker_client, local_images.redis(), runner)
    name = f"imgtest-{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(12)
    network = docker_client.networks.create(name)
    started = []
    try:
        started.append(
            docker_client.containers.run(
                pg,
                detach=True,
                name=f"{name}-pg",
                network=name,
                environment={"POSTGRES_USER": "trading", "POSTGRES_PASSWORD": password},
            )
        )
        started.append(
            docker_client.containers.run(rd, detach=True, name=f"{name}-redis", network=name)
        )
        app = docker_client.containers.run(
            image["tag"],
            detach=True,
            name=f"{name}-app",
            network=name,
            environment={
                "DATABASE_URL": f"postgres://trading:{password}@{name}-pg:5432/trading",
                "REDIS_URL": f"redis://{name}-redis:6379/0",
            },
            ports={"8080/tcp": ("127.0.0.1", None)},
            restart_policy={"Name": "on-failure", "MaximumRetryCount": 20},
        )
        started.append(app)
        app.reload()
        port = app.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        deadline, last = time.monotonic() + 90, None
        while time.monotonic() < deadline:
            try:
                last = requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
                if last.status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.3)
        assert last is not None and last.status_code == 200, app.logs(tail=20)
        body = last.json()
        assert body["checks"]["postgres"]["status"] == "ok"
        assert body["version"] == image["release"].version
    finally:
        for container in started:
            container.remove(force=True, v=True)
        network.remove()
