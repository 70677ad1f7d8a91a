"""Configuration: `ci/defaults.toml` (the schema: every key and its default), then
`[tool.pipeline]` in the project's pyproject.toml, then the environment.

Read once by the entry point into a `Settings` object that is passed down; no other
module reads files or the environment for configuration.

Environment overrides use `CIPIPE_` + the key path upper-cased, tables joined by a
double underscore: `CIPIPE_WORKSPACE=...`, `CIPIPE_BUDGETS__LINT=90`,
`CIPIPE_SERVICES__BACKEND=local`. The prefix is one no CI system defines (Azure
Pipelines sets `PIPELINE_WORKSPACE` in every job). A key the schema does not know, in
pyproject.toml or in the environment, is an error naming it: a typo never goes unnoticed.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci import workspace_config
from ci.errors import ConfigError, WorkspaceError

ENV_PREFIX = "CIPIPE_"
INTERNAL_PREFIX = ENV_PREFIX + "_"  # CIPIPE__X: channels between our own processes
DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _known(schema: Mapping[str, Any], path: list[str]) -> tuple[bool, Mapping[str, Any]]:
    """(whether `path` names a key of `schema`, the deepest table reached)."""
    node: Mapping[str, Any] = schema
    for i, key in enumerate(path):
        if key not in node:
            return False, node
        child = node[key]
        if i + 1 < len(path):
            if not isinstance(child, Mapping):
                return False, node
            node = child
    return True, node


def _unknown(schema: Mapping[str, Any], path: list[str], where: str) -> ConfigError:
    _, table = _known(schema, path)
    dotted = ".".join(path)
    prefix = ".".join(path[: len(path) - 1])
    keys = ", ".join(sorted(table)) if table is not schema or not prefix else ""
    hint = f"; known keys{' in ' + prefix if prefix else ''}: {keys}" if keys else ""
    return ConfigError(f"{where}: unknown key {dotted!r}{hint}")


def _check_keys(schema: Mapping[str, Any], data: Mapping[str, Any], where: str) -> None:
    """Every key of `data` (a [tool.pipeline] table) exists in the schema."""

    def walk(node: Mapping[str, Any], path: list[str]) -> None:
        for key, value in node.items():
            here = [*path, key]
            known, _ = _known(schema, here)
            if not known:
                raise _unknown(schema, here, where)
            if isinstance(value, Mapping):
                walk(value, here)

    walk(data, [])


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = _deep_copy(value) if isinstance(value, Mapping) else value
    return base


def merge_env(
    data: Mapping[str, Any], env: Mapping[str, str], schema: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A deep copy of `data` with `CIPIPE_*` environment overrides applied. With a
    `schema`, a variable naming an unknown key (or a whole table) is a ConfigError."""
    merged: dict[str, Any] = _deep_copy(data)
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name.startswith(INTERNAL_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if any(not part for part in path):
            raise ConfigError(f"environment variable {name}: empty key segment")
        if schema is not None:
            known, table = _known(schema, path)
            if not known:
                raise _unknown(schema, path, f"environment variable {name}")
            if isinstance(table.get(path[-1]), Mapping):
                example = next(iter(table[path[-1]]), "key").upper()
                raise ConfigError(
                    f"environment variable {name}: {'.'.join(path)} is a table; "
                    f"set one of its keys, e.g. {name}__{example}"
                )
        node = merged
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[path[-1]] = value
    return merged


def schema() -> dict[str, Any]:
    """The schema and defaults (`ci/defaults.toml`)."""
    with DEFAULTS_FILE.open("rb") as fh:
        return tomllib.load(fh)


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

    def _get(self, key: str, default: object) -> Any:
        """The value of `key`: set by the project or environment, else the schema's default
        (always present: settings are merged over ci/defaults.toml), else `default`."""
        if key in self.data:
            return self.data[key]
        if default is None:
            raise KeyError(f"{self._key(key)} is not in ci/defaults.toml")
        return default

    def text(self, key: str, default: str | None = None) -> str:
        value = self._get(key, default)
        if isinstance(value, (dict, list)):
            raise self._fail(key, "a string", value)
        return str(value)

    def flag(self, key: str, default: bool | None = None) -> bool:
        value = self._get(key, default)
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise self._fail(key, "true or false", value)

    def number(
        self, key: str, default: float | None = None, *, minimum: float | None = None
    ) -> float:
        value = self._get(key, default)
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or number != number:  # NaN
            raise self._fail(key, "a number", value)
        if minimum is not None and number < minimum:
            raise self._fail(key, f"a number >= {minimum:g}", value)
        return number

    def whole(self, key: str, default: int | None = None, *, minimum: int | None = None) -> int:
        value = self._get(key, default)
        try:
            number = int(str(value).strip()) if not isinstance(value, (bool, float)) else None
        except ValueError:
            number = None
        if number is None:
            raise self._fail(key, "a whole number", value)
        if minimum is not None and number < minimum:
            raise self._fail(key, f"a whole number >= {minimum}", value)
        return number

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.text(key, default).strip().lower()
        if value not in choices:
            raise self._fail(key, "one of " + ", ".join(choices), value)
        return value

    def strings(self, key: str, default: tuple[str, ...] | None = None) -> list[str]:
        """A list of strings; from the environment, comma-separated."""
        value = self._get(key, None if default is None else list(default))
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "a list of strings", value)
        return list(value)

    def path(
        self, key: str, default: str | None = None, *, base: Path | None = None
    ) -> Path | None:
        """A path, relative to `base` (default: the project root); None when empty."""
        text = self.text(key, default).strip()
        if not text:
            return None
        path = Path(os.path.expanduser(text))
        return path if path.is_absolute() else (base or self.root) / path


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline is configured with, read once."""

    root: Path
    data: Mapping[str, Any] = field(repr=False)  # may hold secrets (a history URL)
    env: Mapping[str, str] = field(repr=False)
    # The file that configured the workspace (None: only the pipeline's defaults).
    found: workspace_config.Found = field(
        default_factory=lambda: workspace_config.Found({}), repr=False
    )

    @property
    def source(self) -> Path:
        """The file that configured this run: the workspace's own, else ci/defaults.toml."""
        return self.found.path or DEFAULTS_FILE

    def source_label(self) -> str:
        """Which file (and table) configured the run, for the gate table."""
        if self.found.path is None:
            return f"{DEFAULTS_FILE} (the pipeline's defaults; the workspace configures nothing)"
        return self.found.label

    def config_path(self, section: Section, key: str) -> Path | None:
        """A path setting of the workspace's configuration, relative to the file that set
        it (the environment's: to the project root). A default is looked for in the
        workspace's own folder (as cargo tools look for theirs); None when it is not
        there, so the caller uses the pipeline's own default."""
        parts = [*filter(None, section.name.split(".")), key]
        env_name = ENV_PREFIX + "__".join(parts).upper()
        node: Any = self.found.table
        for part in parts:
            node = node.get(part) if isinstance(node, Mapping) else None
        if env_name in self.env:
            return section.path(key)
        if node is not None and self.found.path is not None:
            return section.path(key, base=self.found.path.parent)
        base = self.found.path.parent if self.found.path is not None else self.workspace
        path = section.path(key, base=base)
        return path if path is not None and path.exists() else None

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
        path = self.top.path("workspace")
        assert path is not None
        return path.resolve()

    @property
    def out_dir(self) -> Path:
        """Where stage results, logs and artifacts are written."""
        path = self.top.path("output_dir", base=self.workspace)
        assert path is not None
        return path

    @property
    def cargo_target_dir(self) -> Path | None:
        """A shared CARGO_TARGET_DIR, or None for cargo's default."""
        return self.top.path("cargo_target_dir")

    @property
    def secret_env(self) -> list[str]:
        """Extra environment variable names whose values are secrets."""
        return self.top.strings("secret_env")

    @property
    def parallelism(self) -> int:
        """How many independent stages `invoke ci` runs side by side."""
        return self.top.whole("parallelism", minimum=1)

    def budget(self, stage: str) -> float:
        """The stage's time budget in seconds."""
        return self.section("budgets").number(stage, minimum=1)

    def timeout(self, stage: str) -> float:
        """The stage's hard limit in seconds: `timeouts.<stage>`, or budget x timeout_factor.
        Past it the stage is stopped, torn down and reported as timed out."""
        explicit = self.section("timeouts").number(stage, 0, minimum=0)
        if explicit:
            return explicit
        return self.budget(stage) * self.top.number("timeout_factor", minimum=1)

    @property
    def cancel_grace(self) -> float:
        """Seconds a cancelled stage gets to tear down before it is killed."""
        return self.top.number("cancel_grace", minimum=1)

    def require_workspace(self) -> Path:
        """The workspace, checked to be a Cargo project; raises WorkspaceError otherwise."""
        ws = self.workspace
        if not ws.is_dir():
            raise WorkspaceError(
                f"workspace {ws} does not exist (set [tool.pipeline] workspace or CIPIPE_WORKSPACE)"
            )
        if not (ws / "Cargo.toml").is_file():
            raise WorkspaceError(
                f"{ws} is not a Cargo workspace: no Cargo.toml "
                "(set [tool.pipeline] workspace or CIPIPE_WORKSPACE)"
            )
        return ws


