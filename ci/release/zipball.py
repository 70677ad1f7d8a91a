"""zip archives (Windows) with normalised metadata: fixed time, Unix modes, sorted."""

from __future__ import annotations

import stat
import time
import zipfile
from collections.abc import Sequence
from typing import BinaryIO

from ci.release.archive import Entry

ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip entry can hold


class Zip:
    """Deflate zip; entries carry Unix modes so unzip on Linux/macOS keeps the 0755 binary."""

    suffix = ".zip"
    content_type = "application/zip"

    def write(self, out: BinaryIO, entries: Sequence[Entry], mtime: int) -> None:
        """Write `entries` in order, each stamped `mtime` (UTC; zip cannot go before 1980)."""
        stamp = time.gmtime(max(mtime, ZIP_EPOCH))[:6]
        with zipfile.ZipFile(out, "w") as archive:
            for entry in entries:
                info = zipfile.ZipInfo(entry.name, date_time=stamp)
                info.create_system = 3  # Unix: external_attr holds the mode
                kind = stat.S_IFDIR if entry.source is None else stat.S_IFREG
                info.external_attr = (kind | entry.mode) << 16
                if entry.source is None:
                    info.external_attr |= 0x10  # MS-DOS directory flag
                    archive.writestr(info, b"")
                    continue
                # writestr knows the size up front: no data descriptor, same bytes always.
                data = entry.source.read_bytes()
                archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
