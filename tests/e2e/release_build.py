"""The release build the slow tests share: one real `invoke release` of trading-system
per session (slow on 2 shared cores), in a temporary clone whose tag points at HEAD.
The `clone` and `built` fixtures (tests/e2e/conftest.py) use it; the release tests and
the deploy tests (which promote its binary into an image) both take `built`."""

from __future__ import annotations

import json
import os
import time
import tomllib
from pathlib import Path

from helpers import ROOT, git, run_invoke, shared_target_dir

VERSION = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]
TAG = f"v{VERSION}"


def release_env(workspace: Path, out: Path, **extra: str) -> dict[str, str]:
    """The environment of a developer (or CI job) running `invoke release` on `workspace`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CIPIPE_", "GITHUB_")) and k != "SOURCE_DATE_EPOCH"
    }
    env.update(
        CIPIPE_WORKSPACE=str(workspace),
        CIPIPE_OUTPUT_DIR=str(out),
        CIPIPE_CARGO_TARGET_DIR=shared_target_dir(),
        CIPIPE_RELEASE__BACKOFF="0.05",
    )
    env.update(extra)
    return env


def make_clone(path: Path) -> Path:
    """A clone of this repository with the release tag on HEAD: a clean, tagged tree."""
    git(ROOT, "clone", "-q", str(ROOT), str(path))
    git(path, "tag", TAG)
    return path


def build(clone: Path, out: Path) -> dict:
    """`invoke release --tag <TAG> --no-publish` in `clone`; the output dir, the manifest
    and the run's output."""
    start = time.monotonic()
    r = run_invoke(["release", "--tag", TAG, "--no-publish"], release_env(clone, out), 1800)
    assert r.returncode == 0, r.stdout + r.stderr
    manifest = json.loads((out / "release" / "manifest.json").read_text())
    return {
        "out": out,
        "manifest": manifest,
        "output": r.stdout + r.stderr,
        "seconds": time.monotonic() - start,
    }
