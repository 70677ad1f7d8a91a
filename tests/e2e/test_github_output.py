"""Under GitHub Actions: `invoke ci` groups every stage's output (passing ones too), repeats
a failed stage's tail outside its group with workflow commands off, and the findings are
`::error` annotations on the right file and line, relative to the repository root."""

from __future__ import annotations

import re

from helpers import ROOT, run_invoke, run_nox


def _github(fixture_env, name: str) -> dict[str, str]:
    return fixture_env(name, GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(ROOT))


def test_invoke_ci_groups_stages_and_annotates_failing_tests(fixture_env) -> None:
    r = run_invoke(["ci", "--stages", "lint,unit"], _github(fixture_env, "test_fault"))
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    assert re.search(r"^::group::lint output \(\d+ lines\): passed in", out, re.M)
    assert re.search(r"^::group::unit output \(\d+ lines\): failed in", out, re.M)
    annotation = (
        "::error file=tests/fixtures/test_fault/src/lib.rs,line=17,"
        "title=unit%3A tests (test-failure)::tests::planted_failure failed: assertion"
    )
    unit_group = out[out.index("::group::unit output") :]
    inside, after = unit_group.split("\n::endgroup::\n", 1)
    assert annotation in inside
    assert "::group::fmt" not in unit_group and "::group::lib and bin tests" not in inside
    assert after.startswith("── last lines of unit ──\n::stop-commands::")
    token = re.search(r"::stop-commands::(\w+)", after)[1]
    assert f"\n::{token}::\n" in after  # commands back on after the tail


def test_a_stage_run_directly_annotates_clippy_findings(fixture_env) -> None:
    r = run_nox(["lint"], _github(fixture_env, "clippy_fault"))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    found = re.findall(
        r"^::error file=([^,]+),line=(\d+),title=lint%3A clippy[^:]*::(.+)$", out, re.M
    )
    assert found, out
    assert all(f == "tests/fixtures/clippy_fault/src/lib.rs" for f, _, _ in found), found
