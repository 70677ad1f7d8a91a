"""Archive names, layout per platform, and byte-reproducibility."""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from ci.release.errors import BuildFailed
from ci.release.package import archive_name, layout, platform_for, write_archive

LINUX = "x86_64-unknown-linux-gnu"
MACOS = "aarch64-apple-darwin"
WINDOWS = "x86_64-pc-windows-msvc"
EPOCH = 1_700_000_000


def _inputs(base: Path, *, mtime: int, umask: int) -> tuple[Path, list[Path]]:
    """The same contents each time, with other mtimes and permission bits."""
    base.mkdir(parents=True)
    old = os.umask(umask)
    try:
        binary = base / "trading-system"
        binary.write_bytes(b"\x7fELF fake binary" + bytes(range(256)) * 64)
        readme = base / "README.md"
        readme.write_text("# trading-system\n")
        mit = base / "LICENSE-MIT"
        mit.write_text("MIT License\n")
        apache = base / "LICENSE-APACHE"
        apache.write_text("Apache License\n")
    finally:
        os.umask(old)
    for p in (binary, readme, mit, apache):
        os.utime(p, (mtime, mtime))
    return binary, [readme, mit, apache]


@pytest.mark.parametrize(
    ("target", "platform", "name", "exe"),
    [
        (LINUX, "linux", f"trading-system-1.2.3-{LINUX}.tar.gz", "trading-system"),
        (
            "x86_64-unknown-linux-musl",
            "linux",
            "trading-system-1.2.3-x86_64-unknown-linux-musl.tar.gz",
            "trading-system",
        ),
        (MACOS, "macos", f"trading-system-1.2.3-{MACOS}.tar.gz", "trading-system"),
        (WINDOWS, "windows", f"trading-system-1.2.3-{WINDOWS}.zip", "trading-system.exe"),
        (
            "x86_64-pc-windows-gnu",
            "windows",
            "trading-system-1.2.3-x86_64-pc-windows-gnu.zip",
            "trading-system.exe",
        ),
        (
            "x86_64-unknown-freebsd",
            "unix",
            "trading-system-1.2.3-x86_64-unknown-freebsd.tar.gz",
            "trading-system",
        ),
    ],
)
def test_names_and_layout_per_platform(tmp_path: Path, target, platform, name, exe) -> None:
    binary, docs = _inputs(tmp_path / "in", mtime=EPOCH, umask=0o022)
    assert platform_for(target).name == platform
    assert archive_name("trading-system", "1.2.3", target) == name
    top = f"trading-system-1.2.3-{target}"
    entries = layout("trading-system", "1.2.3", target, binary, docs)
    assert [(e.name, oct(e.mode)) for e in entries] == [
        (f"{top}/", "0o755"),
        (f"{top}/LICENSE-APACHE", "0o644"),
        (f"{top}/LICENSE-MIT", "0o644"),
        (f"{top}/README.md", "0o644"),
        (f"{top}/{exe}", "0o755"),
    ]
    out = write_archive(tmp_path / name, entries, target, EPOCH)
    assert _members(out) == {
        f"{top}": (0o755, None),
        f"{top}/LICENSE-APACHE": (0o644, b"Apache License\n"),
        f"{top}/LICENSE-MIT": (0o644, b"MIT License\n"),
        f"{top}/README.md": (0o644, b"# trading-system\n"),
        f"{top}/{exe}": (0o755, binary.read_bytes()),
    }


def _members(path: Path) -> dict[str, tuple[int, bytes | None]]:
    """{name: (mode, content or None for folders)} of a tar.gz or zip."""
    found: dict[str, tuple[int, bytes | None]] = {}
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                mode = stat.S_IMODE(info.external_attr >> 16)
                data = None if info.is_dir() else z.read(info)
                found[info.filename.rstrip("/")] = (mode, data)
        return found
    with tarfile.open(path) as t:
        for member in t.getmembers():
            f = t.extractfile(member) if member.isfile() else None
            found[member.name] = (member.mode, f.read() if f else None)
    return found


