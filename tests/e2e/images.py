"""Builds small local images from the host's own binaries (FROM scratch + the files and
the shared libraries ldd lists), so the docker backend is exercised for real on
machines that cannot pull from any registry. The images honour the same contract as
the public ones the pipeline uses (`redis:7-alpine`, `postgres:15`)."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

_LIB = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")

# The postgres:15 image's contract: initialise from POSTGRES_USER / POSTGRES_PASSWORD /
# POSTGRES_DB on first start, password auth over TCP, then exec the given command.
PG_ENTRYPOINT = """#!/bin/sh
set -e
export PATH=/usr/lib/postgresql/15/bin:/bin
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  printf '%s' "$POSTGRES_PASSWORD" > /tmp/pwfile
  initdb -D "$PGDATA" -U "${POSTGRES_USER:-postgres}" --pwfile=/tmp/pwfile \\
    -A scram-sha-256 -E UTF8 --locale=C --no-sync >/dev/null
  : > /tmp/pwfile  # no rm in a scratch image: truncate instead
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
fi
exec "$@" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp
"""


def shared_libs(binaries: Iterable[Path]) -> set[str]:
    libs: set[str] = set()
    for binary in binaries:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
        libs |= {m[1] for m in _LIB.finditer(out.stdout)}
    return libs


# PostgreSQL's JIT provider drags in all of LLVM; the tests do not need it.
_SKIP = shutil.ignore_patterns("llvmjit*", "bitcode")


def _copy(rootfs: Path, path: str) -> None:
    src = Path(path)
    dest = rootfs / path.lstrip("/")
    if src.is_dir():
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True, ignore=_SKIP)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src.resolve(), dest)


def build(tag: str, files: Iterable[str], dockerfile_tail: str, extra: dict[str, str]) -> str:
    """`docker build` FROM scratch with `files` (and every library their ELF files
    need), `extra` {path: text} written into the image, then `dockerfile_tail`."""
    with tempfile.TemporaryDirectory(prefix="scratch-image-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        elves: list[Path] = []
        for path in files:
            _copy(rootfs, path)
            copied = rootfs / path.lstrip("/")
            found = copied.rglob("*") if copied.is_dir() else [copied]
            elves += [Path("/") / f.relative_to(rootfs) for f in found if _is_elf(f)]
        for lib in sorted(shared_libs(elves)):
            _copy(rootfs, lib)
        for path, text in extra.items():
            dest = rootfs / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text)
            dest.chmod(0o755)
        (rootfs / "tmp").mkdir(exist_ok=True)
        (rootfs / "tmp").chmod(0o1777)
        (Path(tmp) / "Dockerfile").write_text(f"FROM scratch\nCOPY rootfs/ /\n{dockerfile_tail}")
        subprocess.run(
            ["docker", "build", "-q", "-t", tag, tmp], check=True, capture_output=True, text=True
        )
    return tag


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return path.is_file() and fh.read(4) == b"\x7fELF"
    except OSError:
        return False


@functools.cache
def redis_image(tag: str = "pipeline-test/redis:local") -> str:
    """A redis-server image that behaves like redis:7-alpine for the pipeline."""
    cmd = '["/usr/bin/redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", ""]'
    return build(tag, ["/usr/bin/redis-server"], f"WORKDIR /tmp\nENTRYPOINT {cmd}\n", {})


@functools.cache
def postgres_image(tag: str = "pipeline-test/postgres:local") -> str:
    """A PostgreSQL 15 image honouring the postgres:15 image's environment contract."""
    files = [
        "/bin/sh",
        "/usr/lib/postgresql/15/bin/postgres",
        "/usr/lib/postgresql/15/bin/initdb",
        "/usr/lib/postgresql/15/lib",
        "/usr/share/postgresql/15",
        "/usr/share/zoneinfo",
    ]
    extra = {
        "/etc/passwd": "root:x:0:0::/:/bin/sh\npostgres:x:999:999::/var/lib/postgresql:/bin/sh\n",
        "/etc/group": "root:x:0:\npostgres:x:999:\n",
        "/usr/local/bin/entrypoint": PG_ENTRYPOINT,
    }
    tail = (
        "USER 999:999\nENV PATH=/usr/lib/postgresql/15/bin:/bin\n"
        'ENTRYPOINT ["/usr/local/bin/entrypoint"]\nCMD ["postgres"]\n'
    )
    return build(tag, files, tail, extra)
