"""The workspace's files as content ids: the part of a stage's key that is its source.

Every file a build could read is named, by content: tracked files by git's blob id (and
mode), modified and untracked ones by the same blob id computed from their content (so a
`touch` changes nothing), git-ignored files too (a `.env` or a data file a build script
reads), the files of nested repositories and submodules (dirty ones included), and what
a symlink points at. Left out only: `.git`, folders holding a `CACHEDIR.TAG` (cargo's
target dirs), the excluded folders the caller names (results, the cache itself) and the
`[cache] not_inputs` globs (tool caches such as `.nox`, `__pycache__`).

When git cannot answer (not a repository, the workspace inside a git-ignored folder of
an outer repository, a failing or timed-out git), every file is hashed from disk.
Content beyond the bounds below cannot be keyed cheaply: the listing then carries a
`reason` and the stages are not cacheable (they run, and say why).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# Hashing more than this from disk each run would cost more than the run it saves.
MAX_HASHED_FILES = 50_000
MAX_HASHED_BYTES = 512 * 1024 * 1024

GitRun = Callable[..., bytes | None]


def run_git(ws: Path, *args: str) -> bytes | None:
    """git's stdout, or None when git is missing, fails or times out."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(ws), *args], capture_output=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


@dataclass(frozen=True)
class Files:
    """The workspace's files: path (relative to the workspace) -> content id; `reason`
    says why they could not all be keyed (None: they were)."""

    ids: dict[str, str]
    reason: str | None = None

    def under(self, prefix: str) -> dict[str, str]:
        """The files below a folder (`""`: all)."""
        if not prefix:
            return dict(self.ids)
        lead = prefix.rstrip("/") + "/"
        return {p: i for p, i in self.ids.items() if p.startswith(lead)}


def digest(*parts: str | bytes) -> str:
    """sha256 over the parts (length-prefixed, so ("ab", "c") != ("a", "bc"))."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def files_digest(ids: Mapping[str, str]) -> str:
    """One digest of a {path: content id} listing."""
    return digest(*(f"{p}\0{i}" for p, i in sorted(ids.items())))


def blob_id(data: bytes) -> str:
    """git's object id of a blob with this content (so a hashed file and the same file
    in git's index get the same id)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class _Budget:
    """What was hashed from disk so far, against the bounds."""

    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0
        self.over: str | None = None

    def take(self, size: int, where: str) -> bool:
        self.files += 1
        self.bytes += size
        if self.over is None and (self.files > MAX_HASHED_FILES or self.bytes > MAX_HASHED_BYTES):
            self.over = (
                f"more than {MAX_HASHED_FILES} files or {MAX_HASHED_BYTES >> 20} MiB to hash "
                f"from disk (at {where}); list what is not an input in [tool.pipeline.cache] "
                "not_inputs"
            )
        return self.over is None


