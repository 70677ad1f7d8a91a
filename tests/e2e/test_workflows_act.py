"""The workflows executed end to end by a local Actions runner (act, host mode): the jobs
of test.yml on a pull request and on a push to main, the release on a tag, staging on a
push to main, and the nightly schedule. See tests/e2e/act.py for how the runner is set
up and tests/fixtures/actions/README.md for the action stand-ins.

Each run is minutes of real pipeline work (every job sets up its own virtualenv and runs
its stage), so one module-scoped run serves several assertions."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from fakes.github_api import FakeGitHub
from fakes.github_issues import on_issue, open_pull
from helpers import git, shared_target_dir, unpack_real_advisory_db

from .act import ActRun, Runner, commit, copy_repository, pull_request_event

pytestmark = pytest.mark.e2e

TEST_JOBS = ("lint", "security", "unit", "integration", "bench", "coverage", "selfcheck", "report")
STAGES = ("lint", "security", "unit", "integration", "bench", "coverage")


def job_env(tmp: Path, db: Path) -> dict[str, str]:
    """What a self-hosted runner of this project provides: the shared cargo target dir,
    the RustSec snapshot (offline), short benchmark rounds."""
    target = shared_target_dir()
    return {
        "CARGO_TARGET_DIR": target,
        "CIPIPE_CARGO_TARGET_DIR": target,
        "CIPIPE_SECURITY__ADVISORY_DB": str(db),
        "CIPIPE_SECURITY__MAX_AGE_DAYS": "36500",  # the snapshot ages; age is unit-tested
        "CIPIPE_BENCH__ROUNDS": "1",
        "CIPIPE_BENCH__MEASUREMENT_TIME": "0.2",
        "CIPIPE_BENCH__WARM_UP": "0.05",
        "CIPIPE_BENCH__SAMPLE_SIZE": "10",
        "CIPIPE_REPORT__BACKOFF": "0.01",
    }


def summary(run: ActRun) -> str:
    """The report job's step summary as the runner received it."""
    return run.text("report")


@pytest.fixture(scope="module")
def github():
    """The local GitHub API (PR comments) for the report job."""
    token = secrets.token_hex(16)
    with FakeGitHub(token=token) as api:
        open_pull(api, "acme/trading", 7)
        yield api, token


@pytest.fixture(scope="module")
def pr_run(tmp_path_factory: pytest.TempPathFactory, github) -> tuple[Runner, ActRun]:
    """test.yml on a pull request whose head changes a comment in trading-core."""
    api, token = github
    tmp = tmp_path_factory.mktemp("act-pr")
    repo = copy_repository(tmp / "repo")
    base = git(repo, "rev-parse", "HEAD").strip()
    lib = repo / "crates" / "trading-core" / "src" / "lib.rs"
    lib.write_text(lib.read_text(encoding="utf-8") + "\n// a pull request's change\n")
    git_head = commit(repo, "head")
    db = unpack_real_advisory_db(tmp / "rustsec")
    runner = Runner(
        repo,
        tmp / "act",
        env={**job_env(tmp, db), "CIPIPE_REPORT__API_URL": api.url},
        secrets={"GITHUB_TOKEN": token},
    )
    run = runner.run("pull_request", "test.yml", pull_request_event(repo, base, git_head))
    return runner, run


def test_a_pull_request_runs_every_job_of_test_yml_to_green(pr_run) -> None:
    _runner, run = pr_run
    for job in TEST_JOBS:
        assert run.result(job) == "success", f"{job}: {run.result(job)}\n{run.log[-6000:]}"
    assert run.code == 0


def test_the_report_job_finds_every_stage_and_writes_summary_and_html(pr_run, github) -> None:
    runner, _run = pr_run
    arts = runner.artifacts()
    for stage in STAGES:
        result = json.loads((arts / f"pipeline-{stage}" / f"{stage}.json").read_text())
        assert result["status"] == "passed", (stage, result["summary"])
    report = arts / "pipeline-report"
    text = (report / "summary.md").read_text()
    assert text.startswith("## Pipeline: passed"), text[:400]
    for stage in STAGES:
        assert f"| {stage} |" in text or f"| `{stage}` |" in text or stage in text
    assert (report / "report.html").read_text().count("<svg") >= 1
    api, _token = github
    (comment,) = on_issue(api, "acme/trading", 7)
    assert "## Pipeline: passed" in comment["body"]


def test_bench_on_a_pull_request_compares_with_its_base(pr_run) -> None:
    runner, _run = pr_run
    bench = json.loads((runner.artifacts() / "pipeline-bench" / "bench.json").read_text())
    comparison = Path(bench["artifacts"]["comparison"]).name
    rows = json.loads((runner.artifacts() / "pipeline-bench" / "bench" / comparison).read_text())
    assert rows, "bench measured no base/head pair: CIPIPE_BENCH__BASE did not reach it"
