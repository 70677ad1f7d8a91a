"""Helpers to run the real entry points from tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def shared_target_dir() -> str:
    """One target dir for all fixture builds (tiny crates with distinct names)."""
    return os.environ.get("PIPELINE_TEST_TARGET_DIR") or str(ROOT / "target" / "fixtures")


def run_nox(sessions: list[str], env: dict[str, str], *args: str, timeout: float = 900):
    """`nox -s <sessions>` from the project root; returns the CompletedProcess."""
    cmd = [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", *sessions, *args]
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def run_invoke(args: list[str], env: dict[str, str], timeout: float = 900):
    """`invoke <args>` from the project root."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
