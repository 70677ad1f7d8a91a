"""The unit stage runs property tests: a planted invariant bug turns it red, the finding
shows proptest's shrunk minimal failing case, and failing cases are persisted and replayed."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from helpers import FIXTURES, run_nox

FIXTURE = FIXTURES / "property_fault"
REGRESSIONS = Path("proptest-regressions") / "lib.txt"
# The smallest crossing case proptest shrinks to from the committed seed: a sell, then a
# buy at the same price that should trade but rests.
SHRUNK = (
    "minimal failing input: orders = [Order { side: Sell, price: 2, qty: 1 }, "
    "Order { side: Buy, price: 2, qty: 1 }]"
)
SEED_LINE = re.compile(r"^cc [0-9a-f]{64} # shrinks to orders = \[Order \{ side: Sell", re.M)


def unit_result(env: dict[str, str]) -> dict:
    return json.loads((Path(env["CIPIPE_OUTPUT_DIR"]) / "unit.json").read_text())


def test_planted_invariant_bug_fails_unit_with_the_shrunk_case(fixture_env) -> None:
    env = fixture_env("property_fault")
    saved = (FIXTURE / REGRESSIONS).read_text()
    r = run_nox(["unit"], env)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    data = unit_result(env)
    assert data["status"] == "failed"
    assert [f["message"] for f in data["findings"]] == [
        "tests::book_is_never_crossed failed: crossed book: best bid 2 >= best ask 2 "
        f"(at src/lib.rs:112); {SHRUNK}"
    ]
    assert SHRUNK in out  # the console line names it too
    assert "tests: 1 passed, 1 failed" in data["summary"]
    # The committed seed was replayed first and failed again: nothing new was saved.
    assert (FIXTURE / REGRESSIONS).read_text() == saved
    assert "proptest: Saving" not in out


def test_a_new_failure_is_persisted_then_replayed(fixture_env, tmp_path: Path) -> None:
    crate = tmp_path / "property_fault"
    shutil.copytree(FIXTURE, crate, ignore=shutil.ignore_patterns("proptest-regressions", "target"))
    env = fixture_env("property_fault", CIPIPE_WORKSPACE=str(crate), PROPTEST_RNG_SEED="2718281828")
    first = run_nox(["unit"], env)
    assert first.returncode != 0, first.stdout + first.stderr
    persisted = (crate / REGRESSIONS).read_text()
    assert len(SEED_LINE.findall(persisted)) == 1, persisted
    assert "proptest: Saving this and future failures in" in first.stdout + first.stderr
    findings = unit_result(env)["findings"]
    assert "minimal failing input: orders = [Order { side: Sell" in findings[0]["message"]
    # Without the fixed seed the next run generates other cases, but replays the saved
    # one first: the same shrunk failure, and nothing new is saved.
    env.pop("PROPTEST_RNG_SEED")
    env["CIPIPE_UNIT__PROPTEST_SEED"] = ""  # the pipeline's own fixed seed off too
    second = run_nox(["unit"], env)
    assert second.returncode != 0
    assert unit_result(env)["findings"] == findings
    assert "proptest: Saving" not in second.stdout + second.stderr
    assert (crate / REGRESSIONS).read_text() == persisted
