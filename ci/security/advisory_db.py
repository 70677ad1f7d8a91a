"""The RustSec advisory database: where it comes from, how old it is, how the tools use it.

Resolution, first that works:
1. `advisory_db` is configured: that local checkout, used as is (nothing fetched);
2. unless `offline`: fetch it (clone, or update the cached clone) with git, within
   `fetch_timeout` seconds;
3. the newest copy an earlier run left behind: our cache (`advisory_cache`, by default
   cargo-audit's own `$CARGO_HOME/advisory-db`) or cargo-deny's
   (`$CARGO_HOME/advisory-dbs/advisory-db-*`), shown with its age;
4. nothing: the advisories are *not checked*, an error named in the gate table with the
   one-line way to run offline. Never a silent pass.

The age is the database's last commit time: advisories published after it are missing.
Older than `warn_age_days` it is used with a warning; older than `max_age_days` it is
refused (not checked), whichever way it was found.

Both tools then read that one database and fetch nothing: cargo-audit with
`--db PATH --no-fetch`; cargo-deny through a copy of deny.toml whose `db-path` points at a
folder holding the database under the name cargo-deny derives from the URL (XXH64 of the
URL), with `--offline`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.errors import ConfigError

DEFAULT_URL = "https://github.com/rustsec/advisory-db"
_DENY_URL_SEED = 0xCA80DE71
DAY_S = 86400.0
OFFLINE_FIX = "offline: CIPIPE_SECURITY__ADVISORY_DB=<a git clone of rustsec/advisory-db>"


@dataclass(frozen=True)
class DbConfig:
    """`[tool.pipeline.security]` settings about the advisory database."""

    configured: Path | None
    offline: bool
    cache: Path
    fetch_timeout: float
    warn_age_days: float
    max_age_days: float
    cargo_home: Path


@dataclass(frozen=True)
class AdvisoryDb:
    """The database both advisory tools use, or why there is none."""

    path: Path | None
    source: str  # how it was found: "configured", "fetched now", "cached copy (...)"
    commit: str = ""
    commit_time: float = 0.0
    age_days: float = 0.0
    warning: str = ""  # old, or fetched failed and a cached copy is used
    unavailable: str = ""  # why the advisories are not checked

    @property
    def usable(self) -> bool:
        return self.path is not None and not self.unavailable

    def describe(self) -> str:
        """One line for the stage output."""
        if not self.usable:
            return f"none ({self.unavailable})"
        day = time.strftime("%Y-%m-%d", time.gmtime(self.commit_time))
        return (
            f"{self.path} ({self.source}; commit {self.commit[:12]} of {day}, "
            f"{self.age_days:.0f} day(s) old)"
        )


class Git:
    """Quiet git calls for the database (they are not pipeline steps worth echoing)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = {**env, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}

    def __call__(self, args: Sequence[str], timeout: float = 60) -> tuple[int, str]:
        try:
            proc = subprocess.run(
                ["git", *args],
                capture_output=True,
                text=True,
                env=self.env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return 124, f"timed out after {timeout:g}s"
        except OSError as err:
            return 127, f"git: {err.strerror}"
        out = (proc.stdout if proc.returncode == 0 else proc.stderr).strip()
        return proc.returncode, out

    def head(self, path: Path) -> tuple[str, float] | None:
        """(commit, commit time) of a checkout, None when it is not a usable git checkout."""
        if not (path / "crates").is_dir():
            return None
        code, out = self(["-C", str(path), "log", "-1", "--format=%H %ct"], timeout=30)
        parts = out.split()
        if code != 0 or len(parts) != 2 or not parts[1].isdigit():
            return None
        return parts[0], float(parts[1])


def fetch(git: Git, cache: Path, url: str, timeout: float) -> str | None:
    """Clone or update `cache` from `url`; None on success, else the one-line reason.
    A fresh clone goes to a temp folder first, so a failed fetch never destroys a copy."""
    if (cache / ".git").exists():
        code, out = git(["-C", str(cache), "fetch", "--depth", "1", url, "HEAD"], timeout)
        if code == 0:
            code, out = git(["-C", str(cache), "reset", "--hard", "-q", "FETCH_HEAD"], timeout)
        return None if code == 0 else _last(out)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.tmp-{os.getpid()}")
    code, out = git(["clone", "-q", "--depth", "1", url, str(tmp)], timeout)
    if code != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        return _last(out)
    if cache.exists():
        shutil.rmtree(cache, ignore_errors=True)
    tmp.rename(cache)
    return None


def fetched_at(path: Path) -> float:
    """When a clone was last fetched or made (0 when it does not exist)."""
    marks = [path / ".git" / "FETCH_HEAD", path / ".git" / "HEAD"]
    return max((m.stat().st_mtime for m in marks if m.exists()), default=0.0)


def _last(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1] if lines else "unknown error"
    # git's "fatal: unable to access 'URL': Could not resolve host: x" -> the cause only
    return line.rsplit("': ", 1)[-1].removeprefix("fatal: ")


def candidates(cfg: DbConfig) -> list[Path]:
    """Copies earlier runs may have left: ours, cargo-audit's, cargo-deny's."""
    found = [cfg.cache, cfg.cargo_home / "advisory-db"]
    deny = cfg.cargo_home / "advisory-dbs"
    if deny.is_dir():
        found += sorted(deny.glob("advisory-db-*"))
    unique: list[Path] = []
    for path in found:
        if path not in unique:
            unique.append(path)
    return unique


def resolve(cfg: DbConfig, git: Git, now: float | None = None) -> AdvisoryDb:
    """Find the database (see the module docstring). Never raises for a missing database:
    that is an `unavailable` result, reported as "not checked"."""
    now = time.time() if now is None else now
    if cfg.configured is not None:
        head = git.head(cfg.configured)
        if head is None:
            raise ConfigError(
                f"advisory database {cfg.configured} is not a git checkout of the RustSec "
                "advisory-db (no crates/ folder or no commit): point "
                "[tool.pipeline.security] advisory_db (CIPIPE_SECURITY__ADVISORY_DB) at one"
            )
        return _aged(cfg, cfg.configured, "configured", head, now, "")
    fetch_error = "offline mode" if cfg.offline else ""
    if not cfg.offline:
        fetch_error = fetch(git, cfg.cache, DEFAULT_URL, cfg.fetch_timeout) or ""
        if not fetch_error:
            head = git.head(cfg.cache)
            if head is not None:
                return _aged(cfg, cfg.cache, "fetched now", head, now, "")
            fetch_error = f"{cfg.cache} is not a usable advisory database after fetching"
    copies = [(path, head) for path in candidates(cfg) if (head := git.head(path)) is not None]
    if copies:
        path, head = max(copies, key=lambda item: item[1][1])
        why = f"cannot fetch: {fetch_error}" if not cfg.offline else "offline mode"
        return _aged(cfg, path, f"cached copy; {why}", head, now, f"using a cached copy ({why})")
    reason = f"cannot fetch ({fetch_error})" if not cfg.offline else "offline mode"
    return AdvisoryDb(None, "none", unavailable=f"no advisory database: {reason}, no cached copy")


def _aged(
    cfg: DbConfig, path: Path, source: str, head: tuple[str, float], now: float, note: str
) -> AdvisoryDb:
    commit, when = head
    age = max(0.0, (now - when) / DAY_S)
    if age > cfg.max_age_days:
        return AdvisoryDb(
            path,
            source,
            commit,
            when,
            age,
            unavailable=(
                f"the advisory database at {path} is {age:.0f} days old, over the "
                f"{cfg.max_age_days:.0f}-day maximum (update it, or raise "
                "[tool.pipeline.security] max_age_days)"
            ),
        )
    warnings = [note] if note else []
    if age > cfg.warn_age_days:
        warnings.append(f"the advisory database is {age:.0f} days old")
    return AdvisoryDb(path, source, commit, when, age, warning="; ".join(warnings))


def deny_dir_name(url: str = DEFAULT_URL) -> str:
    """The folder name cargo-deny expects for the database cloned from `url`."""
    import xxhash  # the security stage's virtualenv pins it

    lowered = url.lower()
    name = lowered.rstrip("/").rsplit("/", 1)[-1] or "empty_"
    return f"{name}-{xxhash.xxh64_intdigest(lowered.encode(), _DENY_URL_SEED):016x}"


def read_deny_config(path: Path) -> dict[str, Any]:
    """deny.toml as data; ConfigError naming the fix when it is missing or not TOML."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path} not found: create it (see the project's deny.toml) or set "
            "[tool.pipeline.security] deny_config"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ConfigError(f"{path}: cannot read: {reason}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None


def with_db(config: dict[str, Any], db_root: Path, max_age_days: float) -> dict[str, Any]:
    """`config` with `[advisories]` reading the local database under `db_root`. Our own
    age policy has already accepted the database, so cargo-deny's staleness limit is
    set past it (cargo-deny measures from the last fetch, which differs)."""
    result = dict(config)
    advisories = dict(result.get("advisories") or {})
    advisories["db-path"] = str(db_root)
    advisories["db-urls"] = [DEFAULT_URL]
    advisories["maximum-db-staleness"] = f"P{int(max_age_days) + 3650}D"
    result["advisories"] = advisories
    return result


def prepare_deny(db: AdvisoryDb, config: dict[str, Any], max_age: float, work_dir: Path) -> Path:
    """Write the deny.toml copy that reads `db` (into `work_dir`) and return its path."""
    import tomli_w  # the security stage's virtualenv pins it

    assert db.path is not None
    root = work_dir / "advisory-dbs"
    root.mkdir(parents=True, exist_ok=True)
    link = root / deny_dir_name()
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(db.path, link, target_is_directory=True)
    path = work_dir / "deny.local-db.toml"
    path.write_text(tomli_w.dumps(with_db(config, root, max_age)), encoding="utf-8")
    return path
