"""Configuration: `[tool.pipeline]` in pyproject.toml, overridden by environment.

Read once by the entry point into a `Settings` object that is passed down; no other
module reads files or the environment for configuration.

Environment overrides use `PIPELINE_` + the key path upper-cased, tables joined by
a double underscore: `PIPELINE_WORKSPACE=...`, `PIPELINE_BUDGETS__LINT=90`,
`PIPELINE_SERVICES__BACKEND=local`, `PIPELINE_SECURITY__OFFLINE=true`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.errors import ConfigError, WorkspaceError

ENV_PREFIX = "PIPELINE_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _set_path(data: dict[str, Any], path: list[str], value: str) -> None:
    node = data
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def merge_env(data: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Return a deep copy of `data` with `PIPELINE_*` environment overrides applied."""
    merged: dict[str, Any] = _deep_copy(data)
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if any(not part for part in path):
            raise ConfigError(f"environment variable {name}: empty key segment")
        _set_path(merged, path, value)
    return merged


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


@dataclass(frozen=True)
class Section:
    """A typed view of one table of the configuration. Every getter names the full key
    in its error message so a malformed value is reported in one line."""

    name: str
    data: Mapping[str, Any]
    root: Path

    def _key(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def _fail(self, key: str, expected: str, value: object) -> ConfigError:
        env = ENV_PREFIX + self._key(key).replace(".", "__").upper()
        return ConfigError(
            f"[tool.pipeline] {self._key(key)} (or ${env}): expected {expected}, got {value!r}"
        )

    def has(self, key: str) -> bool:
        """True when the key is set in pyproject or the environment."""
        return key in self.data

    def sub(self, key: str) -> Section:
        """A nested table (missing tables read as empty)."""
        value = self.data.get(key, {})
        if not isinstance(value, Mapping):
            raise self._fail(key, "a table", value)
        return Section(self._key(key), value, self.root)

    def keys(self) -> list[str]:
        """The keys present in this table."""
        return list(self.data)

    def text(self, key: str, default: str = "") -> str:
        value = self.data.get(key, default)
        if isinstance(value, (dict, list)):
            raise self._fail(key, "a string", value)
        return str(value)

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key, default)
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise self._fail(key, "true or false", value)

    def number(self, key: str, default: float = 0.0, *, minimum: float | None = None) -> float:
        value = self.data.get(key, default)
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or number != number:  # NaN
            raise self._fail(key, "a number", value)
        if minimum is not None and number < minimum:
            raise self._fail(key, f"a number >= {minimum:g}", value)
        return number

    def whole(self, key: str, default: int = 0, *, minimum: int | None = None) -> int:
        value = self.data.get(key, default)
        try:
            number = int(str(value).strip()) if not isinstance(value, (bool, float)) else None
        except ValueError:
            number = None
        if number is None:
            raise self._fail(key, "a whole number", value)
        if minimum is not None and number < minimum:
            raise self._fail(key, f"a whole number >= {minimum}", value)
        return number

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(key, default).strip().lower()
        if value not in choices:
            raise self._fail(key, "one of " + ", ".join(choices), value)
        return value

    def strings(self, key: str, default: tuple[str, ...] = ()) -> list[str]:
        """A list of strings; from the environment, comma-separated."""
        value = self.data.get(key, list(default))
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "a list of strings", value)
        return list(value)

    def path(self, key: str, default: str = "", *, base: Path | None = None) -> Path | None:
        """A path, relative to `base` (default: the project root); None when empty."""
        text = self.text(key, default).strip()
        if not text:
            return None
        path = Path(os.path.expanduser(text))
        return path if path.is_absolute() else (base or self.root) / path


DEFAULT_BUDGETS: dict[str, float] = {
    "lint": 60,
    "security": 120,
    "unit": 120,
    "integration": 300,
    "bench": 180,
    "coverage": 120,
    "staging": 300,
    "e2e": 600,
    "production": 300,
}


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline is configured with, read once."""

    root: Path
    data: Mapping[str, Any]
    env: Mapping[str, str] = field(repr=False)

    @property
    def top(self) -> Section:
        """The `[tool.pipeline]` table itself."""
        return Section("", self.data, self.root)

    def section(self, name: str) -> Section:
        """A sub-table such as `services` or `security`."""
        return self.top.sub(name)

    @property
    def workspace(self) -> Path:
        """The Cargo workspace root the stages act on."""
        path = self.top.path("workspace", ".")
        assert path is not None
        return path.resolve()

    @property
    def out_dir(self) -> Path:
        """Where stage results, logs and artifacts are written."""
        path = self.top.path("output_dir", "target/pipeline", base=self.workspace)
        assert path is not None
        return path

    @property
    def cargo_target_dir(self) -> Path | None:
        """A shared CARGO_TARGET_DIR, or None for cargo's default."""
        return self.top.path("cargo_target_dir", "")

    @property
    def secret_env(self) -> list[str]:
        """Extra environment variable names whose values are secrets."""
        return self.top.strings("secret_env")

    @property
    def parallelism(self) -> int:
        """How many independent stages `invoke ci` runs side by side."""
        return self.top.whole("parallelism", 2, minimum=1)

    def budget(self, stage: str) -> float:
        """The stage's time budget in seconds."""
        return self.section("budgets").number(stage, DEFAULT_BUDGETS.get(stage, 300), minimum=1)

    def require_workspace(self) -> Path:
        """The workspace, checked to be a Cargo project; raises WorkspaceError otherwise."""
        ws = self.workspace
        if not ws.is_dir():
            raise WorkspaceError(
                f"workspace {ws} does not exist "
                "(set [tool.pipeline] workspace or PIPELINE_WORKSPACE)"
            )
        if not (ws / "Cargo.toml").is_file():
            raise WorkspaceError(
                f"{ws} is not a Cargo workspace: no Cargo.toml "
                "(set [tool.pipeline] workspace or PIPELINE_WORKSPACE)"
            )
        return ws


def load(root: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read `[tool.pipeline]` from `root/pyproject.toml` and apply environment overrides."""
    env = dict(os.environ if env is None else env)
    pyproject = root / "pyproject.toml"
    table: Mapping[str, Any] = {}
    if pyproject.is_file():
        try:
            with pyproject.open("rb") as fh:
                doc = tomllib.load(fh)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{pyproject}: invalid TOML: {err}") from None
        except OSError as err:
            raise ConfigError(f"{pyproject}: cannot read: {err.strerror}") from None
        table = doc.get("tool", {}).get("pipeline", {})
        if not isinstance(table, Mapping):
            raise ConfigError(f"{pyproject}: [tool.pipeline] must be a table")
    return Settings(root=root.resolve(), data=merge_env(table, env), env=env)
