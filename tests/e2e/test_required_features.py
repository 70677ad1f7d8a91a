"""Test targets behind `required-features` are treated as `cargo test` treats them:
skipped (and listed with the features they need) unless those features are on, built
and run with them when the workspace's configuration turns them on. Never a red gate."""

from __future__ import annotations

import json
import re
from pathlib import Path

from helpers import run_nox

FIXTURE = "required_features"
NO_SERVICES = {"CIPIPE_INTEGRATION__SERVICES": ""}  # the fixture's tests need none


def result(env: dict[str, str], stage: str) -> dict:
    return json.loads((Path(env["CIPIPE_OUTPUT_DIR"]) / f"{stage}.json").read_text())


def checks(data: dict) -> dict[str, dict]:
    return {c["name"]: c for c in data["checks"]}


def test_integration_skips_a_target_whose_features_are_off(fixture_env) -> None:
    env = fixture_env(FIXTURE, **NO_SERVICES)
    r = run_nox(["integration"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    data = result(env, "integration")
    assert data["status"] == "passed", data
    assert "tests: 1 passed, 0 failed" in data["summary"]
    gated = checks(data)["feature-gated"]
    assert gated["status"] == "skipped"
    assert "gated (required_features) needs feature extra" in gated["summary"]


def test_integration_runs_it_with_all_features_configured(fixture_env) -> None:
    env = fixture_env(FIXTURE, CIPIPE_CARGO__ALL_FEATURES="true", **NO_SERVICES)
    r = run_nox(["integration"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    data = result(env, "integration")
    assert "tests: 2 passed, 0 failed" in data["summary"], data
    assert "feature-gated" not in checks(data)


def test_integration_runs_it_with_the_feature_named(fixture_env) -> None:
    env = fixture_env(FIXTURE, CIPIPE_CARGO__FEATURES="extra", **NO_SERVICES)
    r = run_nox(["integration", "unit", "lint"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tests: 2 passed, 0 failed" in result(env, "integration")["summary"]


TARPAULIN = {"CIPIPE_COVERAGE__ENGINE": "tarpaulin"}


def test_coverage_lists_the_skipped_target_and_runs_it_with_its_features(fixture_env) -> None:
    # The tarpaulin engine. Under llvm-cov, `cargo llvm-cov report` (which takes no feature
    # flags) does not see a feature-gated test binary, so the lines only it reaches read as
    # unhit: an open defect of the llvm-cov engine, written up for the next session.
    env = fixture_env(FIXTURE, CIPIPE_COVERAGE__MIN_TOTAL="0", **NO_SERVICES, **TARPAULIN)
    r = run_nox(["coverage"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    data = result(env, "coverage")
    assert (
        "gated (required_features) needs feature extra" in checks(data)["feature-gated"]["summary"]
    )
    env = fixture_env(
        FIXTURE,
        CIPIPE_COVERAGE__MIN_TOTAL="0",
        CIPIPE_CARGO__ALL_FEATURES="true",
        **NO_SERVICES,
        **TARPAULIN,
    )
    r = run_nox(["coverage"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    data = result(env, "coverage")
    assert "feature-gated" not in checks(data)
    # `triple` exists only with the feature: measured, so the gated target ran.
    cobertura = Path(data["artifacts"]["cobertura"]).read_text()
    assert re.search(r'<line number="10" hits="[1-9]', cobertura), cobertura


def test_a_proc_macro_crate_s_unit_tests_run_as_cargo_runs_them(fixture_env) -> None:
    # Its test binary needs the toolchain's libstd-*.so at run time: cargo puts the
    # sysroot's library folder on the loader path, and so must the libtest runner.
    env = fixture_env("proc_macro", CIPIPE_UNIT__RUNNER="libtest")
    r = run_nox(["unit"], env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tests: 1 passed, 0 failed" in result(env, "unit")["summary"]
