"""Where the advisory database comes from: fetched by the tools (default), or a local
directory used as is with nothing fetched (offline mode, air-gapped and reproducible).

cargo-audit takes the local database directly (`--db PATH --no-fetch`). cargo-deny has no
such flag: it looks for `<db-path>/advisory-db-<xxh64 of the URL>` and reads the commit
time from its git metadata. So offline mode writes a copy of deny.toml whose `db-path` is
a folder in the artifacts directory holding a symlink with exactly that name.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ci.errors import ConfigError
from ci.security.xxh64 import xxh64

DEFAULT_URL = "https://github.com/rustsec/advisory-db"
_DENY_URL_SEED = 0xCA80DE71
_HEADER = re.compile(r"^\s*\[")
_ADVISORIES = re.compile(r"^\s*\[advisories\]\s*(#.*)?$")
_DB_KEY = re.compile(r"^\s*(db-path|db-urls)\s*=")


@dataclass(frozen=True)
class AdvisoryDb:
    """The database the advisories and policy checks use; `path` is None when online."""

    offline: bool
    path: Path | None

    def describe(self) -> str:
        """One line for the stage output."""
        return f"local advisory database {self.path} (offline)" if self.path else "fetched"


def resolve(offline: bool, path: Path | None) -> AdvisoryDb:
    """Check the configured database. Online (the default) the tools fetch their own and
    `path` is not used; offline needs an existing local database."""
    if not offline:
        return AdvisoryDb(False, None)
    if path is None:
        raise ConfigError(
            "offline mode needs a local advisory database: set [tool.pipeline.security] "
            "advisory_db (or $CIPIPE_SECURITY__ADVISORY_DB) to a checkout of the RustSec "
            "advisory-db"
        )
    if not (path / "crates").is_dir():
        raise ConfigError(
            f"advisory database {path} not found (no crates/ folder): point "
            "[tool.pipeline.security] advisory_db (or $CIPIPE_SECURITY__ADVISORY_DB) at a "
            "checkout of the RustSec advisory-db"
        )
    if not (path / ".git").exists():
        raise ConfigError(
            f"advisory database {path} is not a git checkout: cargo deny reads its last "
            "commit time; use `git clone` of the advisory-db (or `git init && git commit`)"
        )
    return AdvisoryDb(True, path.resolve())


def deny_dir_name(url: str = DEFAULT_URL) -> str:
    """The folder name cargo-deny expects for the database cloned from `url`."""
    lowered = url.lower()
    name = lowered.rstrip("/").rsplit("/", 1)[-1] or "empty_"
    return f"{name}-{xxh64(lowered.encode(), _DENY_URL_SEED):016x}"


def read_deny_config(path: Path) -> str:
    """The text of deny.toml, checked to be TOML; ConfigError naming the fix otherwise."""
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
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    return text


def with_db_path(config_text: str, db_root: Path, url: str = DEFAULT_URL) -> str:
    """`config_text` with `[advisories] db-path`/`db-urls` replaced by a local root."""
    lines = config_text.splitlines()
    out: list[str] = []
    in_adv = False
    skipping_array = False
    inserted = False
    inject = [f"db-path = {_toml_str(str(db_root))}", f"db-urls = [{_toml_str(url)}]"]
    for line in lines:
        if skipping_array:
            if "]" in line:
                skipping_array = False
            continue
        if _HEADER.match(line) and not line.strip().startswith("[["):
            in_adv = bool(_ADVISORIES.match(line))
            out.append(line)
            if in_adv:
                out.extend(inject)
                inserted = True
            continue
        if in_adv and _DB_KEY.match(line):
            value = line.split("=", 1)[1]
            skipping_array = value.count("[") > value.count("]")
            continue
        out.append(line)
    if not inserted:
        # Keys before the first table belong to the root table, so append at the end.
        out += ["", "[advisories]", *inject]
    text = "\n".join(out) + "\n"
    parsed = tomllib.loads(text)
    assert parsed["advisories"]["db-path"] == str(db_root)
    return text


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def prepare_deny(db: AdvisoryDb, config_text: str, work_dir: Path) -> Path | None:
    """In offline mode: the deny.toml copy pointing at the local database (written into
    `work_dir`); None when the tools fetch as usual."""
    if db.path is None:
        return None
    root = work_dir / "advisory-dbs"
    root.mkdir(parents=True, exist_ok=True)
    link = root / deny_dir_name()
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(db.path, link, target_is_directory=True)
    config = work_dir / "deny.offline.toml"
    config.write_text(with_db_path(config_text, root), encoding="utf-8")
    return config
