"""Release archives: the layout, the name, and the per-platform format table.

`trading-system-<version>-<target>.tar.gz` for Linux and macOS, `.zip` for Windows, each
holding one top-level folder of the same name with the binary, the README and the licence
files. The platform is chosen from the target triple alone, so Windows packaging is built
and tested on Linux too. Archives are byte-reproducible: entries sorted, one fixed
timestamp, owner root/0, modes 0755 (binary, folder) and 0644 (documents), no gzip name or
time; the same inputs give the same bytes on every machine and every run.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.release.archive import EXEC_MODE, FILE_MODE, ArchiveFormat, Entry
from ci.release.build import exe_suffix
from ci.release.errors import BuildFailed
from ci.release.tarball import TarGz
from ci.release.zipball import Zip


@dataclass(frozen=True)
class Platform:
    """How releases for one family of targets are packaged."""

    name: str
    format: ArchiveFormat


def _platforms() -> dict[str, Platform]:
    return {
        "windows": Platform("windows", Zip()),
        "macos": Platform("macos", TarGz()),
        "linux": Platform("linux", TarGz()),
        "unix": Platform("unix", TarGz()),  # BSDs, illumos, ...: tarballs too
    }


def platform_for(target: str) -> Platform:
    """The packaging platform of a target triple (`x86_64-pc-windows-msvc` -> windows)."""
    table = _platforms()
    if "windows" in target:
        return table["windows"]
    if "apple" in target or "darwin" in target:
        return table["macos"]
    if "linux" in target:
        return table["linux"]
    return table["unix"]


def stem(binary: str, version: str, target: str) -> str:
    """`<binary>-<version>-<target>`: the archive's name without suffix and its folder."""
    return f"{binary}-{version}-{target}"


def archive_name(binary: str, version: str, target: str) -> str:
    """The archive's file name for this target."""
    return stem(binary, version, target) + platform_for(target).format.suffix


def layout(
    binary: str, version: str, target: str, binary_path: Path, documents: Sequence[Path]
) -> list[Entry]:
    """The archive's members, sorted: `<stem>/`, the binary (`.exe` on Windows) and each
    document by its file name. Two documents with one name are a BuildFailed."""
    top = stem(binary, version, target)
    entries = [Entry(f"{top}/{binary}{exe_suffix(target)}", binary_path, EXEC_MODE)]
    names = {entries[0].name}
    for doc in documents:
        name = f"{top}/{doc.name}"
        if name in names:
            raise BuildFailed(f"two files would be packaged as {name}: rename one")
        names.add(name)
        entries.append(Entry(name, doc, FILE_MODE))
    return [Entry(top + "/", None, EXEC_MODE), *sorted(entries, key=lambda e: e.name)]


def write_archive(dest: Path, entries: Sequence[Entry], target: str, mtime: int) -> Path:
    """Write the archive for `target` to `dest` atomically (temp file + rename)."""
    fmt = platform_for(target).format
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            fmt.write(out, entries, mtime)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest
