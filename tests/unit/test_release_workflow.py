"""Check-mode twin of .github/workflows/release.yml: thin, pinned, least privilege."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
TEXT = WORKFLOW.read_text()
DOC = yaml.safe_load(TEXT)
SETUP_ACTIONS = ("actions/checkout", "dtolnay/rust-toolchain", "actions/setup-python")
HANDOFF = "actions/upload-artifact"  # the Linux release folder, to the staging job


def _jobs() -> dict:
    """The release jobs (the matrix); staging is a call of deploy-staging.yml."""
    return {k: v for k, v in DOC["jobs"].items() if k != "staging"}


def test_runs_on_version_tags_only_on_the_three_platforms() -> None:
    trigger = DOC.get("on", DOC.get(True))  # YAML 1.1 reads a bare `on` as true
    assert trigger == {"push": {"tags": ["v*.*.*"]}}
    (job,) = _jobs().values()
    assert job["strategy"]["matrix"]["os"] == ["ubuntu-latest", "macos-latest", "windows-latest"]
    assert job["strategy"]["fail-fast"] is False  # one platform failing keeps the others


def test_every_action_is_pinned_to_a_full_commit_sha_with_its_version() -> None:
    uses = [(u, c) for u, c in re.findall(r"uses:\s*(\S+)(.*)", TEXT) if not u.startswith("./")]
    assert {u.split("@")[0] for u, _ in uses} == {*SETUP_ACTIONS, HANDOFF}
    for ref, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
        assert comment.strip().startswith("# "), f"{ref}: say which version the SHA is"


def test_least_privilege_and_the_token_only_where_it_is_used() -> None:
    assert DOC["permissions"] == {}
    (job,) = _jobs().values()
    assert job["permissions"] == {"contents": "write"}
    with_token = [s for s in job["steps"] if "GITHUB_TOKEN" in str(s)]
    assert len(with_token) == 1
    assert with_token[0]["env"] == {"GITHUB_TOKEN": "${{ secrets.GITHUB_TOKEN }}"}
    assert "GITHUB_TOKEN" not in str(job.get("env", {}))
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["persist-credentials"] is False


def test_steps_are_setup_then_one_invoke_call_without_expressions_in_scripts() -> None:
    (job,) = _jobs().values()
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert runs[-1] == 'invoke release --tag "$RELEASE_TAG"'
    assert all(len(r.strip().splitlines()) == 1 for r in runs)
    assert all(r.startswith(("invoke ", "python -m pip install")) for r in runs)
    # `${{ }}` inside a script is code injection from a crafted tag name: data goes via env
    assert not any("${{" in r for r in runs)
    assert job["env"]["RELEASE_TAG"] == "${{ github.ref_name }}"
    assert job["defaults"]["run"]["shell"] == "bash"  # the same quoting on Windows


def test_staging_promotes_the_linux_release_binary_after_every_platform_released() -> None:
    (job,) = _jobs().values()
    [handoff] = [s for s in job["steps"] if str(s.get("uses", "")).startswith(HANDOFF)]
    assert handoff["if"] == "matrix.os == 'ubuntu-latest'"
    assert handoff["with"]["name"] == "release-linux"
    assert handoff["with"]["if-no-files-found"] == "error"  # nothing to promote: red
    assert set(handoff["with"]["path"].split()) == {
        "target/pipeline/release/manifest.json",
        "target/pipeline/release/bin/",
    }
    staging = DOC["jobs"]["staging"]
    assert staging["needs"] == "release"
    assert staging["uses"] == "./.github/workflows/deploy-staging.yml"
    assert staging["permissions"] == {"contents": "read"}
    called = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy-staging.yml").read_text())
    declared = called.get("on", called.get(True))["workflow_call"]["secrets"]
    assert set(staging["secrets"]) == set(declared)  # named, never `inherit`
    [deploy] = called["jobs"].values()
    downloads = [s for s in deploy["steps"] if "download-artifact" in str(s.get("uses", ""))]
    assert [d["with"] for d in downloads] == [
        {"name": "release-linux", "path": "target/pipeline/release"}
    ]
    runs = [s["run"] for s in deploy["steps"] if "run" in s]
    assert runs == ["bash .ci/setup python", "invoke deploy.staging"]  # never compiles
