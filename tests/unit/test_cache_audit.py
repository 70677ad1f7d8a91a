"""The cache audit's pure parts: which entries are sampled, how a replayed verdict is
compared with a real one, what the audit reports, and that a poisoned key is never
replayed nor stored again."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from ci.cache import audit
from ci.cache.store import CacheStore, Entry
from ci.errors import ConfigError
from ci.result import CheckResult, Finding, StageResult, Status


def unit(status: Status = Status.PASSED, passed: int = 3, failed: int = 0) -> StageResult:
    checks = [CheckResult("tests", status, 1.0, f"{passed} passed, {failed} failed, 0 ignored")]
    findings = [Finding("tests", f"test t{i} failed") for i in range(failed)]
    return StageResult("unit", status, 20.0, 120, "tests", findings=findings, checks=checks)


def test_sample_takes_the_share_at_random_and_at_least_one() -> None:
    names = ["lint", "security", "unit", "integration"]
    assert audit.sample(names, 1.0) == names
    picked = audit.sample(names, 0.5, random.Random(7))
    assert len(picked) == 2 and picked == [n for n in names if n in picked]  # plan order
    assert len(audit.sample(names, 0.01)) == 1
    assert audit.sample([], 1.0) == []
    seen = {tuple(audit.sample(names, 0.25, random.Random(seed))) for seed in range(40)}
    assert len(seen) == 4  # over many runs, every entry gets its turn
    for bad in (0.0, -1.0, 1.5):
        with pytest.raises(ConfigError, match="not a fraction"):
            audit.sample(names, bad)


def test_compare_status_test_counts_and_findings() -> None:
    assert audit.compare(unit(), unit()) == []
    assert audit.counts(unit(passed=5)) == {
        "findings": 0,
        "tests passed": 5,
        "tests failed": 0,
        "tests ignored": 0,
    }
    diffs = audit.compare(unit(), unit(Status.FAILED, passed=2, failed=1))
    assert diffs == [
        "status passed -> failed",
        "errors 0 -> 1",
        "findings 0 -> 1",
        "tests failed 0 -> 1",
        "tests passed 3 -> 2",
    ]
    # same status, a test fewer: a disagreement too (a test the key did not see)
    assert audit.compare(unit(passed=3), unit(passed=2)) == ["tests passed 3 -> 2"]


def stored(tmp_path: Path, result: StageResult) -> tuple[CacheStore, Entry]:
    store = CacheStore(tmp_path / "cache")
    inputs = {"workspace": "ab" * 16, "toolchain": "cd" * 16}
    store.save("unit", "k1", result.to_dict(), inputs, {}, run_id="r1", commit="c")
    store.save("unit@core", "p1", result.to_dict(), inputs, {}, run_id="r1", commit="c")
    entry = store.lookup("unit", "k1")
    assert entry is not None
    return store, entry


def test_a_disagreement_fails_names_stage_and_inputs_and_poisons_the_entry(
    tmp_path: Path,
) -> None:
    store, entry = stored(tmp_path, unit())
    real = unit(Status.FAILED, passed=2, failed=1)
    [item] = audit.judge({"unit": entry}, [real])
    assert item.concluded and not item.agrees
    audit.poison(store, item)
    result = audit.conclude([item], 4, tmp_path / "out")
    assert result.status is Status.FAILED and result.stage == "cache-audit"
    assert result.summary == "audited 1 of 4 replayable entries: 0 agreed, 1 disagreed"
    assert result.outputs == {"replayable": "4", "audited": "1", "disagreed": "1"}
    [finding] = result.findings
    assert finding.message.startswith("unit: the replayed verdict was passed")
    assert (
        "status passed -> failed" in finding.message and "workspace=abababababab" in finding.message
    )
    details = json.loads(Path(result.artifacts["details"]).read_text())
    assert (details["audited"], details["disagreed"]) == (1, 1)
    assert details["entries"][0]["inputs"]["toolchain"] == "cd" * 16
    # poisoned: never replayed, never stored again under that key; packages forgotten
    assert store.lookup("unit", "k1") is None
    assert store.save("unit", "k1", unit().to_dict(), {}, {}, run_id="r2", commit="c") is None
    assert store.lookup("unit", "k1") is None
    assert "the cache audit found status passed -> failed" in store.poisoned("unit", "k1")
    assert store.lookup("unit@core", "p1") is None
    assert store.save("unit", "k2", unit().to_dict(), {}, {}, run_id="r2", commit="c")


def test_agreement_and_runs_that_reached_no_verdict(tmp_path: Path) -> None:
    store, entry = stored(tmp_path, unit())
    stopped = [
        StageResult(name, status, 0, 60, "no verdict")
        for name, status in (("lint", Status.BLOCKED), ("security", Status.TIMEOUT))
    ]
    items = audit.judge({"unit": entry, "lint": entry, "security": entry}, [unit(), *stopped])
    result = audit.conclude(items, 3, tmp_path / "out")
    assert result.status is Status.PASSED and not result.findings
    assert result.summary == (
        "audited 1 of 3 replayable entries: 1 agreed, 0 disagreed (2 not concluded: lint, security)"
    )
    # an error is a verdict the replay hid (a tool or service it needs is gone)
    [errored] = audit.judge({"unit": entry}, [StageResult("unit", Status.ERROR, 0, 60)])
    assert errored.concluded and "status passed -> error" in errored.diffs
    nothing = audit.conclude([], 0, tmp_path / "out")
    assert nothing.status is Status.SKIPPED and nothing.summary.startswith("nothing to audit")
    assert store.lookup("unit", "k1") is not None
