"""Two approvals means two authenticated people, for real: throwaway SSH keys made by
ssh-keygen, approvals signed and verified by ssh-keygen through `invoke deploy.approve`
and `invoke deploy.production`, versions pushed to a real Distribution registry, the
history store on SQLite, GitHub's run reviews from the local fake API.

The production run has no HAProxy to talk to (its socket does not exist): exit 27
("does not answer") means every approval check passed, exit 28 that the approvals were
refused. Each test is one route by which one person with one key tried to reach two
approvals; the records an attacker forges carry the fields the old, unsigned approvals
had, so these tests also show what the old code let through.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from fakes.github_api import FakeGitHub
from fakes.github_deployments import add_ref, add_run, approve_run

from ci.history import current_context, open_store
from ci.history.context import GitState

ROOT = Path(__file__).resolve().parents[2]
V1, V2 = "1.0.0", "1.0.1"
NS = "production-approval"
GIT = GitState(commit="c" * 40, branch="main", dirty=False)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def push(registry: str, version: str, content: str) -> str:
    """Push a minimal image manifest (one config blob, no layers) as trading-system:V;
    its digest."""
    base = f"http://{registry}/v2/trading-system"
    blob = json.dumps({"architecture": "amd64", "os": "linux", "note": content}).encode()
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    start = requests.post(f"{base}/blobs/uploads/", timeout=10)
    assert start.status_code == 202, start.text
    location = start.headers["Location"]
    location = location if location.startswith("http") else f"http://{registry}{location}"
    sep = "&" if "?" in location else "?"
    put = requests.put(
        f"{location}{sep}digest={digest}",
        data=blob,
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    )
    assert put.status_code == 201, put.text
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": len(blob),
            "digest": digest,
        },
        "layers": [],
    }
    resp = requests.put(
        f"{base}/manifests/{version}",
        data=json.dumps(manifest),
        headers={"Content-Type": manifest["mediaType"]},
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    return str(resp.headers["Docker-Content-Digest"])


class Team:
    """Keys, the approvers file, the registry and the store of one test."""

    def __init__(self, root: Path, registry: str) -> None:
        self.root = root
        self.registry = registry
        self.keys: dict[str, Path] = {}
        self.approvers = root / "approvers"
        self.home = root / "home"
        self.home.mkdir()

    def key(self, name: str) -> Path:
        path = self.root / "keys" / name
        path.parent.mkdir(exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
            check=True,
        )
        self.keys[name] = path
        return path

    def allow(self, principal: str, key: str) -> None:
        pub = " ".join((Path(f"{self.keys[key]}.pub").read_text().split())[:2])
        with self.approvers.open("a") as fh:
            fh.write(f"{principal} {pub}\n")

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CIPIPE_", "GITHUB_", "DEPLOY_", "GIT_"))
        }
        env.update(
            HOME=str(self.home),
            GIT_CONFIG_GLOBAL=str(self.home / "gitconfig"),
            CIPIPE_OUTPUT_DIR=str(self.root / "out"),
            CIPIPE_HISTORY__PATH=str(self.root / "history.sqlite3"),
            CIPIPE_PRODUCTION__REGISTRY=self.registry,
            CIPIPE_PRODUCTION__REPOSITORY="trading-system",
            CIPIPE_PRODUCTION__STATE_DIR=str(self.root / "state"),
            CIPIPE_PRODUCTION__HAPROXY__SOCKET=str(self.root / "nowhere.sock"),
            CIPIPE_PRODUCTION__REQUIRE_E2E="false",
            CIPIPE_PRODUCTION__CHECK_STAGING="false",
            CIPIPE_PRODUCTION__APPROVERS_FILE=str(self.approvers),
            PRODUCTION_DATABASE_URL="postgresql://u:p@127.0.0.1:1/db",
            PRODUCTION_REDIS_URL="redis://127.0.0.1:1/0",
        )
        env.update(extra)
        return env

    def invoke(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=ROOT,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def approve(self, version: str, key: str, **extra: str) -> subprocess.CompletedProcess[str]:
        # DEPLOY_APPROVER was the old code's approver identity: set to the key owner's
        # name so that the old code walks the honest path too (the new code ignores it).
        env = {"DEPLOY_APPROVER": f"{key}@example.com", **extra}
        return self.invoke(
            "deploy.approve", "--version", version, DEPLOY_SIGNING_KEY=str(self.keys[key]), **env
        )

    def production(self, version: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return self.invoke("deploy.production", "--version", version, **extra)

    def settings(self):
        from ci import settings as settings_mod

        return settings_mod.load(ROOT, self.env())

    def store(self):
        return open_store(self.settings())

    def forge(self, meta: dict) -> None:
        """Write an approval record straight into the store, as anyone with the store's
        credential can."""
        now = datetime.now(UTC)
        run = current_context(self.settings(), "approval", meta=meta, now=now, git=GIT)
        with self.store() as store:
            store.record(run.finished("approved", at=now))

    def filed(self) -> list[dict]:
        with self.store() as store:
            return [dict(r.run.meta) for r in store.runs("approval")]


def last(r: subprocess.CompletedProcess[str]) -> str:
    return (r.stdout + r.stderr).strip().splitlines()[-1]


def passed_approvals(r: subprocess.CompletedProcess[str]) -> bool:
    """The run got past every approval check (and then found no HAProxy)."""
    return r.returncode == 27 and "does not answer" in last(r)


def refused(r: subprocess.CompletedProcess[str], *words: str) -> None:
    assert r.returncode == 28, r.stdout + r.stderr
    line = last(r)
    assert "Traceback" not in r.stdout + r.stderr
    for word in words:
        assert word in line, line


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from deploy.config import RegistryTarget
    from deploy.registry import DistributionRegistry, LocalRegistry

    address = f"127.0.0.1:{_free_port()}"
    data = tmp_path_factory.mktemp("registry")
    local = LocalRegistry(address, data)
    with local.running(DistributionRegistry(RegistryTarget(address, "", None, False, data))):
        push(address, V1, "one")
        push(address, V2, "two")
        yield address


@pytest.fixture
def team(tmp_path: Path, registry: str) -> Team:
    t = Team(tmp_path, registry)
    for name in ("alice", "bob"):
        t.key(name)
        t.allow(f"{name}@example.com", name)
    return t


def test_two_people_with_their_own_keys_are_two_approvals(team: Team) -> None:
    r = team.production(V1)
    refused(r, "0 of 2 approvals")
    first = team.approve(V1, "alice")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "as alice@example.com" in last(first) and "1 of 2 approvals" in last(first)
    shown = team.invoke("deploy.approvals", "--version", V1)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "counts: alice@example.com" in shown.stdout and "SSH signature" in shown.stdout
    assert last(shown).startswith("not yet: ") and "1 of 2 approvals" in last(shown)
    second = team.approve(V1, "bob")
    assert "as bob@example.com" in last(second) and "2 of 2 approvals" in last(second)
    r = team.production(V1)
    assert passed_approvals(r), r.stdout + r.stderr
    assert "approved by alice@example.com" in r.stdout and "approved by bob@example.com" in r.stdout
    assert "(SSH signature)" in r.stdout
    # what was signed: this version, its image digest, one deployment request, the time
    [statement, _] = [m["statement"] for m in team.filed()]
    assert f"version: {V1}\n" in statement and "digest: sha256:" in statement
    assert "deployment: " in statement and "approved-at: " in statement


def test_one_key_under_two_names_counts_once(team: Team) -> None:
    """DEPLOY_APPROVER and git's user.email were the approver before: they name nobody now."""
    first = team.approve(V1, "alice", DEPLOY_APPROVER="alice@example.com")
    assert first.returncode == 0, first.stdout + first.stderr
    subprocess.run(
        ["git", "config", "--file", str(team.home / "gitconfig"), "user.email", "eve@example.com"],
        check=True,
    )
    again = team.approve(V1, "alice", DEPLOY_APPROVER="not-alice@example.com")
    refused(again, "alice@example.com has already approved")
    again = team.approve(V1, "alice")  # no DEPLOY_APPROVER: git's user.email, eve
    refused(again, "alice@example.com has already approved")
    refused(team.production(V1), "1 of 2 approvals", "signed by alice@example.com")


