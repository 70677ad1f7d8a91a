"""Check-mode twin of .github/workflows/: schema-valid, every `run:` one existing nox
session or invoke task after one set-up step, pinned actions, least privilege, and job
timeouts in step with the stages' hard limits. (zizmor and actionlint run in
tests/e2e/test_workflow_lint.py: they are processes.)"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from ci import settings as settings_mod
from ci import workflows
from ci.errors import ConfigError
from ci.registry import STAGES
from ci.selfcheck import check_workflows, task_collection

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / ".github" / "workflows"
SETUP_MINUTES = 15  # what test.yml's header promises on top of a stage's hard limit


@pytest.fixture(scope="module")
def tasks() -> dict[str, list[str]]:
    return workflows.invoke_tasks(task_collection(ROOT))


def _test_yml() -> dict:
    return workflows.load(FOLDER / "test.yml").doc


def test_every_workflow_is_valid_and_every_run_is_one_existing_call() -> None:
    assert check_workflows(ROOT) == []


def test_schema_is_the_vendored_github_workflow_schema() -> None:
    schema = workflows.schema()
    assert "jobs" in schema["properties"] and "on" in schema["properties"]
    broken = workflows.Workflow(Path("broken.yml"), {"on": "push", "jobs": {"x": {"steps": 3}}})
    errors = workflows.schema_errors(broken, schema)
    assert errors and all(e.startswith("broken.yml: jobs") for e in errors)


def _wf(tmp_path: Path, steps: str) -> workflows.Workflow:
    path = tmp_path / "w.yml"
    path.write_text(
        "on: push\npermissions: {}\njobs:\n  j:\n    runs-on: ubuntu-latest\n    steps:\n" + steps
    )
    return workflows.load(path)


@pytest.mark.parametrize(
    ("run", "problem"),
    [
        ("nox -s moon", "nox session 'moon' does not exist"),
        ("nox -s lint unit", "one session per step"),
        ("nox", "call exactly one session"),
        ("invoke deploy.nowhere", "invoke task 'deploy.nowhere' does not exist"),
        ("invoke report --htm", "invoke report has no option --htm"),
        ("invoke ci && invoke report", "run must be one command"),
        ("cargo test", "is neither `nox -s <session>` nor `invoke <task>`"),
        ('invoke release --tag "${{ github.ref_name }}"', "pass the value through env"),
        ("bash .ci/setup everything", "unknown set-up part(s) everything"),
    ],
)
def test_bad_run_lines_are_one_clear_line_each(tmp_path: Path, tasks, run: str, problem: str):
    wf = _wf(tmp_path, f"      - run: bash .ci/setup python\n      - run: '{run}'\n")
    found = workflows.run_problems(wf, [s.name for s in STAGES], tasks)
    assert len(found) == 1, found
    assert found[0].startswith("w.yml: job j, step ") and problem in found[0], found[0]


def test_one_set_up_step_and_it_comes_first(tmp_path: Path, tasks) -> None:
    steps = "      - run: nox -s lint\n      - run: bash .ci/setup\n      - run: bash .ci/setup\n"
    found = workflows.run_problems(_wf(tmp_path, steps), ["lint"], tasks)
    assert found == [
        "w.yml: job j, step 2: the set-up step comes before the pipeline calls",
        "w.yml: job j, step 3: a job has one set-up step",
    ]


def test_good_calls_pass(tmp_path: Path, tasks) -> None:
    steps = (
        "      - run: bash .ci/setup python tools\n      - run: nox -s unit -- some_test\n"
        "      - run: invoke report --html --comment\n      - run: invoke hooks.install\n"
    )
    assert workflows.run_problems(_wf(tmp_path, steps), ["unit"], tasks) == []


def test_not_yaml_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text("jobs: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yml: not a readable YAML workflow \(line 2\)"):
        workflows.load(tmp_path / "bad.yml")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no workflow files"):
        workflows.problems(tmp_path / "empty", [], {})


def test_stage_jobs_mirror_the_registry_graph() -> None:
    jobs = _test_yml()["jobs"]
    for spec in STAGES:
        if not spec.in_ci:
            continue
        job = jobs[spec.name]
        runs = [s["run"] for s in job["steps"] if "run" in s]
        assert runs[0].startswith("bash .ci/setup"), spec.name
        assert [r for r in runs if r.startswith("nox")] == [f"nox -s {spec.name}"], spec.name
        # beside the stage: only carrying the history store between runners
        others = [r for r in runs[1:] if not r.startswith("nox")]
        assert all(r.startswith("invoke history.") for r in others), others
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        assert sorted(needs) == sorted(spec.needs), spec.name
    report = jobs["report"]
    assert set(report["needs"]) == {s.name for s in STAGES if s.in_ci}
    assert report["if"] == "always()"


def test_timeouts_follow_the_stage_hard_limits() -> None:
    cfg = settings_mod.load(ROOT, env={})  # the configuration, not this shell's overrides
    jobs = _test_yml()["jobs"]
    for spec in STAGES:
        if spec.in_ci:
            expected = math.ceil(cfg.timeout(spec.name) / 60) + SETUP_MINUTES
            assert jobs[spec.name]["timeout-minutes"] == expected, spec.name
    # a job that calls a reusable workflow takes no timeout (the called jobs carry theirs)
    assert all("timeout-minutes" in job for job in jobs.values() if "uses" not in job)
    called = (ROOT / ".github" / "workflows" / "deploy-staging.yml").read_text()
    assert "timeout-minutes:" in called


def test_triggers_concurrency_and_least_privilege() -> None:
    doc = _test_yml()
    assert set(doc["on"]) == {"push", "pull_request", "workflow_dispatch"}
    assert doc["on"]["push"] == {"branches": ["main"]}
    assert doc["permissions"] == {}
    assert "cancel-in-progress" in doc["concurrency"]
    for name, job in doc["jobs"].items():
        extra = {"pull-requests": "write"} if name == "report" else {}
        assert job["permissions"] == {"contents": "read", **extra}, name


def test_actions_are_pinned_and_secrets_only_through_env() -> None:
    for path in sorted(FOLDER.glob("*.yml")):
        text = path.read_text()
        for ref, comment in re.findall(r"uses:\s*(\S+)(.*)", text):
            if ref.startswith("./"):  # a workflow of this repository, at this very commit
                assert (ROOT / ref).is_file(), f"{path.name}: {ref} does not exist"
                continue
            assert re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}", ref), ref
            assert comment.strip().startswith("# "), f"{path.name}: {ref}: name the version"
        doc = workflows.load(path).doc
        for job in doc["jobs"].values():
            assert "secrets." not in str(job.get("env", {})), path.name
            if "uses" in job:  # a reusable-workflow call: secrets only as named secrets
                outside = {k: v for k, v in job.items() if k != "secrets"}
                assert "secrets." not in str(outside), path.name
                assert job.get("secrets") != "inherit", f"{path.name}: name each secret"
                continue
            for step in job["steps"]:
                if "secrets." in str(step):
                    assert "secrets." in str(step.get("env", {})), f"{path.name}: {step}"
                    assert "secrets." not in str({k: v for k, v in step.items() if k != "env"})
                if str(step.get("uses", "")).startswith("actions/checkout"):
                    assert step["with"]["persist-credentials"] is False


def test_nightly_job_runs_invoke_nightly_within_its_stages_hard_limits() -> None:
    cfg = settings_mod.load(ROOT, env={})  # the configuration, not this shell's overrides
    nightly = workflows.load(FOLDER / "nightly.yml").doc
    job = nightly["jobs"]["nightly"]
    runs = [s["run"] for s in job["steps"] if "run" in s]
    stages = cfg.section("nightly").strings("stages")
    assert "bench" in stages  # the daily trend point
    assert runs[0] == f"bash .ci/setup python tools:{','.join(stages)}"
    assert "invoke nightly" in runs and "invoke history.export --out .pipeline/export.jsonl" in runs
    expected = sum(math.ceil(cfg.timeout(s) / 60) for s in stages) + SETUP_MINUTES
    assert job["timeout-minutes"] == expected
    on = nightly.get("on", nightly.get(True))  # a YAML 1.1 loader reads `on:` as True
    assert on["schedule"]


AUDITED = ("lint", "security", "unit", "integration")


def test_the_nightly_audits_the_stage_cache_that_test_yml_jobs_restore() -> None:
    cfg = settings_mod.load(ROOT, env={})  # the configuration, not this shell's overrides
    job = workflows.load(FOLDER / "nightly.yml").doc["jobs"]["cache-audit"]
    runs = [s["run"] for s in job["steps"] if "run" in s]
    stages = ",".join(AUDITED)
    assert runs == [
        f"bash .ci/setup python tools:{stages}",
        f"invoke ci --audit-cache --stages {stages}",
    ]
    expected = sum(math.ceil(cfg.timeout(s) / 60) for s in AUDITED) + SETUP_MINUTES
    assert job["timeout-minutes"] == expected
    uses = [s for s in job["steps"] if "uses" in s]
    restored = [s["with"] for s in uses if s["uses"].startswith("actions/cache/restore@")]
    saved = [s for s in uses if s["uses"].startswith("actions/cache/save@")]
    test_jobs = _test_yml()["jobs"]
    for stage in AUDITED:
        [cache] = [s["with"] for s in test_jobs[stage]["steps"] if "stage-cache" in str(s)]
        prefix = cache["restore-keys"]
        assert {"path": cache["path"], "key": cache["key"], "restore-keys": prefix} in restored
        # a poisoned entry must reach the stage's next job: saved under its prefix
        [save] = [s for s in saved if s["with"]["key"].startswith(prefix)]
        assert save["if"] == "failure()" and save["with"]["path"] == cache["path"]


def test_each_stage_job_installs_only_the_tools_its_stage_uses() -> None:
    from ci import tools

    jobs = _test_yml()["jobs"]
    for spec in STAGES:
        if not spec.in_ci:
            continue
        setup = next(s["run"] for s in jobs[spec.name]["steps"] if "run" in s)
        needed = tools.for_stages([spec.name])
        if needed:
            assert setup == f"bash .ci/setup python tools:{spec.name}", spec.name
        else:
            assert "tools" not in setup or setup.endswith(f"tools:{spec.name}"), spec.name
    assert tools.for_stages(["security"]) == ["cargo-audit", "cargo-deny"]
    assert tools.for_stages(["lint"]) == []
