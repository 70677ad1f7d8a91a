"""`invoke deploy.staging` for real: the release binary in an image, pushed to a real
registry, deployed with compose on localhost over a real SSH server, checked, rolled back.
The tests of this module share one staging environment and run in order: a dry run on
an empty host, a good release, two broken ones (each rolled back), one whose e2e fails."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from fakes.slack_webhook import FakeSlack
from helpers import ROOT

from ci import settings as settings_mod
from ci.services.base import port_in_use
from deploy.record import promotion_verdict

from .cleanup import containers, remove_images
from .conftest import Staging
from .sshd import free_port


def one_error_line(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in r.stdout + r.stderr
    return lines[0]


def deployments(staging: Staging) -> list[dict]:
    with sqlite3.connect(staging.root / "history.sqlite3") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM deployments ORDER BY started_at")]


def no_secret_anywhere(staging: Staging, slack, *runs) -> None:
    text = staging.every_output(*runs)
    for value in staging.secrets(slack):
        assert value not in text, f"a planted secret leaked: {value[:6]}…"


def test_dry_run_probes_everything_and_changes_nothing(staging: Staging, manifest, slack) -> None:
    r = staging.deploy(staging.env(slack), "--dry-run", "--manifest", str(manifest))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "deploy trading-system" in r.stdout and "nothing deployed yet" in r.stdout
    assert f"push to {staging.registry}" in r.stdout
    assert "on failure: stop the new release (no earlier good release to restore)" in r.stdout
    assert "dry run: nothing built, pushed or changed" in r.stdout
    assert containers(staging.project) == []
    assert staging.release_env() is None and slack.messages == []
    no_secret_anywhere(staging, slack, r)


@pytest.fixture(scope="module")
def deployed(staging: Staging, manifest: Path) -> dict:
    """The module's good release: one full deploy (the later tests break it)."""
    with FakeSlack() as slack:
        r = staging.deploy(staging.env(slack), "--manifest", str(manifest))
        return {"run": r, "messages": list(slack.messages), "slack": slack}


def test_full_deploy_runs_the_pushed_digest_and_passes_e2e(
    staging: Staging, manifest, deployed
) -> None:
    r, slack = deployed["run"], deployed["slack"]
    assert r.returncode == 0, r.stdout + r.stderr
    assert "staging deployed" in r.stdout

    # the digest the registry serves for the version tag is the one running on the host
    version = json.loads(manifest.read_text())["version"]
    head = requests.head(
        f"http://{staging.registry}/v2/trading-system/manifests/{version}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=10,
    )
    pushed = head.headers["Docker-Content-Digest"]
    assert f"{staging.registry}/trading-system@{pushed}" in staging.running_digests()
    assert staging.release_env()["APP_IMAGE"] == f"{staging.registry}/trading-system@{pushed}"
    assert requests.get(f"{staging.url}/health", timeout=5).status_code == 200

    # e2e green against it, restart survival included (not skipped)
    e2e = json.loads((staging.out / "e2e.json").read_text())
    assert e2e["status"] == "passed" and e2e["outputs"]["suite"] == "e2e", e2e
    junit = (staging.out / "e2e" / "junit.xml").read_text()
    assert "test_the_market_survives_a_restart" in junit and "<skipped" not in junit

    result = json.loads((staging.out / "staging.json").read_text())
    assert result["status"] == "passed"
    assert [c["name"] for c in result["checks"]] == [
        "plan",
        "build",
        "push",
        "deploy",
        "health",
        "smoke",
        "e2e",
    ]
    [dep] = deployments(staging)
    assert (dep["environment"], dep["version"], dep["digest"]) == ("staging", version, pushed)
    assert dep["outcome"] == "succeeded" and dep["ended_at"]
    cfg = settings_mod.load(Path(__file__).resolve().parents[3], staging.env(slack))
    assert promotion_verdict(cfg, version, pushed).ok
    assert not promotion_verdict(cfg, version, "sha256:" + "0" * 64).ok
    messages = deployed["messages"]
    assert len(messages) == 2, messages
    assert f"{version} deployed to staging" in messages[0]
    assert "e2e passed" in messages[1]
    no_secret_anywhere(staging, slack, r)


def _good_digest(staging: Staging) -> str:
    return staging.release_env()["RELEASE_DIGEST"]