def test_a_key_not_in_the_approvers_file_does_not_count(team: Team) -> None:
    team.key("mallory")
    r = team.approve(V1, "mallory")
    refused(r, "does not count", "not in approvers", str(team.approvers))
    assert team.filed() == []


def test_records_forged_into_the_store_count_for_nothing(team: Team) -> None:
    assert team.approve(V1, "alice").returncode == 0
    [real] = team.filed()
    # bob "approves" without bob's key: alice's signed statement under bob's name, and
    # an unsigned record in the old format
    team.forge({**real, "approver": "bob@example.com", "via": "local"})
    team.forge(
        {
            "environment": "production",
            "version": V1,
            "approver": "carol@example.com",
            "via": "local",
        }
    )
    refused(team.production(V1), "1 of 2 approvals", "not a signed approval statement")


def test_approvals_of_another_version_or_digest_do_not_count(team: Team) -> None:
    assert team.approve(V1, "alice").returncode == 0
    assert team.approve(V1, "bob").returncode == 0
    # relabelled as approvals of V2 in the store: the signed statement still says V1
    for meta in team.filed():
        team.forge({**meta, "version": V2})
    refused(team.production(V2), "0 of 2 approvals", f"approves version {V1}")
    # V1's tag pushed again with another image: the signatures name the old digest
    push(team.registry, V1, "one, rebuilt")
    refused(team.production(V1), "0 of 2 approvals", "approves digest sha256:")


