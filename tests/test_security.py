"""End-to-end tests of the security stage: real cargo-audit, cargo-deny and detect-secrets
on fixture crates, with a local advisory database built here (offline mode; nothing is
fetched)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
from helpers import ADVISORY_ID, ROOT, git
from helpers import FIXTURES as FIXTURES_ROOT

from ci import tools
from ci.errors import ToolMissing
from ci.runner import Runner
from ci.stage import execute

pytestmark = pytest.mark.e2e

FIXTURES = FIXTURES_ROOT / "security"
SCHEMA = json.loads((FIXTURES / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))


@dataclass
class Run:
    code: int
    line: str
    output: str
    result: dict
    sarif: dict | None
    log: str
    raw: str  # every byte the run left: terminal, log, JSON, SARIF

    def check(self, name: str) -> dict:
        return next(c for c in self.result["checks"] if c["name"] == name)

    def findings(self, check: str, severity: str = "error") -> list[dict]:
        return [
            f for f in self.result["findings"] if f["check"] == check and f["severity"] == severity
        ]


def run_stage(
    tmp_path: Path,
    workspace: Path,
    *posargs: str,
    db: Path | None = None,
    **extra: str,
) -> Run:
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIPIPE_")}
    env.pop("GITHUB_ACTIONS", None)
    env.update(
        CIPIPE_WORKSPACE=str(workspace), CIPIPE_OUTPUT_DIR=str(out), CIPIPE_CACHE__ENABLED="false"
    )
    if db is not None:
        env.update(CIPIPE_SECURITY__OFFLINE="true", CIPIPE_SECURITY__ADVISORY_DB=str(db))
    env.update(extra)
    stream = io.StringIO()
    code, line = execute("security", ROOT, list(posargs), env=env, stream=stream)
    result_text = (out / "security.json").read_text(encoding="utf-8")
    sarif_path = out / "security" / "security.sarif"
    sarif_text = sarif_path.read_text(encoding="utf-8") if sarif_path.exists() else ""
    log_path = out / "security.log"
    log = log_path.read_text(encoding="utf-8") if log_path.exists() else ""
    return Run(
        code=code,
        line=line,
        output=stream.getvalue(),
        result=json.loads(result_text),
        sarif=json.loads(sarif_text) if sarif_text else None,
        log=log,
        raw="\n".join([stream.getvalue(), line, log, result_text, sarif_text]),
    )


def copy_fixture(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / name
    shutil.copytree(FIXTURES / name, dest, ignore=shutil.ignore_patterns("target"))
    return dest


def assert_valid_sarif(run: Run) -> None:
    assert run.sarif is not None
    jsonschema.Draft4Validator(SCHEMA).validate(run.sarif)
    tool_of = {"advisories": "cargo-audit", "policy": "cargo-deny", "secrets": "detect-secrets"}
    names = [r["tool"]["driver"]["name"] for r in run.sarif["runs"]]
    assert names == [tool_of[c["name"]] for c in run.result["checks"]]


def test_vulnerable_dependency_blocked(tmp_path: Path, advisory_db: Path) -> None:
    run = run_stage(tmp_path, FIXTURES / "vulnerable", db=advisory_db)
    assert run.code == 1, run.output
    assert run.result["status"] == "failed"
    assert run.check("advisories")["status"] == "failed"
    assert run.check("advisories")["tool_version"] == "0.22.2"
    [finding] = run.findings("advisories")
    assert finding["rule"] == ADVISORY_ID and ADVISORY_ID in finding["message"]
    assert finding["crate"] == "itoa@1.0.18"
    assert finding["file"] == "Cargo.lock" and finding["line"]
    # cargo-deny's advisories check sees the same database.
    assert run.check("policy")["status"] == "failed"
    assert any(f["rule"] == ADVISORY_ID for f in run.findings("policy"))
    assert run.check("secrets")["status"] == "passed"
    assert ADVISORY_ID in run.line
    assert "cargo-audit 0.22.2" in run.output and "cargo-deny 0.20.2" in run.output
    assert_valid_sarif(run)
    result = run.sarif["runs"][0]["results"][0]
    assert result["ruleId"] == ADVISORY_ID
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "Cargo.lock"


def test_gpl_dependency_blocked_by_licence_check(tmp_path: Path, advisory_db: Path) -> None:
    run = run_stage(tmp_path, FIXTURES / "gpl_license", db=advisory_db)
    assert run.code == 1
    assert run.check("advisories")["status"] == "passed"
    assert run.check("policy")["status"] == "failed"
    [finding] = run.findings("policy")
    assert finding["rule"] == "rejected" and "GPL-3.0" in finding["message"]
    assert finding["crate"] == "gpl-dep@0.1.0"
    assert_valid_sarif(run)


def test_git_source_blocked_by_sources_check(tmp_path: Path, advisory_db: Path) -> None:
    ws = copy_fixture("git_source", tmp_path)
    dep = ws / "gitdep"
    git(dep, "init", "-q")
    git(dep, "add", "-A")
    git(dep, "commit", "-qm", "dep")
    manifest = ws / "Cargo.toml"
    text = manifest.read_text(encoding="utf-8").replace("file:///GITDEP_REPO", dep.as_uri())
    manifest.write_text(text, encoding="utf-8")
    # A local git repository and no registry dependency: no network needed.
    subprocess.run(["cargo", "generate-lockfile"], cwd=ws, check=True, capture_output=True)
    run = run_stage(tmp_path, ws, "--only", "policy", db=advisory_db)
    assert run.code == 1, run.output
    [finding] = run.findings("policy")
    assert finding["rule"] == "source-not-allowed" and finding["crate"] == "gitdep@0.1.0"
    assert_valid_sarif(run)


def planted_values() -> list[str]:
    settings = (FIXTURES / "secrets" / "config" / "settings.toml").read_text(encoding="utf-8")
    [aws] = re.findall(r'"(AKIA[0-9A-Z]{16})"', settings)
    pem = (FIXTURES / "secrets" / "config" / "deploy_key.pem").read_text(encoding="utf-8")
    body = [ln for ln in pem.splitlines() if ln and not ln.startswith("-----")]
    return [aws, *body]


def test_planted_secrets_blocked_and_masked_then_baselined(tmp_path: Path) -> None:
    ws = copy_fixture("secrets", tmp_path)
    run = run_stage(tmp_path / "first", ws, "--only", "secrets")
    assert run.code == 1, run.output
    rules = {f["rule"] for f in run.findings("secrets")}
    assert {"aws-access-key", "private-key"} <= rules
    aws = next(f for f in run.findings("secrets") if f["rule"] == "aws-access-key")
    assert aws["file"] == "config/settings.toml" and aws["line"] == 6
    assert "AKIA****" in aws["message"]
    for value in planted_values():
        assert value not in run.raw, "a secret value leaked into the output"
    assert run.check("secrets")["tool_version"] == "1.5.0"
    assert_valid_sarif(run)
    [secrets_run] = run.sarif["runs"]
    assert {r["ruleId"] for r in secrets_run["results"]} >= {"aws-access-key", "private-key"}

    # Reviewed: record them in a detect-secrets baseline, and the scan passes.
    files = ["config/settings.toml", "config/deploy_key.pem"]
    scan = subprocess.run(
        ["detect-secrets", "scan", "--no-verify", *files],
        cwd=ws,
        check=True,
        capture_output=True,
        text=True,
    )
    (ws / ".secrets.baseline").write_text(scan.stdout, encoding="utf-8")
    again = run_stage(tmp_path / "second", ws, "--only", "secrets")
    assert again.code == 0, again.output
    assert "allowed by baseline" in again.check("secrets")["summary"]


def test_secret_in_history_found_with_flag(tmp_path: Path) -> None:
    ws = copy_fixture("secrets", tmp_path)
    shutil.rmtree(ws / "config")
    git(ws, "init", "-q")
    leaked = ws / "leak.env"
    key = "AKIA" + "HISTORYFAKE0NLY9"
    leaked.write_text(f"AWS_ACCESS_KEY_ID={key}\n", encoding="utf-8")
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "oops")
    git(ws, "rm", "-q", "leak.env")
    git(ws, "commit", "-qm", "remove it")
    clean = run_stage(tmp_path / "tree", ws, "--only", "secrets")
    assert clean.code == 0, clean.output
    run = run_stage(tmp_path / "history", ws, "--only", "secrets", "--history")
    assert run.code == 1, run.output
    [finding] = run.findings("secrets")
    assert finding["file"] == "leak.env" and "history, commit" in finding["message"]
    assert key not in run.raw


def test_reference_workspace_passes(tmp_path: Path, advisory_db: Path) -> None:
    assert (ROOT / "Cargo.lock").is_file(), "the reference workspace has no Cargo.lock"
    run = run_stage(tmp_path, ROOT, db=advisory_db)
    assert run.code == 0, run.line + "\n" + run.output
    assert [c["status"] for c in run.result["checks"]] == ["passed"] * 3
    assert_valid_sarif(run)


def test_missing_lock_file_is_resolved_in_a_scratch_copy_and_said_so(
    tmp_path: Path, advisory_db: Path
) -> None:
    ws = copy_fixture("vulnerable", tmp_path)
    (ws / "Cargo.lock").unlink()
    before = sorted(p.relative_to(ws) for p in ws.rglob("*"))
    # Resolving needs the registry (its index); offline it is refused with the reason.
    run = run_stage(tmp_path, ws, db=advisory_db, CIPIPE_SECURITY__OFFLINE="false")
    assert run.code == 1, run.output
    lock = run.check("lockfile")
    assert lock["status"] == "passed"
    assert "freshly resolved" in lock["summary"] and "not the committed one" in lock["summary"]
    assert "freshly resolved" in run.check("advisories")["summary"]
    [finding] = run.findings("advisories")  # the pinned vulnerable itoa, found in the new graph
    assert finding["rule"] == ADVISORY_ID and finding["crate"] == "itoa@1.0.18"
    assert run.check("policy")["status"] == "failed"  # cargo-deny saw the same graph
    assert Path(run.result["artifacts"]["lockfile"]).is_file()
    # The workspace itself is left as it was: no Cargo.lock written into it.
    assert sorted(p.relative_to(ws) for p in ws.rglob("*")) == before


def test_an_untracked_lock_file_is_not_taken_for_the_committed_one(
    tmp_path: Path, advisory_db: Path
) -> None:
    # A library that ignores Cargo.lock: the one a build wrote here is of unknown age.
    ws = copy_fixture("vulnerable", tmp_path)
    (ws / ".gitignore").write_text("Cargo.lock\ntarget\n")
    git(ws, "init", "-q")
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "library without a lock file")
    run = run_stage(
        tmp_path, ws, "--only", "advisories", db=advisory_db, CIPIPE_SECURITY__OFFLINE="false"
    )
    assert "freshly resolved" in run.check("lockfile")["summary"], run.output
    assert run.check("advisories")["status"] == "failed"


def test_missing_lock_file_that_cannot_be_resolved_says_why(
    tmp_path: Path, advisory_db: Path
) -> None:
    ws = copy_fixture("vulnerable", tmp_path)
    (ws / "Cargo.lock").unlink()
    home = tmp_path / "cargo-home"  # no registry cache: offline resolution is impossible
    home.mkdir()
    run = run_stage(tmp_path, ws, db=advisory_db, CARGO_HOME=str(home), CARGO_NET_OFFLINE="true")
    assert run.result["status"] == "error"
    lock = run.check("lockfile")
    assert lock["status"] == "error" and "\n" not in lock["summary"]
    assert "no Cargo.lock committed" in lock["summary"] and "offline" in lock["summary"]
    assert run.check("advisories")["status"] == "error"
    assert run.check("secrets")["status"] == "passed"  # the other checks still ran


def test_unreadable_deny_toml(tmp_path: Path, advisory_db: Path) -> None:
    bad = tmp_path / "deny.toml"
    bad.write_text("[licenses\nallow = [", encoding="utf-8")
    run = run_stage(
        tmp_path,
        FIXTURES / "gpl_license",
        "--only",
        "policy",
        db=advisory_db,
        CIPIPE_SECURITY__DENY_CONFIG=str(bad),
    )
    assert run.code == 3 and "invalid TOML" in run.line


def test_offline_without_database(tmp_path: Path) -> None:
    run = run_stage(
        tmp_path,
        FIXTURES / "vulnerable",
        CIPIPE_SECURITY__OFFLINE="true",
        CIPIPE_SECURITY__ADVISORY_DB=str(tmp_path / "no-db"),
    )
    assert run.code == 3
    assert "advisory database" in run.line and "advisory_db" in run.line


def test_tool_install_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A `cargo` that always fails stands in for an install that cannot succeed.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "cargo").write_text("#!/bin/sh\necho 'error: no network' >&2\nexit 101\n")
    (fake / "cargo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CIPIPE_TOOLS_DIR", str(tmp_path / "tools"))
    ghost = tools.CargoTool("cargo-ghost-tool", "cargo-ghost-tool", "1.0.0", "test")
    monkeypatch.setitem(tools.TOOLS, ghost.name, ghost)
    runner = Runner(stream=io.StringIO())
    assert tools.missing([ghost.name]) == [ghost.name]
    assert tools.install(runner, [ghost.name], dry_run=True) == [ghost.name]
    with pytest.raises(ToolMissing, match=r"cargo install --locked cargo-ghost-tool@1\.0\.0"):
        tools.install(runner, [ghost.name])
    with pytest.raises(ToolMissing, match=r"invoke tools\.install"):
        tools.resolve(runner, ghost.name, auto_install=False)


# -- the real RustSec database (snapshot), offline ---------------------------------------

# The snapshot ages; these tests are about advisories, not age (unit tests cover the age
# policy with a fixed clock), so they accept any age.
ANY_AGE = {"CIPIPE_SECURITY__MAX_AGE_DAYS": "36500"}


def test_reference_workspace_is_green_against_the_real_database(
    tmp_path: Path, real_advisory_db: Path
) -> None:
    run = run_stage(tmp_path, ROOT, db=real_advisory_db, **ANY_AGE)
    assert run.code == 0, run.line + "\n" + run.output
    assert [c["status"] for c in run.result["checks"]] == ["passed"] * 3
    assert "configured; commit " in run.output and "days old" in run.output


def test_real_advisory_is_caught_with_its_id(tmp_path: Path, real_advisory_db: Path) -> None:
    run = run_stage(tmp_path, FIXTURES / "real_advisory", db=real_advisory_db, **ANY_AGE)
    assert run.code == 1, run.output
    ids = {f["rule"] for f in run.findings("advisories")}
    assert "RUSTSEC-2021-0003" in ids
    [finding] = [f for f in run.findings("advisories") if f["rule"] == "RUSTSEC-2021-0003"]
    assert finding["crate"] == "smallvec@1.6.0" and "upgrade to" in finding["message"]
    assert ">=1.6.1" in finding["message"]
    assert any(f["rule"] == "RUSTSEC-2021-0003" for f in run.findings("policy"))
    assert "RUSTSEC-2021-0003" in run.line


def test_no_database_is_not_checked_never_a_pass(tmp_path: Path) -> None:
    empty_home = tmp_path / "cargo-home"
    empty_home.mkdir()
    run = run_stage(
        tmp_path,
        FIXTURES / "vulnerable",
        "--only",
        "advisories",
        CIPIPE_SECURITY__OFFLINE="true",
        CIPIPE_SECURITY__CARGO_HOME=str(empty_home),  # no copy cached by an earlier run either
    )
    assert run.code == 2, run.output
    assert run.result["status"] == "error"
    check = run.check("advisories")
    assert check["status"] == "error" and check["summary"].startswith("not checked:")
    assert "CIPIPE_SECURITY__ADVISORY_DB=" in check["summary"]
    assert "not checked" in run.line


def test_cached_copy_is_used_when_fetching_fails(tmp_path: Path, advisory_db: Path) -> None:
    home = tmp_path / "cargo-home"
    shutil.copytree(advisory_db, home / "advisory-db", symlinks=True)  # cargo-audit's place
    run = run_stage(
        tmp_path,
        FIXTURES / "vulnerable",
        "--only",
        "advisories",
        CIPIPE_SECURITY__CARGO_HOME=str(home),
        # An unreachable mirror stands in for a machine without GitHub.
        CIPIPE_SECURITY__FETCH_TIMEOUT="5",
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0="url.http://127.0.0.1:9/.insteadOf",
        GIT_CONFIG_VALUE_0="https://github.com/",
    )
    assert run.code == 1, run.output  # checked (and red: the test database lists itoa)
    assert "using a cached copy (cannot fetch" in run.output
    assert ADVISORY_ID in run.line
