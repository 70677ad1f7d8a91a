"""The release manifest: `<output_dir>/release/manifest.json`, what was built and published.

Build once, promote: the deploy flows read this file to put the exact binary that was
released (checked by its sha256) into the staging image instead of building again. Paths
are relative to the manifest's folder, so the folder can move between jobs as an artifact.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ci.result import atomic_write

MANIFEST_SCHEMA = 1
MANIFEST_NAME = "manifest.json"


def write_manifest(path: Path, manifest: Mapping[str, Any]) -> Path:
    """Write the manifest atomically (readers never see half a file)."""
    atomic_write(path, json.dumps(dict(manifest), indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest at `path` (json.JSONDecodeError / OSError when unreadable)."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def binary_of(manifest: Mapping[str, Any], manifest_path: Path) -> Path:
    """The absolute path of the released binary a manifest names."""
    return manifest_path.parent / str(manifest["binary"]["path"])


def record_release(manifest: Mapping[str, Any]) -> None:
    """Record a finished release (version, commit, target, binary and archive digests,
    published release) in the pipeline's history store.

    Integration point for ci.history, which is being built separately: until the lead
    connects it here, this records nothing and the manifest file is the only record.
    Called once per release run, after the manifest is final (published or not)."""
    del manifest