def test_an_approval_is_spent_by_the_rollout_that_used_it(team: Team) -> None:
    assert team.approve(V1, "alice").returncode == 0
    assert team.approve(V1, "bob").returncode == 0
    assert passed_approvals(team.production(V1))  # refused later: the request stays open
    request = team.filed()[0].get("request", "")
    # the rollout that used the request ran and ended (here: recorded as it records)
    from deploy.record import DeploymentLog

    log = DeploymentLog(team.settings(), "production", print)
    with team.store() as store:
        digest = store.deployments("production")[-1].digest
    log.finish(log.start(V1, digest, None, {"request": request}), "succeeded", {})
    refused(team.production(V1), "0 of 2 approvals", f"approves deployment {request}")
    # a new deployment of the same image needs new approvals, for a new request
    assert "deployment " in last(team.approve(V1, "alice"))
    assert request not in last(team.approve(V1, "bob"))
    assert passed_approvals(team.production(V1))


def test_an_old_or_foreign_signature_is_not_replayed(team: Team) -> None:
    assert team.approve(V1, "alice").returncode == 0
    [real] = team.filed()
    old = datetime.now(UTC) - timedelta(days=3)
    stamp = old.strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = real.get("statement", "").splitlines(keepends=True)
    stale = "".join(
        line if not line.startswith("approved-at") else f"approved-at: {stamp}\n" for line in lines
    )
    for text, namespace in ((stale, NS), (real.get("statement", ""), "git")):
        sig = subprocess.run(
            ["ssh-keygen", "-q", "-Y", "sign", "-f", str(team.keys["bob"]), "-n", namespace],
            input=text,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        team.forge({**real, "statement": text, "signature": sig, "approver": "bob@example.com"})
    r = team.production(V1)
    refused(
        r,
        "1 of 2 approvals",
        "bob@example.com (older than 86400s",
        "namespace 'production-approval'",
    )


def test_github_reviews_and_signatures_are_never_added(team: Team) -> None:
    assert team.approve(V1, "alice").returncode == 0
    with FakeGitHub() as gh:
        add_ref(gh, "acme/trading", f"v{V1}")  # the release tag the deployment names
        add_run(gh, "acme/trading", "77", f"production rollout of {V1}")
        gh_env = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_RUN_ID": "77",
            "GITHUB_TOKEN": gh.token,
            "GITHUB_REPOSITORY": "acme/trading",
            "CIPIPE_PRODUCTION__GITHUB_API": gh.url,
        }
        # alice's GitHub login beside her signature: one of each, never two
        approve_run(gh, "acme/trading", "77", "alice", "production")
        refused(team.production(V1, **gh_env), "1 of 2 approvals", "never added")
        # the same login on both environments
        approve_run(gh, "acme/trading", "77", "alice", "production-approval")
        refused(team.production(V1, **gh_env), "1 of 2 approvals", "reviewed in this run by alice")
        # a second login on this run: two people through GitHub alone
        approve_run(gh, "acme/trading", "77", "frank", "production")
        r = team.production(V1, **gh_env)
        assert passed_approvals(r), r.stdout + r.stderr
        assert "approved by frank" in r.stdout and "(GitHub review)" in r.stdout
        # the same reviews on a run for another version, or on a run started a year ago
        # (GitHub dates no review: a review is as old as its run), count for nothing
        year = (datetime.now(UTC) - timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
        add_run(gh, "acme/trading", "78", f"production rollout of {V2}")
        add_run(gh, "acme/trading", "79", f"production rollout of {V1}", started_at=year)
        for run in ("78", "79"):
            for login, env in (("alice", "production-approval"), ("frank", "production")):
                approve_run(gh, "acme/trading", run, login, env)
        refused(team.production(V1, **{**gh_env, "GITHUB_RUN_ID": "78"}), f"does not name {V1}")
        r = team.production(V1, **{**gh_env, "GITHUB_RUN_ID": "79"})
        refused(r, "frank (given in run 79, started older than 86400s")


def test_an_approvers_file_giving_one_key_two_names_is_refused(team: Team) -> None:
    assert team.approve(V1, "alice").returncode == 0
    team.allow("alice.second@example.com", "alice")
    r = team.production(V1)
    assert r.returncode == 20 and "one key = one person" in last(r), r.stdout + r.stderr
