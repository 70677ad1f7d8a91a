"""Service images for tests on machines that cannot pull: built by deploy.local_images
(FROM scratch with the host's binaries and their shared libraries, honouring the public
images' environment contract), the same implementation the staging deploy uses."""

from __future__ import annotations

import functools
from typing import Any

from ci.runner import Runner
from deploy import local_images


@functools.cache
def docker_client() -> Any:
    import docker

    return docker.from_env(timeout=120)


def _ensure(recipe: local_images.Recipe) -> str:
    with Runner(echo=False) as runner:
        return local_images.ensure(docker_client(), recipe, runner)


@functools.cache
def redis_image(tag: str = "pipeline-test/redis:local") -> str:
    """A redis-server image that behaves like redis:7-alpine for the pipeline."""
    return _ensure(local_images.redis(tag))


@functools.cache
def postgres_image(tag: str = "pipeline-test/postgres:local") -> str:
    """A PostgreSQL 15 image honouring the postgres:15 image's environment contract."""
    return _ensure(local_images.postgres(tag))
