"""The Docker engine, through the docker SDK: build the service image from the release
binary, make sure its base and the stack's images exist (local stand-ins where the
engine cannot pull), tag and push. Every failure is one line (EngineError for the
engine, RegistryError for a refused push); the SDK's HTTP chatter never reaches users."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.runner import Runner
from deploy import local_images
from deploy.errors import EngineError, RegistryError
from deploy.release import Release, sha256_file

DOCKERFILE = Path(__file__).with_name("Dockerfile")
BUILD_TIMEOUT_S = 600


def short_error(err: BaseException) -> str:
    """One short line from a docker SDK error (its explanation, not the HTTP wrapper)."""
    explanation = getattr(err, "explanation", None)
    text = (str(explanation) if explanation else str(err)).strip().splitlines()
    line = text[0] if text else type(err).__name__
    return line if len(line) <= 200 else line[:199] + "…"


def connect(env: Mapping[str, str], timeout: float = 60) -> Any:
    """A docker SDK client for the engine `env` names (DOCKER_HOST, ...), pinged; an
    unreachable engine is EngineError with the fix."""
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("docker").setLevel(logging.WARNING)
    try:
        import docker
    except ImportError:
        raise EngineError("the docker Python SDK is not installed: pip install -e .") from None
    where = env.get("DOCKER_HOST") or "the default socket"
    try:
        client = docker.from_env(environment=dict(env), timeout=int(timeout))
        client.ping()
    except Exception as err:  # the SDK raises many kinds; all mean "no engine"
        raise EngineError(
            f"docker engine not reachable at {where}: {short_error(err)} "
            "(start the Docker daemon, or point DOCKER_HOST at one)"
        ) from None
    return client


@dataclass(frozen=True)
class Built:
    """An image built from the release: its id and the local tags it carries."""

    image_id: str
    tags: tuple[str, ...]
    base: str


def _stream(chunks: Iterator[dict[str, Any]], log: Callable[[str], None]) -> dict[str, Any]:
    """Follow a build or push stream: log its lines, raise on the first error, return
    the last `aux` payload (image id, push digest)."""
    aux: dict[str, Any] = {}
    for chunk in chunks:
        if "error" in chunk or "errorDetail" in chunk:
            detail = chunk.get("errorDetail") or {}
            message = str(detail.get("message") or chunk.get("error") or "unknown error")
            raise _StreamError(message.strip().splitlines()[0] if message.strip() else message)
        text = chunk.get("stream") or chunk.get("status")
        if text and not chunk.get("progressDetail"):
            for line in str(text).splitlines():
                if line.strip():
                    log(line.rstrip())
        if isinstance(chunk.get("aux"), dict):
            aux = chunk["aux"]
    return aux


class _StreamError(Exception):
    pass


class Engine:
    """One Docker engine and what the deploy does on it."""

    def __init__(self, client: Any, runner: Runner) -> None:
        self.client = client
        self.runner = runner

    def has_image(self, ref: str) -> bool:
        """True when the engine holds `ref`."""
        import docker.errors

        try:
            self.client.images.get(ref)
        except docker.errors.ImageNotFound:
            return False
        except Exception as err:
            raise EngineError(f"docker engine error looking up {ref}: {short_error(err)}") from None
        return True

    def obtain(self, ref: str, local: str, recipe: Callable[[], local_images.Recipe]) -> str:
        """`ref` when the engine has it or can pull it; else (local_images "auto" or
        "always") the local stand-in from `recipe`, built if needed. "never": EngineError."""
        if local != "always":
            if self.has_image(ref):
                return ref
            try:
                self.client.images.pull(ref)
                return ref
            except Exception as err:
                reason = short_error(err)
            if local == "never":
                raise EngineError(
                    f"image {ref} is not on the engine and cannot be pulled ({reason}); "
                    "set [tool.pipeline.staging] local_images = 'auto' to build a local stand-in"
                )
            self.runner.say(f"{ref}: not available ({reason}); using a local stand-in")
        try:
            return local_images.ensure(self.client, recipe(), self.runner)
        except Exception as err:
            raise EngineError(
                f"cannot build the local stand-in for {ref}: {short_error(err)}"
            ) from None

    def build(self, release: Release, base: str, tags: list[str], source: str = "") -> Built:
        """Build the service image from the release binary (checked again after copying
        into the build context) on `base`; tag it with every name in `tags`."""
        with tempfile.TemporaryDirectory(prefix="deploy-image-") as tmp:
            folder = Path(tmp)
            (folder / "bin").mkdir()
            binary = folder / "bin" / release.binary_name
            shutil.copyfile(release.binary, binary)
            binary.chmod(0o755)
            if sha256_file(binary) != release.sha256:
                raise EngineError(f"the binary copied from {release.binary} changed while copying")
            shutil.copyfile(DOCKERFILE, folder / "Dockerfile")
            args = {
                "BASE_IMAGE": base,
                "BINARY": release.binary_name,
                "VERSION": release.version,
                "REVISION": release.commit,
                "CREATED": release.created,
                "SOURCE": source,
                "BINARY_SHA256": release.sha256,
            }
            try:
                chunks = self.client.api.build(
                    path=str(folder),
                    dockerfile="Dockerfile",
                    tag=tags[0],
                    buildargs=args,
                    rm=True,
                    forcerm=True,
                    pull=False,
                    decode=True,
                    timeout=BUILD_TIMEOUT_S,
                )
                aux = _stream(chunks, self.runner.log_only)
            except _StreamError as err:
                raise EngineError(f"image build failed: {err}") from None
            except Exception as err:
                raise EngineError(f"image build failed: {short_error(err)}") from None
        image = self.client.images.get(aux.get("ID") or tags[0])
        for ref in tags[1:]:
            name, _, tag = ref.rpartition(":")
            image.tag(name, tag)
        return Built(image_id=image.id, tags=tuple(tags), base=base)

    def tag(self, source: str, ref: str) -> None:
        """Give image `source` the name `ref` (repository:tag)."""
        name, _, tag = ref.rpartition(":")
        self.client.images.get(source).tag(name, tag)

    def push(self, ref: str, auth: dict[str, str] | None, registry: str) -> str:
        """Push `ref` (repository:tag); returns the manifest digest the registry reported.
        A refusal is RegistryError with the registry's own reason."""
        name, _, tag = ref.rpartition(":")
        try:
            chunks = self.client.api.push(
                name, tag=tag, stream=True, decode=True, auth_config=auth or None
            )
            aux = _stream(chunks, self.runner.log_only)
        except _StreamError as err:
            raise RegistryError(f"registry {registry} refused the push of {ref}: {err}") from None
        except Exception as err:
            raise RegistryError(f"pushing {ref} to {registry} failed: {short_error(err)}") from None
        digest = str(aux.get("Digest") or "")
        if not digest.startswith("sha256:"):
            raise RegistryError(f"registry {registry} reported no digest for {ref}")
        return digest

    def remove(self, refs: list[str]) -> None:
        """Drop local names (best effort, for cleanup)."""
        for ref in refs:
            with contextlib.suppress(Exception):
                self.client.images.remove(ref, noprune=True)
