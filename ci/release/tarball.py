"""tar.gz archives (Linux, macOS) with normalised metadata: nothing about the machine,
the user, the umask or the time of packaging reaches the bytes."""

from __future__ import annotations

import gzip
import tarfile
from collections.abc import Sequence
from typing import BinaryIO

from ci.release.archive import Entry


class TarGz:
    """PAX tar in gzip; the gzip header has no file name and a zero time."""

    suffix = ".tar.gz"
    content_type = "application/gzip"

    def write(self, out: BinaryIO, entries: Sequence[Entry], mtime: int) -> None:
        """Write `entries` in order, every one owned by 0:0 with `mtime`."""
        with (
            gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for entry in entries:
                info = tarfile.TarInfo(entry.name.rstrip("/"))
                info.mtime = mtime
                info.mode = entry.mode
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if entry.source is None:
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                    continue
                info.size = entry.source.stat().st_size
                with entry.source.open("rb") as fh:
                    tar.addfile(info, fh)
