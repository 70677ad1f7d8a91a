"""`invoke ci --audit-cache`: the stages that would be replayed run for real with the cache
off and are compared with their entries. An entry whose key missed an input (a test that
reads a file outside the workspace through an absolute path) is caught, fails the run,
names the stage and its inputs, and is never replayed again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import run_invoke

from .test_stage_cache import project  # noqa: F401 (the fixture)

# the fixture crate's test reads this file (tests/fixtures/undeclared_input/src/lib.rs)
OUTSIDE = Path("/tmp/cipipe-undeclared-input/verdict.txt")


@pytest.fixture
def outside():
    OUTSIDE.parent.mkdir(exist_ok=True)
    yield OUTSIDE
    shutil.rmtree(OUTSIDE.parent, ignore_errors=True)


def ci(env: dict[str, str], *args: str) -> tuple[int, str, dict[str, dict]]:
    r = run_invoke(["ci", "--stages", "unit", *args], env)
    out = Path(env["CIPIPE_OUTPUT_DIR"])
    results = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    return r.returncode, r.stdout + r.stderr, results


def test_the_audit_catches_an_input_outside_the_workspace(project, outside: Path) -> None:  # noqa: F811
    _, env = project("undeclared_input")
    outside.write_text("pass\n")
    code, text, res = ci(env)
    assert code == 0 and not res["unit"]["cached"], text[-3000:]
    code, text, res = ci(env)
    assert code == 0 and res["unit"]["cached"], text[-3000:]  # replayed

    # the reference case: the audit agrees with every entry
    code, text, res = ci(env, "--audit-cache")
    assert code == 0, text[-3000:]
    audit = res["cache-audit"]
    assert audit["status"] == "passed"
    assert audit["summary"] == "audited 1 of 1 replayable entries: 1 agreed, 0 disagreed"
    assert (audit["outputs"]["audited"], audit["outputs"]["disagreed"]) == ("1", "0")
    assert not res["unit"]["cached"]  # it ran for real
    assert "cache-audit" in text and "1 agreed, 0 disagreed" in text  # the gate table

    # the undeclared input changes: the key cannot see it, so a plain run lies...
    outside.write_text("fail\n")
    code, text, res = ci(env)
    assert code == 0 and res["unit"]["cached"], text[-3000:]
    # ...and the audit catches the lie, names the stage and its inputs, poisons it
    code, text, res = ci(env, "--audit-cache")
    assert code == 1, text[-3000:]
    assert res["unit"]["status"] == "failed" and not res["unit"]["cached"]
    audit = res["cache-audit"]
    assert audit["status"] == "failed" and audit["outputs"]["disagreed"] == "1"
    [finding] = audit["findings"]
    assert finding["message"].startswith("unit: the replayed verdict was passed")
    assert "status passed -> failed" in finding["message"]
    assert "its inputs: " in finding["message"] and "workspace=" in finding["message"]
    summary = (Path(env["CIPIPE_OUTPUT_DIR"]) / "summary.md").read_text()
    assert "cache-audit" in summary and "0 agreed, 1 disagreed" in summary
    details = json.loads(Path(audit["artifacts"]["details"]).read_text())
    assert details["entries"][0]["stage"] == "unit" and details["entries"][0]["inputs"]

    # poisoned: even with the file back to "pass", that key is never replayed again
    outside.write_text("pass\n")
    for _ in range(2):
        code, text, res = ci(env)
        assert code == 0 and not res["unit"]["cached"], text[-3000:]
    assert (
        "never replayed: the cache audit found status passed -> failed"
        in (Path(env["CIPIPE_OUTPUT_DIR"]) / "unit.log").read_text()
    )


def test_on_the_reference_workspace_every_audited_entry_agrees(
    tmp_path: Path, real_advisory_db: Path
) -> None:
    from .test_reference import reference_env

    stages = "lint,security,unit,integration"  # what the nightly audits
    env = reference_env(
        tmp_path / "out",
        CIPIPE_SECURITY__ADVISORY_DB=str(real_advisory_db),
        CIPIPE_SECURITY__MAX_AGE_DAYS="36500",  # the snapshot ages; age is unit-tested
        CIPIPE_CACHE__DIR=str(tmp_path / "cache"),
        # what this test checks is the audit: a cold build on a busy machine may take
        # longer than a stage's hard limit (lint's is 3 minutes)
        **{f"CIPIPE_TIMEOUTS__{s.upper()}": "1800" for s in stages.split(",")},
    )
    env["CIPIPE_CACHE__ENABLED"] = "true"
    first = run_invoke(["ci", "--stages", stages], env, timeout=1800)
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    r = run_invoke(["ci", "--stages", stages, "--audit-cache"], env, timeout=1800)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    details = json.loads((tmp_path / "out" / "cache-audit" / "audit.json").read_text())
    assert (details["replayable"], details["audited"], details["disagreed"]) == (4, 4, 0)
    assert all(e["agrees"] for e in details["entries"]), details
