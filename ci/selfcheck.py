"""`invoke selfcheck` and `invoke workflows.check`: the build definition holds itself to
what it enforces. selfcheck runs ruff (lint and format), mypy, the fast test tier and the
workflow linters; workflows.check checks `.github/workflows/` (ci/workflows.py)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ci import workflows
from ci.registry import STAGES
from ci.runner import Runner

WORKFLOW_LINT_TESTS = "tests/e2e/test_workflow_lint.py"


def commands(python: str = sys.executable) -> list[tuple[str, list[str]]]:
    """(name, argv) of every self-check, in order."""
    return [
        ("ruff", [python, "-m", "ruff", "check", "."]),
        ("ruff format", [python, "-m", "ruff", "format", "--check", "."]),
        ("mypy", [python, "-m", "mypy"]),
        ("fast tests", [python, "-m", "pytest", "-q", "-m", "not e2e"]),
        ("workflow linters", [python, "-m", "pytest", "-q", WORKFLOW_LINT_TESTS]),
    ]


def run_selfcheck(root: Path, say: Callable[[str], None] = print) -> list[str]:
    """Run every check (all of them, so one run shows every problem); the names of the
    ones that failed."""
    failed = []
    with Runner() as runner:
        for name, argv in commands():
            with runner.group(name):
                if not runner.run(argv, cwd=root).ok:
                    failed.append(name)
    say("selfcheck: " + (f"failed: {', '.join(failed)}" if failed else "all checks passed"))
    return failed


def task_collection(root: Path) -> Any:
    """The invoke collection of tasks.py (imported from its file)."""
    spec = importlib.util.spec_from_file_location("cipipe_tasks", root / "tasks.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {root / 'tasks.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ns


def check_workflows(root: Path, folder: Path | None = None) -> list[str]:
    """Every problem of the workflows in `folder` (default `.github/workflows`)."""
    tasks = workflows.invoke_tasks(task_collection(root))
    sessions = [s.name for s in STAGES]
    return workflows.problems(folder or root / ".github" / "workflows", sessions, tasks)
