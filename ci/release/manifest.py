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
from ci.settings import Settings

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


def record_release(settings: Settings, manifest: Mapping[str, Any]) -> str:
    """Record a finished release (version, tag, target, binary digest, archives, whether
    it was published) in the history store, for the deploy flows and the metrics.
    Returns a one-line outcome; a history that cannot be written is a warning line, never
    a failed release (the manifest file is the release's own record)."""
    from ci.errors import HistoryError
    from ci.history import Measurement, current_context, open_store

    info = current_context(
        settings,
        "release",
        tool_versions=dict(manifest.get("tools") or {}),
        meta={
            "version": str(manifest.get("version", "")),
            "tag": str(manifest.get("tag", "")),
            "target": str(manifest.get("target", "")),
            "binary_sha256": str((manifest.get("binary") or {}).get("sha256", "")),
            "published": bool(manifest.get("published")),
        },
    )
    sizes = [
        Measurement("release.archive", str(a["name"]), float(a.get("size", 0)), "bytes")
        for a in manifest.get("archives") or []
    ]
    try:
        with open_store(settings) as store:
            run = store.record(info.finished("passed"), sizes)
    except HistoryError as err:
        return f"warning: release not recorded in the history store: {err}"
    return f"release recorded in the history store (run {run[:12]})"
