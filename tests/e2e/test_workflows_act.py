"""The workflows executed end to end by a local Actions runner (act, host mode): the jobs
of test.yml on a pull request and on a push to main, the release on a tag, staging on a
push to main, and the nightly schedule. See tests/e2e/act.py for how the runner is set
up and tests/fixtures/actions/README.md for the action stand-ins.

Each run is minutes of real pipeline work (every job sets up its own virtualenv and runs
its stage), so one module-scoped run serves several assertions."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes.github_api import FakeGitHub
from fakes.github_issues import on_issue, open_pull
from helpers import git, unpack_real_advisory_db

from .act import (
    ActRun,
    Runner,
    commit,
    copy_repository,
    edit_workflow,
    only_jobs,
    pull_request_event,
    push_event,
    runner_env,
)

pytestmark = pytest.mark.e2e

TEST_JOBS = ("lint", "security", "unit", "integration", "bench", "coverage", "selfcheck", "report")
STAGES = ("lint", "security", "unit", "integration", "bench", "coverage")


def job_env(tmp: Path, db: Path) -> dict[str, str]:
    """The runner's environment plus the RustSec snapshot (offline)."""
    return runner_env(
        CIPIPE_SECURITY__ADVISORY_DB=str(db),
        CIPIPE_SECURITY__MAX_AGE_DAYS="36500",  # the snapshot ages; age is unit-tested
        CIPIPE_REPORT__BACKOFF="0.01",
    )


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


@pytest.fixture(scope="module")
def lint_fault_run(tmp_path_factory: pytest.TempPathFactory, github) -> tuple[Runner, ActRun]:
    """test.yml on a pull request whose head breaks formatting."""
    api, token = github
    tmp = tmp_path_factory.mktemp("act-lint-fault")
    repo = copy_repository(tmp / "repo")
    base = git(repo, "rev-parse", "HEAD").strip()
    # The jobs that show the semantics: lint fails, unit (and what needs it) is skipped,
    # security (independent) finishes, the report runs; the PR run proves the rest.
    edit_workflow(repo, "test.yml", only_jobs("lint", "security", "unit", "integration", "report"))
    lib = repo / "crates" / "trading-core" / "src" / "lib.rs"
    lib.write_text(lib.read_text(encoding="utf-8") + "\npub fn  badly_formatted( ) {}\n")
    head = commit(repo, "head: a formatting fault")
    db = unpack_real_advisory_db(tmp / "rustsec")
    runner = Runner(
        repo,
        tmp / "act",
        env={**job_env(tmp, db), "CIPIPE_REPORT__API_URL": api.url},
        secrets={"GITHUB_TOKEN": token},
    )
    return runner, runner.run("pull_request", "test.yml", pull_request_event(repo, base, head))


def test_a_lint_fault_fails_lint_skips_what_needs_it_and_the_report_shows_it(
    lint_fault_run,
) -> None:
    runner, run = lint_fault_run
    assert run.code != 0
    assert run.result("lint") == "failure", run.log[-4000:]
    for job in ("unit", "integration"):
        assert run.result(job) == "skipped", (job, run.result(job))
    for job in ("security", "report"):
        assert run.result(job) == "success", (job, run.result(job), run.log[-4000:])
    text = (runner.artifacts() / "pipeline-report" / "summary.md").read_text()
    assert text.startswith("## Pipeline: failed"), text[:300]
    lint = next(line for line in text.splitlines() if line.startswith("| lint"))
    assert "FAIL" in lint.upper(), lint
    unit = next(line for line in text.splitlines() if line.startswith("| unit"))
    assert "blocked" in unit.lower(), unit


# Breaking the workflow must make it fail. Each break is applied to the real jobs of
# test.yml; the lint -> report graph (the other jobs removed, `needs` trimmed) keeps the
# runs short. The unbroken graph is the PR run above; each broken run must fail for the
# reason the break causes (the message is checked), not for another.


@pytest.fixture
def small_pr(tmp_path: Path, github):
    """A pull request repository and its runner, test.yml reduced to lint -> report."""
    api, token = github
    repo = copy_repository(tmp_path / "repo")
    base = git(repo, "rev-parse", "HEAD").strip()
    edit_workflow(repo, "test.yml", only_jobs("lint", "report"))
    head = git(repo, "rev-parse", "HEAD").strip()
    db = unpack_real_advisory_db(tmp_path / "rustsec")
    runner = Runner(
        repo,
        tmp_path / "act",
        env={**job_env(tmp_path, db), "CIPIPE_REPORT__API_URL": api.url},
        secrets={"GITHUB_TOKEN": token},
    )

    def run(name: str) -> ActRun:
        head_now = git(repo, "rev-parse", "HEAD").strip()
        return runner.run(
            "pull_request", "test.yml", pull_request_event(repo, base, head_now), name=name
        )

    return repo, runner, run, head


def _job(doc: dict, name: str) -> dict:
    return doc["jobs"][name]


def _drop_step(job: str, run_line: str) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        steps = _job(doc, job)["steps"]
        _job(doc, job)["steps"] = [s for s in steps if s.get("run") != run_line]
        assert len(_job(doc, job)["steps"]) == len(steps) - 1, f"no step `{run_line}`"

    return edit


def test_an_artifact_renamed_on_one_side_fails_the_report(small_pr) -> None:
    repo, _runner, run, _head = small_pr

    def rename(doc: dict) -> None:
        upload = next(s for s in _job(doc, "lint")["steps"] if "upload-artifact" in str(s))
        upload["with"]["name"] = "lint-results"

    edit_workflow(repo, "test.yml", rename)
    result = run("renamed")
    assert result.result("lint") == "success"
    assert result.result("report") == "failure"
    assert "lint (success)" in result.text("report") or "lint (success)" in result.log


