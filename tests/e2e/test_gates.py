"""Each gate fixture turns its stage red with the cause named; the clean fixture is green."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import run_nox

from .leftovers import assert_nothing_left


def result(env: dict[str, str], stage: str) -> dict:
    return json.loads((Path(env["CIPIPE_OUTPUT_DIR"]) / f"{stage}.json").read_text())


def test_clean_fixture_passes_lint_unit_integration(fixture_env) -> None:
    env = fixture_env("clean")
    r = run_nox(["lint", "unit", "integration"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    for stage in ("lint", "unit", "integration"):
        data = result(env, stage)
        assert data["status"] == "passed", data
        assert data["findings"] == []
        assert data["budget_s"] > 0 and data["duration_s"] > 0
    unit = result(env, "unit")
    assert "3 passed" not in unit["summary"]  # lib + bin tests: exactly two
    assert "tests: 2 passed, 0 failed" in unit["summary"]
    assert "doctests: 1 passed" in unit["summary"]
    assert Path(unit["artifacts"]["junit"]).is_file()
    integ = result(env, "integration")
    assert "tests: 4 passed, 0 failed" in integ["summary"]
    assert "services backend: " in Path(integ["artifacts"]["log"]).read_text()
    assert_nothing_left(Path(integ["artifacts"]["log"]))


def test_format_fault_fails_lint_naming_file(fixture_env) -> None:
    env = fixture_env("fmt_fault")
    r = run_nox(["lint"], env)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "src/lib.rs:1: not formatted" in out
    data = result(env, "lint")
    assert data["status"] == "failed"
    assert [(f["check"], f["file"]) for f in data["findings"]] == [("fmt", "src/lib.rs")]
    assert {c["name"]: c["status"] for c in data["checks"]} == {"fmt": "failed", "clippy": "passed"}


def test_clippy_fault_fails_lint_naming_lint(fixture_env) -> None:
    env = fixture_env("clippy_fault")
    r = run_nox(["lint"], env)
    assert r.returncode != 0
    assert "clippy::needless_return" in r.stdout + r.stderr
    data = result(env, "lint")
    assert [(f["rule"], f["file"], f["line"]) for f in data["findings"]] == [
        ("clippy::needless_return", "src/lib.rs", 3)
    ]


def test_failing_unit_test_fails_unit_naming_test(fixture_env) -> None:
    env = fixture_env("test_fault")
    r = run_nox(["unit"], env)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "tests::planted_failure failed" in out
    assert "planted fault: 2 + 2 is not 5" in out
    data = result(env, "unit")
    assert data["status"] == "failed"
    assert len(data["findings"]) == 1
    junit = Path(data["artifacts"]["junit"]).read_text()
    assert 'failures="1"' in junit


def test_failing_integration_test_fails_and_leaves_nothing(fixture_env) -> None:
    env = fixture_env("integration_fault")
    r = run_nox(["integration"], env)
    assert r.returncode != 0
    assert "planted_integration_failure failed" in r.stdout + r.stderr
    data = result(env, "integration")
    assert data["status"] == "failed"
    assert_nothing_left(Path(data["artifacts"]["log"]))


def test_posargs_pass_through_to_cargo(fixture_env) -> None:
    env = fixture_env("test_fault")
    r = run_nox(["unit"], env, "--", "adds_correctly")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tests: 1 passed, 0 failed" in result(env, "unit")["summary"]
