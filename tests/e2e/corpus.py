"""The corpus of published crates the pipeline is proven on: each downloaded from crates.io
at a pinned version (the `.crate` file is the published source), its SHA-256 checked
against the registry's sparse index entry, and cached between runs under
~/.cache/trading-pipeline/corpus (or $CIPIPE_CORPUS_CACHE)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

INDEX = "https://index.crates.io"
DOWNLOAD = "https://static.crates.io/crates/{name}/{name}-{version}.crate"


def cache_dir() -> Path:
    """Where downloaded .crate files and their index entries are kept."""
    default = Path.home() / ".cache" / "trading-pipeline" / "corpus"
    return Path(os.environ.get("CIPIPE_CORPUS_CACHE") or default)


@dataclass(frozen=True)
class Crate:
    """A published crate at a pinned version."""

    name: str
    version: str
    # The file name crates.io serves it under.
    file: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "file", f"{self.name}-{self.version}.crate")


@dataclass(frozen=True)
class Case:
    """One corpus entry: its shape, and the crates it is built from (several crates are
    laid out as one workspace: `members` maps a member folder to its crate, and the
    root manifest patches crates.io with the members, as the upstream repository does)."""

    id: str
    shape: str
    crates: tuple[Crate, ...]
    members: tuple[str, ...] = ()


def index_path(name: str) -> str:
    """The sparse index path of a crate name (cargo's layout: 1/, 2/, 3/x/, ab/cd/)."""
    lower = name.lower()
    if len(lower) <= 2:
        return f"{len(lower)}/{lower}"
    if len(lower) == 3:
        return f"3/{lower[0]}/{lower}"
    return f"{lower[:2]}/{lower[2:4]}/{lower}"


def curl(url: str, dest: Path, timeout: float = 60) -> None:
    """Download `url` to `dest` atomically (temp file + rename); RuntimeError in one line."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    proc = subprocess.run(
        ["curl", "-sSfL", "--max-time", str(int(timeout)), "-o", str(part), url],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        part.unlink(missing_ok=True)
        raise RuntimeError(f"{url}: {proc.stderr.strip() or f'curl exit {proc.returncode}'}")
    part.replace(dest)


def unreachable() -> str | None:
    """Why crates.io cannot be used from here (None when its index answers)."""
    proc = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
            f"{INDEX}/config.json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return f"crates.io's index is unreachable: {proc.stderr.strip()}"
    if proc.stdout.strip() != "200":
        return f"crates.io's index answered HTTP {proc.stdout.strip()}"
    return None


def checksum(crate: Crate, cache: Path) -> str:
    """The SHA-256 the registry index records for this version (the entry is cached: a
    published version's checksum never changes)."""
    entry = cache / "index" / f"{crate.name}-{crate.version}.json"
    if not entry.is_file():
        lines = cache / "index" / f"{crate.name}.lines"
        curl(f"{INDEX}/{index_path(crate.name)}", lines)
        for line in lines.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record.get("vers") == crate.version:
                entry.write_text(json.dumps(record), encoding="utf-8")
                break
        lines.unlink()
        if not entry.is_file():
            raise RuntimeError(f"{crate.name} {crate.version} is not in the registry index")
    return str(json.loads(entry.read_text(encoding="utf-8"))["cksum"])


def fetch(crate: Crate, cache: Path) -> Path:
    """The .crate file, downloaded once and verified against the index every time."""
    path = cache / crate.file
    expected = checksum(crate, cache)
    if not path.is_file():
        curl(DOWNLOAD.format(name=crate.name, version=crate.version), path)
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != expected:
        path.unlink()
        raise RuntimeError(f"{crate.file}: sha256 {actual} is not the index's {expected}")
    return path


def unpack(crate: Crate, cache: Path, dest: Path) -> Path:
    """The crate's published source in `dest` (its `<name>-<version>/` folder renamed)."""
    archive = fetch(crate, cache)
    staging = dest.with_name(dest.name + ".unpack")
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(archive) as tar:
        tar.extractall(staging, filter="data")
    shutil.move(str(staging / f"{crate.name}-{crate.version}"), dest)
    shutil.rmtree(staging)
    return dest


def checkout(case: Case, cache: Path, dest: Path) -> Path:
    """The case's source tree at `dest`: one crate, or its crates as workspace members."""
    if not case.members:
        return unpack(case.crates[0], cache, dest)
    dest.mkdir(parents=True)
    for folder, crate in zip(case.members, case.crates, strict=True):
        unpack(crate, cache, dest / folder)
    members = ", ".join(json.dumps(m) for m in case.members)
    patch = "\n".join(
        f'{c.name} = {{ path = "{m}" }}' for m, c in zip(case.members, case.crates, strict=True)
    )
    (dest / "Cargo.toml").write_text(
        "# The upstream repository's layout: the published crates as members, each using\n"
        "# the others from here rather than from crates.io.\n"
        f'[workspace]\nmembers = [{members}]\nresolver = "2"\n\n[patch.crates-io]\n{patch}\n',
        encoding="utf-8",
    )
    return dest


def table(rows: list[dict[str, str]]) -> str:
    """A markdown table of the corpus rows (the README's adoption section quotes it)."""
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row.get(h, "") for h in header) + " |" for row in rows]
    return "\n".join(lines)