def test_unhealthy_release_is_rolled_back(staging: Staging, manifest, slack, deployed) -> None:
    good = _good_digest(staging)
    env = staging.env(
        slack,
        CIPIPE_STAGING__SERVICE_ENV="TS_FAULT_UNHEALTHY=1",
        CIPIPE_STAGING__HEALTH_TIMEOUT="8",
    )
    r = staging.deploy(env, "--manifest", str(manifest))
    assert r.returncode == 24, r.stdout + r.stderr
    line = one_error_line(r)
    assert "health check failed" in line and "fault injected" in line
    assert "rolled back" in line and "serves again" in line
    # the previous release serves again: its digest, its (fault-free) environment
    assert _good_digest(staging) == good
    assert any(d.endswith(good) for d in staging.running_digests())
    assert (staging.remote / "app.env").read_text().strip() == ""
    assert requests.get(f"{staging.url}/health", timeout=5).status_code == 200
    assert len(slack.messages) == 2, slack.messages
    assert "staging deploy of" in slack.messages[0] and "fault injected" in slack.messages[0]
    assert "rolled back to" in slack.messages[1]
    dep = deployments(staging)[-1]
    assert dep["outcome"] == "rolled_back" and dep["recovered_at"] >= dep["ended_at"]
    no_secret_anywhere(staging, slack, r)


def test_binary_that_exits_at_start_is_rolled_back_without_waiting(
    staging: Staging, manifest: Path, slack, tmp_path: Path, deployed
) -> None:
    good = _good_digest(staging)
    broken = tmp_path / "release" / "manifest.json"
    (broken.parent / "bin").mkdir(parents=True)
    binary = broken.parent / "bin" / "trading-system"
    shutil.copyfile("/bin/false", binary)
    binary.chmod(0o755)
    data = json.loads(manifest.read_text())
    data["version"] = data["version"] + "-broken"
    data["binary"]["sha256"] = hashlib.sha256(binary.read_bytes()).hexdigest()
    broken.write_text(json.dumps(data))
    env = staging.env(slack, CIPIPE_STAGING__HEALTH_TIMEOUT="120")
    start = time.monotonic()
    r = staging.deploy(env, "--manifest", str(broken))
    assert r.returncode == 24, r.stdout + r.stderr
    line = one_error_line(r)
    assert "keeps exiting" in line or "exited" in line, line
    assert time.monotonic() - start < 110  # the crash was seen, not the 120 s deadline
    assert any(d.endswith(good) for d in staging.running_digests())
    assert requests.get(f"{staging.url}/health", timeout=5).status_code == 200
    assert len(slack.messages) == 2 and "rolled back to" in slack.messages[1]


def test_e2e_failure_blocks_production_and_keeps_the_release(
    staging: Staging, manifest, slack, tmp_path: Path, deployed
) -> None:
    suite = tmp_path / "suite"
    shutil.copytree(Path(__file__).resolve().parents[3] / "deploy" / "e2e", suite)
    (suite / "test_planted.py").write_text(
        "def test_planted_failure():\n    assert 1 + 1 == 3, 'planted e2e failure'\n"
    )
    env = staging.env(slack, CIPIPE_E2E__SUITE=str(suite))
    r = staging.deploy(env, "--manifest", str(manifest))
    assert r.returncode == 26, r.stdout + r.stderr
    line = one_error_line(r)
    assert "production is blocked" in line and "test_planted_failure" in line
    digest = _good_digest(staging)  # the new release stays: it is healthy
    assert any(d.endswith(digest) for d in staging.running_digests())
    version = json.loads(manifest.read_text())["version"]
    cfg = settings_mod.load(Path(__file__).resolve().parents[3], env)
    verdict = promotion_verdict(cfg, version, digest)
    assert not verdict.ok and "failed" in verdict.reason
    assert "e2e failed" in slack.messages[-1] and "BLOCKED" in slack.messages[-1]


def test_ctrl_c_mid_deploy_restores_the_good_release_and_stops_what_it_started(
    staging: Staging, manifest, slack, tmp_path: Path, deployed
) -> None:
    port = free_port()  # no registry there: the deploy starts (and must stop) its own
    env = staging.env(
        slack,
        CIPIPE_STAGING__SERVICE_ENV="TS_FAULT_UNHEALTHY=1",
        CIPIPE_STAGING__HEALTH_TIMEOUT="600",
        CIPIPE_STAGING__REGISTRY=f"127.0.0.1:{port}",
        CIPIPE_STAGING__REGISTRY_DIR=str(tmp_path / "registry"),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "deploy.staging", "--manifest", str(manifest)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # until the broken release answers
            try:
                if requests.get(f"{staging.url}/health", timeout=2).status_code == 503:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("the broken release never came up")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        remove_images(f"127.0.0.1:{port}/")
    assert proc.returncode == 130, out + err
    assert err.strip().splitlines()[-1].startswith("error: interrupted")
    assert "Traceback" not in out + err
    assert requests.get(f"{staging.url}/health", timeout=5).status_code == 200
    assert (staging.remote / "app.env").read_text().strip() == ""
    assert not port_in_use(port)  # the registry it started is gone
    assert "rolled back to" in slack.messages[-1]
    dep = deployments(staging)[-1]
    assert dep["outcome"] == "rolled_back" and "interrupted" in dep["details"]
