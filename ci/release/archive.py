"""What an archive is made of (`Entry`) and what writes one (`ArchiveFormat`).

The formats (tarball.py, zipball.py) and the platform table that picks one (package.py)
both build on this module, so neither imports the other's caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

EXEC_MODE = 0o755
FILE_MODE = 0o644


@dataclass(frozen=True)
class Entry:
    """One archive member: its path inside the archive, its source, its mode.
    `source` None is a folder."""

    name: str
    source: Path | None
    mode: int

    @property
    def is_dir(self) -> bool:
        return self.source is None


class ArchiveFormat(Protocol):
    """Writes entries (already sorted, already normalised) as one archive format."""

    suffix: str
    content_type: str

    def write(self, out: BinaryIO, entries: Sequence[Entry], mtime: int) -> None:
        """Write the archive to `out`; `mtime` is every entry's timestamp."""
        ...
