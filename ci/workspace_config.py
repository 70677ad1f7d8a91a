"""Where a workspace's pipeline configuration lives, the way cargo tools look for theirs:
`[tool.pipeline]` in the workspace's own pyproject.toml, else `[workspace.metadata.pipeline]`
or `[package.metadata.pipeline]` in its Cargo.toml. Settings that name a workspace's paths
(critical files, the binary, budgets measured on it) must come from that workspace, never
from the project the pipeline happens to be defined in."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.errors import ConfigError


@dataclass(frozen=True)
class Found:
    """A configuration table and the file (and table name) it came from; `path` is None
    when nothing configures the workspace (the pipeline's defaults apply)."""

    table: Mapping[str, Any]
    path: Path | None = None
    where: str = ""

    @property
    def label(self) -> str:
        """`/ws/Cargo.toml [package.metadata.pipeline]`, for messages and the gate table."""
        return f"{self.path} [{self.where}]" if self.path is not None else "defaults"


def read_toml(path: Path) -> dict[str, Any] | None:
    """The parsed file, None when it does not exist; ConfigError in one line otherwise."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None


def _table(doc: Mapping[str, Any], keys: tuple[str, ...], path: Path) -> Mapping[str, Any] | None:
    node: Any = doc
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    if not isinstance(node, Mapping):
        raise ConfigError(f"{path}: [{'.'.join(keys)}] must be a table")
    return node


def pyproject_table(path: Path) -> Found:
    """`[tool.pipeline]` of a pyproject.toml (empty Found when absent)."""
    doc = read_toml(path)
    table = _table(doc, ("tool", "pipeline"), path) if doc is not None else None
    return Found(table, path, "tool.pipeline") if table is not None else Found({})


def of_workspace(workspace: Path) -> Found:
    """The workspace's own configuration. Two places configuring one workspace is an
    error: one of them would be silently ignored."""
    found = [pyproject_table(workspace / "pyproject.toml")]
    manifest = workspace / "Cargo.toml"
    doc = read_toml(manifest) or {}
    for keys in (("workspace", "metadata", "pipeline"), ("package", "metadata", "pipeline")):
        table = _table(doc, keys, manifest)
        if table is not None:
            found.append(Found(table, manifest, ".".join(keys)))
    found = [f for f in found if f.path is not None]
    if len(found) > 1:
        raise ConfigError(
            f"the pipeline is configured twice for {workspace}: "
            f"{' and '.join(f.label for f in found)}; keep one"
        )
    return found[0] if found else Found({})
