#!/usr/bin/env python3
"""Benchmarks of `invoke release` (numbers, not pass/fail):

1. the release build: warm (shared target dir), and with --cold in an empty target dir;
2. binary and archive sizes, packaging time;
3. publishing to the local GitHub API server (tests/fakes/github_api.py): first publish
   (create + upload) and an idempotent re-run.

Runs `--allow-dirty` on this checkout (no tag needed; nothing is pushed anywhere).

Usage: python3 scripts/bench_release.py [--cold] [--workspace PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakes.github_api import FakeGitHub  # noqa: E402

TOKEN = "bench-token-0123456789"


def release(tag: str, env: dict[str, str], *extra: str) -> tuple[float, dict[str, Any]]:
    """Run `invoke release`; (wall seconds, manifest)."""
    cmd = [sys.executable, "-m", "invoke", "release", "--tag", tag, "--allow-dirty", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"invoke release failed:\n{proc.stdout}{proc.stderr}")
    manifest = json.loads(
        (Path(env["CIPIPE_OUTPUT_DIR"]) / "release" / "manifest.json").read_text()
    )
    return wall, manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="also build in an empty target dir")
    parser.add_argument("--workspace", type=Path, default=ROOT)
    args = parser.parse_args()
    version = tomllib.loads((args.workspace / "Cargo.toml").read_text())
    tag = "v" + version["workspace"]["package"]["version"]
    out = tempfile.mkdtemp(prefix="bench-release-")
    shared = os.environ.get("CIPIPE_CARGO_TARGET_DIR") or str(ROOT / "target")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIPIPE_", "GITHUB_"))}
    env.update(CIPIPE_WORKSPACE=str(args.workspace), CIPIPE_OUTPUT_DIR=out)
    if args.cold:
        cold_dir = tempfile.mkdtemp(prefix="bench-release-target-")
        wall, manifest = release(tag, {**env, "CIPIPE_CARGO_TARGET_DIR": cold_dir}, "--no-publish")
        print(f"release build, cold (empty target dir): {manifest['timings']['build']:7.1f} s")
    env["CIPIPE_CARGO_TARGET_DIR"] = shared
    release(tag, env, "--no-publish")  # make sure the shared target dir is warm
    wall, manifest = release(tag, env, "--no-publish")
    print(f"release build, warm (nothing changed):  {manifest['timings']['build']:7.2f} s")
    print(f"invoke release --no-publish, warm:      {wall:7.2f} s wall")
    print(f"packaging (tar.gz, gzip -9):            {manifest['timings']['package']:7.2f} s")
    print(f"binary (stripped):                      {manifest['binary']['size']:9,d} bytes")
    for archive in manifest["archives"]:
        print(f"{archive['name']}: {archive['size']:,d} bytes")
    with FakeGitHub(TOKEN, ("bench/trading",)) as api:
        github = {
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_REPOSITORY": "bench/trading",
            "CIPIPE_RELEASE__API_URL": api.url,
        }
        _, first = release(tag, {**env, **github})
        _, second = release(tag, {**env, **github})
        print(f"publish to the local API, first run:    {first['timings']['publish']:7.3f} s")
        print(f"publish again (nothing to change):      {second['timings']['publish']:7.3f} s")
        print(f"API requests over both runs:            {len(api.log):7d}")


if __name__ == "__main__":
    main()
