"""The reference trading workspace through the real pipeline (`invoke ci`): green against
the real RustSec database; and on a machine that cannot fetch any advisory database, the
tests still run to the end while security says "not checked" with the fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers import run_invoke, shared_target_dir

from .leftovers import assert_nothing_left

STAGES = ("lint", "security", "unit", "integration", "bench", "coverage")


def reference_env(out: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIPIPE_")}
    env.pop("GITHUB_ACTIONS", None)
    env.update(
        CIPIPE_OUTPUT_DIR=str(out),
        CIPIPE_CARGO_TARGET_DIR=shared_target_dir(),
        CIPIPE_HISTORY__PATH=str(out.parent / "history.sqlite3"),
        CIPIPE_CACHE__ENABLED="false",
        **extra,
    )
    return env


def row(output: str, stage: str) -> str:
    table = output[output.index("stage ") :]
    return next(line for line in table.splitlines() if line.startswith(stage + " "))


def test_invoke_ci_is_green_with_the_real_advisory_database(
    tmp_path: Path, real_advisory_db: Path
) -> None:
    out = tmp_path / "out"
    env = reference_env(
        out,
        CIPIPE_SECURITY__ADVISORY_DB=str(real_advisory_db),
        CIPIPE_SECURITY__MAX_AGE_DAYS="36500",  # the snapshot ages; age is unit-tested
    )
    r = run_invoke(["ci"], env, timeout=1800)
    output = r.stdout + r.stderr
    assert r.returncode == 0, output
    for stage in STAGES:
        assert " PASS " in row(output, stage), row(output, stage)
        assert json.loads((out / f"{stage}.json").read_text())["status"] == "passed"
    unit = json.loads((out / "unit.json").read_text())
    assert "doctests: 0 passed" not in unit["summary"]  # the library's doc tests ran
    assert (out / "summary.md").read_text().startswith("## Pipeline: passed")
    assert (out / "security" / "security.sarif").is_file()
    assert_nothing_left(out / "integration.log")
    assert_nothing_left(out / "coverage.log")
    coverage = json.loads((out / "coverage.json").read_text())
    checks = {c["name"]: c for c in coverage["checks"]}
    assert checks["critical"]["summary"] == "3 critical files at 100%"
    assert float(coverage["outputs"]["total"]) >= 80
    assert "### Coverage: " in (out / "summary.md").read_text()
    # the benchmarks ran alone, were recorded, and their table is in the summary
    bench = json.loads((out / "bench.json").read_text())
    assert "book/insert_into_deep_book" in (out / "bench" / "bench.md").read_text()
    assert (
        "| benchmark | base | head | change | confidence | verdict |"
        in (out / "summary.md").read_text()
    )
    assert bench["artifacts"]["comparison"].endswith("comparison.json")


def test_without_any_advisory_database_the_tests_still_run_and_security_says_why(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    env = reference_env(
        out,
        # no copy cached by cargo-audit / cargo-deny on an earlier run either
        CIPIPE_SECURITY__CARGO_HOME=str(tmp_path / "no-copies"),
        CIPIPE_SECURITY__FETCH_TIMEOUT="10",
        # GitHub unreachable, as on this machine, also where it is reachable:
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0="url.http://127.0.0.1:9/.insteadOf",
        GIT_CONFIG_VALUE_0="https://github.com/",
    )
    r = run_invoke(["ci"], env, timeout=1800)
    output = r.stdout + r.stderr
    assert r.returncode == 1, output
    status = {s: json.loads((out / f"{s}.json").read_text())["status"] for s in STAGES}
    assert status == {
        "lint": "passed",
        "security": "error",
        "unit": "passed",
        "integration": "passed",
        "coverage": "passed",
        "bench": "passed",
    }
    assert " ERROR " in row(output, "security")
    security = json.loads((out / "security.json").read_text())
    [advisories] = [c for c in security["checks"] if c["name"] == "advisories"]
    assert advisories["summary"].startswith("not checked: no advisory database: cannot fetch")
    assert "CIPIPE_SECURITY__ADVISORY_DB=" in advisories["summary"]
    # licences, bans, sources and secrets were still checked
    assert {c["name"]: c["status"] for c in security["checks"]} == {
        "advisories": "error",
        "policy": "passed",
        "secrets": "passed",
    }
    assert "pipeline failed: security" in output
