"""Images made on this machine, for engines that cannot pull from any registry.

How a local image is made: a build context holding a root filesystem with the named host
files (directories recursively) plus every shared library their ELF files need (as `ldd`
lists them), a Dockerfile `FROM scratch`, `COPY rootfs/ /`, then the image's own lines.
Nothing is downloaded. Three recipes:

- `runtime_base(binary, runner)`: what the service binary needs to run: its shared libraries
  (glibc, libgcc_s, the dynamic loader), `/etc/passwd` with the `nonroot` user 65532 and
  a `/tmp`, the same contract as the public `gcr.io/distroless/cc-debian12:nonroot`.
- `postgres()`: PostgreSQL 15 from the host's Debian packages, honouring the public
  `postgres:15` image's environment contract (`POSTGRES_USER`, `POSTGRES_PASSWORD`,
  `POSTGRES_DB`, `PGDATA`; started as root it hands PGDATA to the postgres user, so a
  fresh named volume or tmpfs works, then drops to that user; initialised on first
  start, password auth over TCP), with `pg_isready` for health checks.
- `redis()`: `redis-server` listening on all interfaces like `redis:7-alpine`, with
  `redis-cli` for health checks.

An image is rebuilt only when its inputs change: the tag carries a label with a
fingerprint of the files (path, size, mtime), the generated files and the Dockerfile.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ci.runner import Runner

PREFIX = "pipeline-local"
INPUTS_LABEL = "io.pipeline.local-image.inputs"
NONROOT = 65532
_LIB = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")
# PostgreSQL's JIT provider drags in all of LLVM; nothing here needs it.
_SKIP = shutil.ignore_patterns("llvmjit*", "bitcode")

# The postgres:15 image's contract: started as root, it makes PGDATA the postgres
# user's (a fresh named volume or tmpfs is root's), then runs as that user; initialises
# from POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB on first start (the database
# POSTGRES_DB, default the user's name, is created), password auth over TCP, then execs
# the given command. No `id` in a scratch image: root is whoever may write to /etc.
PG_ENTRYPOINT = """#!/bin/sh
set -e
export PATH=/usr/lib/postgresql/15/bin:/bin:/usr/bin
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export PGDATA
if [ -w /etc ]; then
  mkdir -p "$PGDATA"
  chown -R 999:999 "$PGDATA"
  exec setpriv --reuid=999 --regid=999 --clear-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  printf '%s' "$POSTGRES_PASSWORD" > /tmp/pwfile
  initdb -D "$PGDATA" -U "${POSTGRES_USER:-postgres}" --pwfile=/tmp/pwfile \\
    -A scram-sha-256 -E UTF8 --locale=C --no-sync >/dev/null
  : > /tmp/pwfile  # no rm in a scratch image: truncate instead
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  db="${POSTGRES_DB:-${POSTGRES_USER:-postgres}}"
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \\"$db\\";" | postgres --single -D "$PGDATA" \\
      -c unix_socket_directories=/tmp postgres >/dev/null
  fi
fi
exec "$@" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp
"""

PASSWD = f"root:x:0:0::/:/bin/sh\nnonroot:x:{NONROOT}:{NONROOT}::/home/nonroot:/sbin/nologin\n"
GROUP = f"root:x:0:\nnonroot:x:{NONROOT}:\n"
PG_PASSWD = "root:x:0:0::/:/bin/sh\npostgres:x:999:999::/var/lib/postgresql:/bin/sh\n"


@dataclass(frozen=True)
class Recipe:
    """A local image: host `files` (directories recursively) and the shared libraries of
    their ELF files, generated `extra` files, empty directories owned by `owner`, and the
    Dockerfile lines after `COPY rootfs/ /`."""

    tag: str
    files: tuple[str, ...] = ()
    extra: tuple[tuple[str, str, int], ...] = ()  # (path, text, mode)
    owned: tuple[str, ...] = ()
    owner: str = "0:0"
    tail: str = ""


def runtime_base(binary: Path, runner: Runner) -> Recipe:
    """The runtime base for `binary`: its shared libraries and the nonroot user. Tagged
    by its content, so binaries needing the same libraries share one base and a release
    never rebuilds it."""
    recipe = Recipe(
        tag="",
        files=tuple(sorted(shared_libs(runner, [binary]))),
        extra=(
            ("/etc/passwd", PASSWD, 0o644),
            ("/etc/group", GROUP, 0o644),
            ("/etc/nsswitch.conf", "hosts: files dns\n", 0o644),
        ),
        owned=("/home/nonroot",),
        owner=f"{NONROOT}:{NONROOT}",
        tail=f"USER {NONROOT}:{NONROOT}\n",
    )
    return replace(recipe, tag=f"{PREFIX}/runtime-base:{fingerprint(recipe)}")


def postgres(tag: str = f"{PREFIX}/postgres:15") -> Recipe:
    """PostgreSQL 15 honouring the postgres:15 image's environment contract."""
    bindir = "/usr/lib/postgresql/15/bin"
    return Recipe(
        tag=tag,
        files=(
            "/bin/sh",
            "/bin/mkdir",
            "/bin/chown",
            "/usr/bin/setpriv",
            f"{bindir}/postgres",
            f"{bindir}/initdb",
            f"{bindir}/pg_isready",
            "/usr/lib/postgresql/15/lib",
            "/usr/share/postgresql/15",
            "/usr/share/zoneinfo",
        ),
        extra=(
            ("/etc/passwd", PG_PASSWD, 0o644),
            ("/etc/group", "root:x:0:\npostgres:x:999:\n", 0o644),
            ("/usr/local/bin/entrypoint", PG_ENTRYPOINT, 0o755),
        ),
        tail=(
            f"ENV PATH={bindir}:/bin:/usr/bin PGDATA=/var/lib/postgresql/data\n"
            'ENTRYPOINT ["/usr/local/bin/entrypoint"]\nCMD ["postgres"]\n'
        ),
    )