@pytest.mark.parametrize("target", [LINUX, MACOS, WINDOWS])
def test_same_inputs_give_identical_bytes_whatever_mtime_and_umask(tmp_path: Path, target) -> None:
    first_bin, first_docs = _inputs(tmp_path / "a", mtime=1_000_000, umask=0o022)
    second_bin, second_docs = _inputs(tmp_path / "b", mtime=1_900_000_000, umask=0o077)
    os.chmod(second_bin, 0o700)
    name = archive_name("trading-system", "1.2.3", target)
    a = write_archive(
        tmp_path / "out-a" / name,
        layout("trading-system", "1.2.3", target, first_bin, first_docs),
        target,
        EPOCH,
    )
    b = write_archive(
        tmp_path / "out-b" / name,
        layout("trading-system", "1.2.3", target, second_bin, list(reversed(second_docs))),
        target,
        EPOCH,
    )
    assert a.read_bytes() == b.read_bytes()
    c = write_archive(
        tmp_path / "out-c" / name,
        layout("trading-system", "1.2.3", target, first_bin, first_docs),
        target,
        EPOCH + 2,
    )
    assert c.read_bytes() != a.read_bytes()  # the timestamp is really in the archive


def test_tarball_metadata_is_normalised(tmp_path: Path) -> None:
    binary, docs = _inputs(tmp_path / "in", mtime=5, umask=0o002)
    out = write_archive(
        tmp_path / "x.tar.gz", layout("ts", "1.0.0", LINUX, binary, docs), LINUX, EPOCH
    )
    raw = out.read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08"
    assert raw[3] & 0x08 == 0  # FNAME flag: no file name in the gzip header
    assert raw[4:8] == b"\0\0\0\0"  # gzip MTIME zero
    with tarfile.open(out) as t:
        members = t.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", EPOCH)
    tar = gzip.decompress(raw)
    assert b"PaxHeader" not in tar  # nothing machine-specific in extended headers
    assert tar[156:157] == b"5"  # the first member is the folder


def test_zip_entries_carry_unix_modes_and_the_fixed_time(tmp_path: Path) -> None:
    binary, docs = _inputs(tmp_path / "in", mtime=5, umask=0o022)
    out = write_archive(
        tmp_path / "x.zip", layout("ts", "1.0.0", WINDOWS, binary, docs), WINDOWS, EPOCH
    )
    with zipfile.ZipFile(out) as z:
        infos = z.infolist()
        assert z.testzip() is None
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    for info in infos:
        assert info.create_system == 3
        assert info.date_time == (2023, 11, 14, 22, 13, 20)
    # before 1980 a zip cannot go: clamped, still reproducible
    early = write_archive(
        tmp_path / "y.zip", layout("ts", "1.0.0", WINDOWS, binary, docs), WINDOWS, 0
    )
    with zipfile.ZipFile(early) as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_two_documents_with_one_name_are_refused(tmp_path: Path) -> None:
    binary, docs = _inputs(tmp_path / "in", mtime=5, umask=0o022)
    other = tmp_path / "other"
    other.mkdir()
    (other / "README.md").write_text("x")
    with pytest.raises(
        BuildFailed, match=r"two files would be packaged as ts-1\.0\.0-.*/README\.md"
    ):
        layout("ts", "1.0.0", LINUX, binary, [*docs, other / "README.md"])


def test_writing_is_atomic_and_leaves_no_temp_file(tmp_path: Path) -> None:
    binary, docs = _inputs(tmp_path / "in", mtime=5, umask=0o022)
    entries = layout("ts", "1.0.0", LINUX, binary, docs)
    dest = tmp_path / "dist" / "ts.tar.gz"
    dest.parent.mkdir()
    dest.write_bytes(b"old")
    docs[0].unlink()  # packaging fails half-way
    with pytest.raises(FileNotFoundError):
        write_archive(dest, entries, LINUX, EPOCH)
    assert dest.read_bytes() == b"old"
    assert [p.name for p in dest.parent.iterdir()] == ["ts.tar.gz"]