def test_a_dropped_setup_step_fails_its_job(small_pr) -> None:
    repo, _runner, run, _head = small_pr
    edit_workflow(repo, "test.yml", _drop_step("lint", "bash .ci/setup python"))
    result = run("no-setup")
    assert result.result("lint") == "failure", result.log[-3000:]


def test_a_removed_environment_variable_fails_the_job_that_needs_it(tmp_path: Path) -> None:
    """release.yml hands the tag to `invoke release` through RELEASE_TAG (data, never code
    pasted into the script): without it the release job must stop, not build something."""
    repo = copy_repository(tmp_path / "repo")
    head = git(repo, "rev-parse", "HEAD").strip()

    def no_tag(doc: dict) -> None:
        del _job(doc, "release")["env"]["RELEASE_TAG"]

    edit_workflow(repo, "release.yml", no_tag)
    git(repo, "tag", "v0.1.0")
    runner = Runner(repo, tmp_path / "act", env=runner_env())
    event = push_event("refs/tags/v0.1.0", "0" * 40, head)
    run = runner.run("push", "release.yml", event, jobs=["release"], matrix=["os:ubuntu-latest"])
    assert run.result("release") == "failure", run.log[-3000:]
    assert "error: " in run.text("release") and "tag" in run.text("release")
    assert not (runner.artifacts() / "release-linux").exists()


def test_needs_naming_a_removed_job_fails_before_anything_runs(tmp_path: Path) -> None:
    repo = copy_repository(tmp_path / "repo")
    runner = Runner(repo, tmp_path / "act")
    control = runner.plan("pull_request", "test.yml")
    assert control.returncode == 0 and " unit " in control.stdout, control.stdout + control.stderr

    def remove_lint(doc: dict) -> None:
        del doc["jobs"]["lint"]

    edit_workflow(repo, "test.yml", remove_lint)
    broken = runner.plan("pull_request", "test.yml")
    assert broken.returncode != 0
    assert "unable to build dependency graph" in broken.stdout + broken.stderr


def test_a_version_tag_publishes_the_linux_release_and_hands_it_to_staging(
    tmp_path: Path,
) -> None:
    """release.yml on a tag push, the Linux leg, against the local GitHub API."""
    token = secrets.token_hex(16)
    with FakeGitHub(token=token) as api:
        repo = copy_repository(tmp_path / "repo")
        head = git(repo, "rev-parse", "HEAD").strip()
        git(repo, "tag", "v0.1.0")
        runner = Runner(
            repo,
            tmp_path / "act",
            env=runner_env(CIPIPE_RELEASE__API_URL=api.url, CIPIPE_RELEASE__BACKOFF="0.01"),
            secrets={"GITHUB_TOKEN": token},
        )
        event = push_event("refs/tags/v0.1.0", "0" * 40, head)
        run = runner.run(
            "push", "release.yml", event, jobs=["release"], matrix=["os:ubuntu-latest"]
        )
        assert run.result("release") == "success", run.log[-6000:]
        (release,) = api.releases("acme/trading")
        assert release["tag_name"] == "v0.1.0" and not release["draft"]
        names = sorted(a["name"] for a in release["assets"].values())
        assert "SHA256SUMS" in names and any(n.endswith("linux-gnu.tar.gz") for n in names)
        handed = runner.artifacts() / "release-linux"
        manifest = json.loads((handed / "manifest.json").read_text())
        assert manifest["version"] == "0.1.0"
        assert (handed / "bin" / "trading-system").is_file()
        assert token not in run.log


def test_the_nightly_schedule_runs_bench_load_stress_and_fuzz(tmp_path: Path) -> None:
    """nightly.yml on its schedule event with short time boxes; the benchmark trend point
    is recorded into the history the next run restores."""
    repo = copy_repository(tmp_path / "repo")
    runner = Runner(
        repo,
        tmp_path / "act",
        env=runner_env(
            CIPIPE_LOAD__SECONDS="3",
            CIPIPE_LOAD__WARMUP_SECONDS="1",
            CIPIPE_STRESS__STEP_SECONDS="2",
            CIPIPE_STRESS__MAX_RATE="1000",
            CIPIPE_STRESS__REFINE_STEPS="0",
            CIPIPE_FUZZ__SECONDS="5",
            # The tier checks the nightly wiring; the latency gates' verdicts on a 2-core
            # machine shared with the rest of the suite are `nox -s load`'s and `stress`'s.
            CIPIPE_LOAD__P99_MS="1000",
            CIPIPE_STRESS__P99_MS="1000",
        ),
    )
    # The nightly job only: the cache-audit job of the same workflow is proven by
    # tests/e2e/test_cache_audit.py (and would re-run four stages here).
    run = runner.run("schedule", "nightly.yml", {"schedule": "17 2 * * *"}, jobs=["nightly"])
    assert run.result("nightly") == "success", run.log[-6000:]
    results = runner.artifacts() / "pipeline-nightly"
    for stage in ("bench", "load", "stress", "fuzz"):
        data = json.loads((results / f"{stage}.json").read_text())
        assert data["status"] == "passed", (stage, data["summary"])
    export = next(runner.cache.glob("*/files/0"))  # the history export the cache kept
    records = [json.loads(line) for line in export.read_text().splitlines() if line.strip()]
    assert any(r.get("kind") == "bench" for r in records), records[:3]
