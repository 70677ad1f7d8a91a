"""A push to main run by a local Actions runner (act, host mode): the trend jobs record
into the history store, and the commit's unpublished main build goes to staging over
SSH (the real sshd and registry of the deploy tests) and through e2e.

The PR run (tests/e2e/test_workflows_act.py) proves the whole test.yml graph green; here
the graph is reduced to the jobs a push to main adds or changes (bench and coverage record
their trend, the report records the run, release-build, staging), so the run stays short.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import git

from ..act import Runner, copy_repository, edit_workflow, only_jobs, push_event, runner_env
from .cleanup import compose_down, remove_images
from .sshd import Sshd, free_port

pytestmark = pytest.mark.e2e

JOBS = ("bench", "coverage", "release-build", "staging", "report")


def test_a_push_to_main_records_the_trend_and_reaches_staging(
    tmp_path: Path, sshd: Sshd, registry: str
) -> None:
    repo = copy_repository(tmp_path / "repo")
    before = git(repo, "rev-parse", "HEAD").strip()
    edit_workflow(repo, "test.yml", only_jobs(*JOBS))
    head = git(repo, "rev-parse", "HEAD").strip()
    project = f"stgact{head[:8]}"
    port = free_port()
    runner = Runner(
        repo,
        tmp_path / "act",
        env=runner_env(
            CIPIPE_STAGING__SSH_PORT=str(sshd.port),
            CIPIPE_STAGING__KNOWN_HOSTS=str(sshd.known_hosts),
            CIPIPE_STAGING__REMOTE_DIR=str(tmp_path / "remote"),
            CIPIPE_STAGING__PROJECT=project,
            CIPIPE_STAGING__PORT=str(port),
            CIPIPE_STAGING__BIND="127.0.0.1",
            CIPIPE_STAGING__HEALTH_TIMEOUT="60",
        ),
        secrets={"STAGING_SSH_KEY": sshd.client_key.read_text()},
        vars={
            "STAGING_HOST": "127.0.0.1",
            "STAGING_USER": sshd.user,
            "STAGING_REGISTRY": registry,
        },
    )
    try:
        run = runner.run("push", "test.yml", push_event("refs/heads/main", before, head))
    finally:
        compose_down(project)
        remove_images(f"{registry}/")
    for job in JOBS:
        assert run.result(job) == "success", f"{job}: {run.result(job)}\n{run.log[-6000:]}"
    # the main build: never published, versioned apart from releases
    manifest = json.loads((runner.artifacts() / "release-linux" / "manifest.json").read_text())
    assert manifest["version"] == f"0.1.0-main.g{head[:12]}", manifest["version"]
    staged = json.loads((runner.artifacts() / "pipeline-staging" / "staging.json").read_text())
    assert staged["status"] == "passed", staged["summary"]
    assert manifest["version"] in json.dumps(staged)
    # the trend: bench and coverage of this commit are in the history the next run restores
    entries = {json.loads(p.read_text())["key"]: p.parent for p in runner.cache.glob("*/meta.json")}
    assert any(k.endswith("-bench") for k in entries), sorted(entries)
    report_key = next(k for k in entries if k.endswith("-report"))
    report_export = entries[report_key] / "files" / "0"
    records = [json.loads(line) for line in report_export.read_text().splitlines() if line]
    kinds = {r.get("kind") for r in records if head in json.dumps(r)}
    assert {"bench", "coverage"} <= kinds, kinds
    assert sshd.client_key.read_text().splitlines()[1] not in run.log
