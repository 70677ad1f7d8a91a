"""Running the service's suites against a deployment: the e2e stage (`nox -s e2e`) in
its own process and virtualenv, exactly as a developer runs it, its verdict read back
from the stage's result file."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from ci.result import read_result
from ci.runner import Runner

NOXFILE = Path(__file__).resolve().parent.parent / "noxfile.py"


@dataclass(frozen=True)
class SuiteRun:
    """A suite's verdict: passed or not, a one-line summary, the tests counted."""

    passed: bool
    summary: str
    tests: str
    seconds: float


def run_suite(
    runner: Runner,
    out_dir: Path,
    url: str,
    *,
    smoke: bool,
    version: str = "",
    restart: list[str] | None = None,
) -> SuiteRun:
    """`nox -s e2e -- --url URL [--smoke] [--expect-version V] [--restart-cmd CMD]`."""
    args = ["--url", url]
    if smoke:
        args.append("--smoke")
    if version:
        args += ["--expect-version", version]
    if restart:
        args += ["--restart-cmd", shlex.join(restart)]
    cmd = [sys.executable, "-m", "nox", "-f", str(NOXFILE), "-s", "e2e", "--", *args]
    res = runner.run(cmd, cwd=NOXFILE.parent)
    result = read_result(out_dir, "e2e")
    if result is None:
        line = (res.stderr.strip() or res.stdout.strip() or "no output").splitlines()[-1]
        return SuiteRun(False, f"the e2e stage wrote no result: {line}", "", res.duration_s)
    errors = [f.one_line() for f in result.findings if f.severity == "error"]
    summary = result.summary if res.ok else (errors[0] if errors else result.summary)
    if len(errors) > 1:
        summary += f" (+{len(errors) - 1} more)"
    return SuiteRun(
        passed=res.ok and result.status.ok,
        summary=summary,
        tests=result.outputs.get("tests", ""),
        seconds=res.duration_s,
    )