class _Lister:
    def __init__(
        self, root: Path, exclude: Iterable[Path], skip: Iterable[str], git: GitRun
    ) -> None:
        self.root = root.resolve()
        self.exclude = {e.resolve() for e in exclude}
        self.excluded_rel = [
            e.relative_to(self.root).as_posix() for e in self.exclude if self.root in e.parents
        ]
        self.skip = tuple(skip)
        self._names: dict[str, bool] = {}
        self.git = git
        self.budget = _Budget()
        self.reasons: list[str] = []

    def skipped_name(self, name: str) -> bool:
        """`.git` or a `not_inputs` glob (remembered: the same names recur in every folder)."""
        hit = self._names.get(name)
        if hit is None:
            hit = name == ".git" or any(fnmatch.fnmatchcase(name, pat) for pat in self.skip)
            self._names[name] = hit
        return hit

    def skipped(self, path: Path, name: str) -> bool:
        if self.skipped_name(name):
            return True
        if path.resolve() in self.exclude:
            return True
        return path.is_dir() and not path.is_symlink() and (path / "CACHEDIR.TAG").is_file()

    def content(self, path: Path, rel: str) -> str:
        """The id of one file from disk: blob id and mode; a symlink by its target."""
        try:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                return self.link(path, rel)
            if stat.S_ISDIR(st.st_mode):
                return "tree:" + self.tree(path, rel)
            if not self.budget.take(st.st_size, rel):
                return "unkeyed"
            mode = "100755" if st.st_mode & 0o111 else "100644"
            return f"git:{mode}:{blob_id(path.read_bytes())}"
        except OSError as err:
            return f"unreadable:{err.errno}"

    def link(self, path: Path, rel: str) -> str:
        """A symlink: its text and, when it points outside the workspace, the content there
        (inside, that content is a file of the listing already)."""
        text = os.readlink(path)
        target = path.resolve()
        if target == self.root or self.root in target.parents:
            return f"link:{text}"
        if not target.exists():
            return f"link:{text}:dangling"
        inner = "tree:" + self.tree(target, rel) if target.is_dir() else self.content(target, rel)
        return f"link:{text}:{inner}"

    def tree(self, folder: Path, rel: str) -> str:
        """A digest of a folder's files (a nested repository, a submodule, a symlinked
        folder): through git when it is its own repository, else from disk."""
        sub = _Lister(folder, self.exclude, self.skip, self.git)
        sub.budget = self.budget
        ids = sub.listing()
        self.reasons.extend(f"{rel}/{r}" for r in sub.reasons)
        return files_digest(ids)

    def walk(self, start: Path) -> dict[str, str]:
        """Every file below `start` hashed from disk (relative to the root)."""
        ids: dict[str, str] = {}
        for folder, dirs, files in os.walk(start):
            here = Path(folder)
            dirs[:] = sorted(d for d in dirs if not self.skipped(here / d, d))
            for name in sorted(files):
                path = here / name
                if self.skipped(path, name):
                    continue
                rel = path.relative_to(self.root).as_posix()
                ids[rel] = self.content(path, rel)
            # symlinks to folders are not descended by os.walk: key them as links
            for name in list(dirs):
                path = here / name
                if path.is_symlink():
                    dirs.remove(name)
                    rel = path.relative_to(self.root).as_posix()
                    ids[rel] = self.content(path, rel)
        return ids

    def listing(self) -> dict[str, str]:
        """Every file of the root with its id (see the module docstring)."""
        if not any((d / ".git").exists() for d in (self.root, *self.root.parents)):
            return self.walk(self.root)
        ids = self.from_git()
        # git failed, timed out, or knows nothing of an ignored workspace: hash the disk
        return self.walk(self.root) if ids is None else ids

    def from_git(self) -> dict[str, str] | None:
        """The listing through git, or None when git cannot give it (then: from disk)."""
        args = ("ls-files", "-z")
        tracked = self.git(self.root, *args, "-s")
        changed = self.git(self.root, *args, "-m", "-d")
        untracked = self.git(self.root, *args, "-o", "--exclude-standard")
        ignored = self.git(self.root, *args, "-o", "-i", "--exclude-standard", "--directory")
        if tracked is None or changed is None or untracked is None or ignored is None:
            return None
        ignored_names = _names(ignored)
        if "./" in ignored_names or "" in ignored_names:
            return None  # the workspace is ignored by an outer repository: git knows nothing
        ids: dict[str, str] = {}
        for entry in _names(tracked):
            meta, _, path = entry.partition("\t")
            fields = meta.split()
            if len(fields) < 2:
                continue
            mode, oid = fields[0], fields[1]
            full = self.root / path
            if self.skipped_path(path):
                continue
            if mode == "160000":  # a submodule: its files, dirty or not
                present = (full / ".git").exists()
                ids[path] = "tree:" + self.tree(full, path) if present else f"gitlink:{oid}"
            elif mode == "120000" and full.is_symlink():
                ids[path] = self.link(full, path)
            else:
                ids[path] = f"git:{mode}:{oid}"
        for path in set(_names(changed)):
            full = self.root / path
            if path in ids and not self.skipped_path(path) and not ids[path].startswith("tree:"):
                exists = full.exists() or full.is_symlink()
                ids[path] = self.content(full, path) if exists else "deleted"
        for path in [*_names(untracked), *ignored_names]:
            rel = path.rstrip("/")
            if not rel or self.skipped_path(rel):
                continue
            full = self.root / rel
            if path.endswith("/") and self.skipped(full, full.name):
                continue
            if full.is_dir() and not full.is_symlink():
                if path.endswith("/") and (full / ".git").exists():
                    ids[rel] = "tree:" + self.tree(full, rel)  # a nested repository
                else:
                    ids.update(self.walk(full))
            else:
                ids[rel] = self.content(full, rel)
        return ids

    def skipped_path(self, rel: str) -> bool:
        """True for a path git listed that lies inside something left out (by name, or
        below an excluded folder; cheap: no file system access)."""
        if any(self.skipped_name(part) for part in rel.split("/")):
            return True
        return any(rel == e or rel.startswith(e + "/") for e in self.excluded_rel)


def _names(out: bytes) -> list[str]:
    return [x for x in out.decode("utf-8", "replace").split("\0") if x]


def workspace_files(
    ws: Path,
    exclude: Iterable[Path] = (),
    not_inputs: Iterable[str] = (),
    git: GitRun = run_git,
) -> Files:
    """Every file of the workspace with its content id (see the module docstring).
    `exclude`: folders that are never inputs; `not_inputs`: name globs left out."""
    lister = _Lister(ws, exclude, not_inputs, git)
    ids = lister.listing()
    reason = lister.budget.over or (lister.reasons[0] if lister.reasons else None)
    return Files(ids, reason)


def tree_digest(folder: Path, not_inputs: Iterable[str] = (), git: GitRun = run_git) -> str:
    """One digest of a folder outside the workspace (a path dependency, a [patch] path)."""
    files = workspace_files(folder, (), not_inputs, git)
    return files_digest(files.ids) + (f":{files.reason}" if files.reason else "")
