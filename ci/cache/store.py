"""The stage result cache on disk: `<dir>/<stage>/<key>/` holds a passed result (as it
was written, already masked) and copies of its artifacts.

Only green results are stored; a failure is never replayed. Entries are written to a
temp folder and renamed into place, so two runs at once never see half an entry; a
corrupt entry is removed with a warning and never trusted. The folder is kept under a
size bound by evicting the least recently used entries.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.result import StageResult, Status, atomic_write

FORMAT = 1


@dataclass(frozen=True)
class Entry:
    """A cached result: the result, its inputs, where it came from, its artifacts."""

    path: Path
    result: StageResult
    inputs: dict[str, str]
    run_id: str
    commit: str
    at: str
    artifacts: dict[str, Path]


class CacheStore:
    """Results by stage and key under `root`, at most `max_mb` megabytes."""

    def __init__(
        self, root: Path, max_mb: float = 500.0, warn: Callable[[str], None] | None = None
    ) -> None:
        self.root = root
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.warn = warn or (lambda text: None)

    def lookup(self, stage: str, key: str) -> Entry | None:
        """The entry for (stage, key), or None. A damaged entry is removed and warned
        about, never used."""
        folder = self.root / stage / key
        meta = folder / "entry.json"
        if self.poisoned(stage, key):
            return None
        try:
            read = meta.stat()
        except OSError:
            return None
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT or data.get("key") != key or data.get("stage") != stage:
                raise ValueError("format, key or stage mismatch")
            result = StageResult.from_dict(data["result"])
            if not result.status.ok:
                raise ValueError(f"a {result.status.value} result is never cached")
            artifacts = {name: folder / "files" / rel for name, rel in data["artifacts"].items()}
            if any(not p.is_file() for p in artifacts.values()):
                raise ValueError("an artifact is missing")
            entry = Entry(
                folder,
                result,
                dict(data["inputs"]),
                str(data.get("run_id", "")),
                str(data.get("commit", "")),
                str(data.get("at", "")),
                artifacts,
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            if _same_file(meta, read):  # still what was read: damaged, not replaced
                self.warn(f"cache: discarded a damaged entry for {stage} ({err})")
                self._discard(folder, read)
            return None  # else a concurrent save replaced it mid-read: a miss
        with contextlib.suppress(OSError):
            os.utime(meta)  # recently used
        return entry

    def _discard(self, folder: Path, read: os.stat_result) -> None:
        """Remove a damaged entry, and only it: it is moved aside in one step first and
        put back if what was moved is a fresh entry a concurrent save just renamed in."""
        aside = Path(tempfile.mkdtemp(prefix=".bad-", dir=folder.parent)) / "entry"
        try:
            os.rename(folder, aside)
        except OSError:
            return
        if not _same_file(aside / "entry.json", read):
            with contextlib.suppress(OSError):
                os.rename(aside, folder)  # not ours to delete
        shutil.rmtree(aside.parent, ignore_errors=True)

    def last_inputs(self, stage: str) -> dict[str, str]:
        """The inputs of the last entry saved for `stage` (to say what changed)."""
        try:
            return dict(json.loads((self.root / stage / "last.json").read_text())["inputs"])
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def save(
        self,
        stage: str,
        key: str,
        result: Mapping[str, Any],
        inputs: Mapping[str, str],
        artifacts: Mapping[str, Path],
        *,
        run_id: str,
        commit: str,
    ) -> Path | None:
        """Store a green result (as written to disk) and copies of its artifacts.
        Returns the entry's folder, or None when the result is not cacheable."""
        if result.get("status") not in (Status.PASSED.value, Status.SKIPPED.value):
            return None
        if self.poisoned(stage, key):
            return None
        stage_dir = self.root / stage
        stage_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=stage_dir))
        try:
            copied: dict[str, str] = {}
            for name, src in artifacts.items():
                if src.is_file() and src.stat().st_size < self.max_bytes:
                    rel = f"{name}{src.suffix}"
                    (tmp / "files").mkdir(exist_ok=True)
                    shutil.copy2(src, tmp / "files" / rel)
                    copied[name] = rel
            meta = {
                "format": FORMAT,
                "stage": stage,
                "key": key,
                "inputs": dict(inputs),
                "result": dict(result),
                "artifacts": copied,
                "run_id": run_id,
                "commit": commit,
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            (tmp / "entry.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
            final = stage_dir / key
            # An older entry for the key is moved aside in one step (never deleted in
            # place, where a concurrent writer's fresh entry could lose files).
            aside = Path(tempfile.mkdtemp(prefix=".old-", dir=stage_dir))
            with contextlib.suppress(OSError):
                os.rename(final, aside / "entry")
            try:
                os.rename(tmp, final)
            except OSError as err:
                # Another writer's entry for the same key took the place first (it may be
                # moved aside again by a third): the same inputs, so it stands for ours.
                if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            finally:
                shutil.rmtree(aside, ignore_errors=True)
            fd, last = tempfile.mkstemp(prefix=".last-", dir=stage_dir)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"inputs": dict(inputs)}, fh)
            os.replace(last, stage_dir / "last.json")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.evict()
        return final

    def _poison_mark(self, stage: str, key: str) -> Path:
        return self.root / stage / f"{key}.poisoned"

    def poison(self, stage: str, key: str, why: str) -> None:
        """Never replay nor store (stage, key) again: the cache audit saw a real run
        disagree with it. The entry is removed; a mark beside it keeps the key out."""
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        atomic_write(self._poison_mark(stage, key), json.dumps({"why": why, "at": at}))
        shutil.rmtree(self.root / stage / key, ignore_errors=True)

    def poisoned(self, stage: str, key: str) -> str:
        """Why (stage, key) was poisoned, or "" when it was not."""
        try:
            return str(json.loads(self._poison_mark(stage, key).read_text())["why"])
        except FileNotFoundError:
            return ""
        except (OSError, ValueError, KeyError, TypeError):
            return "poisoned (unreadable mark)"

    def forget_packages(self, stage: str) -> None:
        """Remove the per-package entries of `stage` (`<stage>@<package>`)."""
        for folder in self.root.glob(f"{stage}@*"):
            shutil.rmtree(folder, ignore_errors=True)

    def evict(self) -> int:
        """Remove the least recently used entries until the folder fits; count removed."""
        entries = []
        total = 0
        for meta in self.root.glob("*/*/entry.json"):
            folder = meta.parent
            try:
                size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
                entries.append((meta.stat().st_mtime, size, folder))
            except OSError:
                continue
            total += size
        removed = 0
        for _, size, folder in sorted(entries):
            if total <= self.max_bytes:
                break
            shutil.rmtree(folder, ignore_errors=True)
            total -= size
            removed += 1
        return removed


def _same_file(path: Path, read: os.stat_result) -> bool:
    """True when `path` is still the very file that was stat'ed as `read`."""
    try:
        now = path.stat()
    except OSError:
        return False
    return (now.st_ino, now.st_dev, now.st_mtime_ns) == (read.st_ino, read.st_dev, read.st_mtime_ns)
