"""SHA-256 digests and the `SHA256SUMS` file (`sha256sum -c SHA256SUMS` verifies it).

One line per asset, sorted by name: 64 lower-case hex digits, two spaces, the file name.
On a release published by several jobs (one per target), SHA256SUMS is the union of
their lines: `merge` keeps the other targets' entries and replaces this run's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from ci.release.errors import PublishError

SUMS_NAME = "SHA256SUMS"
_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def format_sums(digests: Mapping[str, str]) -> str:
    """The SHA256SUMS text for {file name: hex digest}, sorted by name."""
    for name in digests:
        if "/" in name or "\n" in name or "\\" in name:
            raise ValueError(f"{name!r}: SHA256SUMS lists plain file names")
    return "".join(f"{digests[name].lower()}  {name}\n" for name in sorted(digests))


def parse_sums(text: str, origin: str = SUMS_NAME) -> dict[str, str]:
    """{file name: hex digest} from SHA256SUMS text (text ` ` or binary `*` mode lines).
    A malformed line is a PublishError naming it: a damaged file is never silently merged."""
    digests: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if not match:
            raise PublishError(
                f"{origin} line {number} is not '<sha256>  <name>': {line[:80]!r}; "
                "delete the asset so it is written again"
            )
        digests[match.group(2)] = match.group(1).lower()
    return digests


def merge(existing: Mapping[str, str], ours: Mapping[str, str]) -> dict[str, str]:
    """Entries of another run (other targets) kept, ours added or replacing theirs."""
    return {**existing, **ours}