def redis(tag: str = f"{PREFIX}/redis:7") -> Recipe:
    """redis-server on all interfaces (like redis:7-alpine), with redis-cli."""
    cmd = '["/usr/bin/redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", ""]'
    return Recipe(
        tag=tag,
        files=("/usr/bin/redis-server", "/usr/bin/redis-cli"),
        tail=f"WORKDIR /tmp\nENTRYPOINT {cmd}\n",
    )


def shared_libs(runner: Runner, binaries: Iterable[Path]) -> set[str]:
    """The shared libraries `ldd` lists for `binaries` (absolute paths). One quiet ldd
    per file (a directory of plugins would otherwise flood the log)."""
    libs: set[str] = set()
    files = list(binaries)
    with Runner(runner.redact, echo=False) as quiet:
        for binary in files:
            res = quiet.run(["ldd", str(binary)], capture=True)
            libs |= {m[1] for m in _LIB.finditer(res.stdout)}
    runner.log_only(f"ldd: {len(files)} ELF files need {len(libs)} shared libraries")
    return libs


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return path.is_file() and not path.is_symlink() and fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def _copy(rootfs: Path, path: str) -> list[Path]:
    """Copy a host file or tree into `rootfs` at the same path; returns the ELF files
    copied (as host paths)."""
    src = Path(path)
    dest = rootfs / path.lstrip("/")
    if src.is_dir():
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True, ignore=_SKIP)
        found = [f for f in dest.rglob("*") if _is_elf(f)]
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src.resolve(), dest)
        found = [dest] if _is_elf(dest) else []
    return [Path("/") / f.relative_to(rootfs) for f in found]


def fingerprint(recipe: Recipe) -> str:
    """A digest of everything the image is made of (file metadata, generated files,
    Dockerfile lines): equal fingerprints, equal images."""
    digest = hashlib.sha256(repr(recipe).encode())
    for path in sorted(recipe.files):
        src = Path(path)
        entries = sorted(src.rglob("*")) if src.is_dir() else [src]
        for entry in entries:
            try:
                st = entry.stat()
            except OSError:
                continue
            digest.update(f"{entry}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def context(recipe: Recipe, runner: Runner, folder: Path) -> Path:
    """Write the build context of `recipe` into `folder`; returns it."""
    rootfs = folder / "rootfs"
    rootfs.mkdir(parents=True)
    elves: list[Path] = []
    for path in recipe.files:
        elves += _copy(rootfs, path)
    for lib in sorted(shared_libs(runner, elves)):
        _copy(rootfs, lib)
    for path, text, mode in recipe.extra:
        dest = rootfs / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
        dest.chmod(mode)
    (rootfs / "tmp").mkdir(exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)
    owned = folder / "owned"
    owned.mkdir()
    for path in recipe.owned:
        (owned / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
    dockerfile = (
        "FROM scratch\nCOPY rootfs/ /\n"
        + (f"COPY --chown={recipe.owner} owned/ /\n" if recipe.owned else "")
        + recipe.tail
    )
    (folder / "Dockerfile").write_text(dockerfile, encoding="utf-8")
    return folder


def ensure(client: Any, recipe: Recipe, runner: Runner) -> str:
    """The image of `recipe` on the engine `client` (a docker SDK client), built unless
    an image with the same fingerprint already carries the tag; returns the tag."""
    import docker.errors

    inputs = fingerprint(recipe)
    try:
        existing = client.images.get(recipe.tag)
        if (existing.labels or {}).get(INPUTS_LABEL) == inputs:
            return recipe.tag
    except docker.errors.ImageNotFound:
        pass
    runner.say(f"building local image {recipe.tag} (FROM scratch + host files)")
    with tempfile.TemporaryDirectory(prefix="local-image-") as tmp:
        folder = context(recipe, runner, Path(tmp))
        client.images.build(
            path=str(folder),
            tag=recipe.tag,
            labels={INPUTS_LABEL: inputs},
            rm=True,
            forcerm=True,
            pull=False,
        )
    return recipe.tag
