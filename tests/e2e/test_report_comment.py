"""The PR comment against the local fake GitHub API: one comment per PR, updated in place
by later runs (found by its hidden marker, also past the first page), 5xx retried, a
refused or missing token one clear line, and the token never printed or written."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import pytest
from fakes.github_api import FakeGitHub
from fakes.github_issues import comments, on_issue, open_pull
from helpers import ROOT, run_invoke

from ci.reports.errors import CommentError
from ci.reports.tasks import run_report
from ci.result import Finding, StageResult, Status, write_result

REPO = "acme/trading"


def _token() -> str:
    return "ghs_" + secrets.token_hex(16)  # made at run time: the repo's secret scan stays green


def _results(out: Path, unit: Status = Status.PASSED) -> None:
    write_result(out, StageResult("lint", Status.PASSED, 3.2, 60, "fmt: formatted"))
    finding = [Finding("tests", "t failed (at src/lib.rs:3:1)")] if unit is Status.FAILED else []
    write_result(out, StageResult("unit", unit, 9.5, 120, "tests: 3 passed", findings=finding))


def _env(tmp_path: Path, api: FakeGitHub, token: str, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "GITHUB_TOKEN": token,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_REF": "refs/pull/7/merge",
        "CIPIPE_REPORT__API_URL": api.url,
        "CIPIPE_REPORT__BACKOFF": "0.01",
        "CIPIPE_OUTPUT_DIR": str(tmp_path / "out"),
        "CIPIPE_HISTORY__PATH": str(tmp_path / "history.sqlite3"),
        **extra,
    }


def _report(env: dict[str, str]) -> list[str]:
    said: list[str] = []
    run_report(ROOT, comment=True, env=env, say=said.append)
    return said


def _no_token_anywhere(token: str, said: list[str], out: Path) -> None:
    assert token not in "\n".join(said)
    for path in out.rglob("*"):
        if path.is_file():
            assert token not in path.read_text(errors="replace"), path


def test_one_comment_created_then_updated_in_place(tmp_path: Path) -> None:
    token = _token()
    with FakeGitHub(token=token) as api:
        open_pull(api, REPO, 7)
        env = _env(tmp_path, api, token)
        _results(tmp_path / "out", Status.FAILED)
        start = time.monotonic()
        said = _report(env)
        first_s = time.monotonic() - start
        assert any("PR #7: summary comment created" in line for line in said), said
        (first,) = on_issue(api, REPO, 7)
        assert first["body"].startswith(
            "<!-- rust-trading-pipeline:summary -->\n## Pipeline: failed"
        )
        assert "src/lib.rs:3:1" in first["body"]

        _results(tmp_path / "out", Status.PASSED)  # the next push is green
        said = _report(env)
        assert any("summary comment updated" in line for line in said), said
        (again,) = on_issue(api, REPO, 7)
        assert again["id"] == first["id"] and "## Pipeline: passed" in again["body"]

        said = _report(env)  # nothing changed: no write at all
        assert any("summary comment unchanged" in line for line in said), said
        assert len(api.requests("PATCH")) == 1 and len(api.requests("POST")) == 1
        for req in api.log:
            assert req.authorization == f"Bearer {token}"
            assert token not in req.path
        _no_token_anywhere(token, said, tmp_path / "out")
    print(f"\ncomment post against the fake: {first_s:.3f}s (first run, incl. rendering)")


def test_marker_found_past_the_first_page_and_others_left_alone(tmp_path: Path) -> None:
    token = _token()
    with FakeGitHub(token=token) as api:
        api.page_size_cap = 2
        open_pull(api, REPO, 7)
        env = _env(tmp_path, api, token)
        _results(tmp_path / "out")
        _report(env)
        ours = on_issue(api, REPO, 7)[0]["id"]
        for i in range(5):  # people talk after our comment
            cid = api.new_id()
            comments(api)[cid] = {"id": cid, "body": f"LGTM {i}", "_where": (REPO, 7)}
        comments(api)[ours] = comments(api).pop(ours)  # ours now on the last page
        _results(tmp_path / "out", Status.FAILED)
        _report(env)
        bodies = [c["body"] for c in on_issue(api, REPO, 7)]
        assert sum("rust-trading-pipeline:summary" in b for b in bodies) == 1
        assert [b for b in bodies if b.startswith("LGTM")] == [f"LGTM {i}" for i in range(5)]


def test_server_errors_are_retried(tmp_path: Path) -> None:
    token = _token()
    with FakeGitHub(token=token) as api:
        open_pull(api, REPO, 7)
        api.fail("GET", r"/issues/7/comments$", 502, times=2)
        api.fail("POST", r"/issues/7/comments$", 503, times=1)
        _results(tmp_path / "out")
        said = _report(_env(tmp_path, api, token))
        assert sum("502" in line and "attempt" in line for line in said) == 2, said
        assert len(on_issue(api, REPO, 7)) == 1


def test_persistent_5xx_and_refusals_are_one_line(tmp_path: Path) -> None:
    token = _token()
    with FakeGitHub(token=token) as api:
        open_pull(api, REPO, 7)
        _results(tmp_path / "out")
        api.fail("GET", r"/comments", 500, times=10)
        with pytest.raises(CommentError, match="GitHub answered 500"):
            _report(_env(tmp_path, api, token, CIPIPE_REPORT__ATTEMPTS="2"))
        api.failures.clear()
        api.fail("POST", r"/comments$", 403, body={"message": "Resource not accessible"})
        with pytest.raises(CommentError, match="'pull-requests: write'") as err:
            _report(_env(tmp_path, api, token))
        assert "\n" not in str(err.value) and token not in str(err.value)
        with pytest.raises(CommentError, match="pull request #8 of acme/trading does not exist"):
            _report(_env(tmp_path, api, token, GITHUB_REF="refs/pull/8/merge"))
        with pytest.raises(CommentError, match="401"):
            _report(_env(tmp_path, api, "ghs_wrong"))


def test_missing_token_is_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _results(out)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CIPIPE_", "GITHUB_"))},
        "CIPIPE_OUTPUT_DIR": str(out),
        "CIPIPE_HISTORY__PATH": str(tmp_path / "history.sqlite3"),
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_REF": "refs/pull/7/merge",
    }
    res = run_invoke(["report", "--comment"], env, timeout=120)
    assert res.returncode == 31, res.stdout + res.stderr
    assert res.stderr.strip().splitlines() == [
        "error: GITHUB_TOKEN is not set: the PR comment needs a token with 'pull-requests: "
        "write' (in a workflow: env GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }})"
    ]
    assert not (out / "summary.md").exists()  # checked before anything was written


def test_record_and_step_summary_once_per_job(tmp_path: Path) -> None:
    """The report job records the stages that ran on other machines as one CI run, and
    its comment step leaves the step summary alone (it was written once already)."""
    from ci import settings as settings_mod
    from ci.history import open_store

    out = tmp_path / "out"
    _results(out)
    write_result(out, StageResult("security", Status.PASSED, 20.0, 120))
    write_result(out, StageResult("integration", Status.PASSED, 30.0, 300))
    write_result(out, StageResult("coverage", Status.PASSED, 40.0, 120))
    write_result(out, StageResult("bench", Status.PASSED, 90.0, 180))
    step = tmp_path / "step-summary.md"
    env = {
        "PATH": os.environ["PATH"],
        "CIPIPE_OUTPUT_DIR": str(out),
        "CIPIPE_HISTORY__PATH": str(tmp_path / "history.sqlite3"),
        "GITHUB_STEP_SUMMARY": str(step),
    }
    said: list[str] = []
    run_report(ROOT, html=True, record=True, env=env, say=said.append)
    assert any(line.startswith("history: recorded run") for line in said), said
    with open_store(settings_mod.load(ROOT, env)) as store:
        (run,) = store.runs("ci")
        assert run.run.meta == {
            "flow": "report",
            "stages": ["lint", "security", "unit", "integration", "bench", "coverage"],
            "full": True,  # every job of test.yml: a whole pipeline run
        }
        # the critical path: lint, unit, integration, then bench (longer than coverage)
        assert run.run.duration_s == pytest.approx(3.2 + 9.5 + 30.0 + 90.0, abs=0.5)
    once = step.read_text()
    assert once.count("## Pipeline: passed") == 1
    run_report(ROOT, step_summary=False, env=env, say=said.append)
    assert step.read_text() == once