def load(root: Path, env: Mapping[str, str] | None = None) -> Settings:
    """The schema's defaults, overridden by the workspace's own configuration, overridden
    by `CIPIPE_*` environment variables. Unknown keys are a ConfigError.

    The workspace's configuration is `[tool.pipeline]` of `root/pyproject.toml` when that
    table configures the workspace the run acts on (its `workspace` key, not redirected
    by $CIPIPE_WORKSPACE). A run pointed at another workspace reads that workspace's
    own file (workspace_config.of_workspace): the project's table names its own paths
    (critical files, binary, budgets) and must not leak into another workspace."""
    env = dict(os.environ if env is None else env)
    root = root.resolve()
    known = schema()
    host = workspace_config.pyproject_table(root / "pyproject.toml")
    _check_keys(known, host.table, host.label)
    hosted = _merge(_deep_copy(known), host.table)
    hosted_ws = _workspace_of(hosted, root)
    target = _workspace_of(merge_env(hosted, env, known), root)
    if target == hosted_ws and host.path is not None:
        found = host
    else:
        found = workspace_config.of_workspace(target)
        _check_keys(known, found.table, found.label)
    merged = merge_env(_merge(_deep_copy(known), found.table), env, known)
    merged["workspace"] = str(target)
    return Settings(root=root, data=merged, env=env, found=found)


def _workspace_of(data: Mapping[str, Any], root: Path) -> Path:
    path = Section("", data, root).path("workspace")
    return (path or root).resolve()
