"""The release being deployed: what `invoke release` wrote in its manifest, with the
promoted binary checked against its recorded sha256 (build once, promote: the deploy
never builds the binary again), and the image names it gets."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from deploy.errors import PreconditionFailed

MANIFEST = Path("release") / "manifest.json"
_TAG_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class Release:
    """The promoted binary and what it was built from."""

    version: str
    commit: str
    target: str
    binary: Path
    binary_name: str
    sha256: str
    manifest: Path
    dirty: bool = False
    epoch: int = 0  # SOURCE_DATE_EPOCH of the build (the commit time)
    crate_version: str = ""  # what the binary reports; differs from `version` on main builds

    @property
    def reported_version(self) -> str:
        """The version the running binary reports on /health (its crate's version): a
        release's equals its tag; a main build's is the crate version it was built at."""
        return self.crate_version or self.version

    @property
    def short_commit(self) -> str:
        """The first 12 hex digits of the commit."""
        return self.commit[:12]

    @property
    def created(self) -> str:
        """The build's reproducible timestamp (RFC 3339), for the OCI `created` label."""
        return datetime.fromtimestamp(self.epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def tags(self) -> tuple[str, str]:
        """The image tags: the version and `sha-<12 hex digits of the commit>`."""
        version = _TAG_CHARS.sub("_", self.version)[:120]
        return version, f"sha-{self.short_commit}"


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_release(manifest: Path) -> Release:
    """The release a manifest describes, its binary present and matching its sha256;
    PreconditionFailed (one line, with the fix) otherwise."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PreconditionFailed(
            f"no release manifest at {manifest}: run `invoke release --tag vX.Y.Z --no-publish` "
            "first (the deploy promotes that binary, it never builds one)"
        ) from None
    except (OSError, ValueError) as err:
        raise PreconditionFailed(f"cannot read the release manifest {manifest}: {err}") from None
    try:
        binary = manifest.parent / str(data["binary"]["path"])
        release = Release(
            version=str(data["version"]),
            commit=str(data["commit"]),
            target=str(data.get("target", "")),
            binary=binary,
            binary_name=str(data["binary"].get("name") or binary.name),
            sha256=str(data["binary"]["sha256"]).lower(),
            manifest=manifest,
            dirty=bool(data.get("dirty", False)),
            epoch=int(data.get("source_date_epoch") or 0),
            crate_version=str(data.get("crate_version") or ""),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise PreconditionFailed(
            f"the release manifest {manifest} lacks {err}: rebuild it with `invoke release`"
        ) from None
    if not re.fullmatch(r"[0-9a-f]{40}", release.commit):
        raise PreconditionFailed(f"the release manifest {manifest} names no commit SHA")
    if not binary.is_file():
        raise PreconditionFailed(
            f"the released binary {binary} is missing: run `invoke release` again"
        )
    actual = sha256_file(binary)
    if actual != release.sha256:
        raise PreconditionFailed(
            f"the released binary {binary} does not match its manifest (sha256 {actual[:16]}… "
            f"instead of {release.sha256[:16]}…): it changed after the release; run "
            "`invoke release` again"
        )
    return release


@dataclass(frozen=True)
class ImageName:
    """`<registry>/<repository>`, with tag and digest forms."""

    registry: str
    repository: str

    @property
    def name(self) -> str:
        """The repository with its registry: what `docker push` takes."""
        return f"{self.registry}/{self.repository}"

    def tagged(self, tag: str) -> str:
        """`registry/repository:tag`."""
        return f"{self.name}:{tag}"

    def pinned(self, digest: str) -> str:
        """`registry/repository@sha256:...`: what the host runs (immutable)."""
        return f"{self.name}@{digest}"
