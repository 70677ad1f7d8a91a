"""A GitHub Actions workflow file, parsed: what the workflow checks (ci/workflows.py) and
the secrets check (ci/workflow_secrets.py) both read, so neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.errors import ConfigError


@dataclass(frozen=True)
class Workflow:
    """One workflow file, parsed."""

    path: Path
    doc: dict[str, Any]


def load(path: Path) -> Workflow:
    """Parse a workflow file; ConfigError with one line when it is not YAML. PyYAML reads
    the bare key `on` as the boolean true (YAML 1.1): it is put back as "on"."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        where = getattr(err, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"{path}: not a readable YAML workflow{at}: {err}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a workflow must be a YAML mapping")
    if True in doc:
        doc["on"] = doc.pop(True)
    return Workflow(path, doc)


def load_all(folder: Path) -> list[Workflow]:
    """Every `*.yml`/`*.yaml` workflow in `folder`, sorted by name."""
    files = sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])
    return [load(f) for f in files]
