"""The release plan: checks and steps from facts, shown before anything happens."""

from __future__ import annotations

import secrets
from dataclasses import replace
from pathlib import Path

import pytest

from ci.release.config import Options, ReleaseConfig
from ci.release.plan import Facts, find_documents, make_plan, show
from ci.release.repo import GitState
from ci.release.version import Crate, parse_tag
from ci.settings import load

HEAD = "c0ffee" + "0" * 34
TOKEN = "ghp_" + secrets.token_hex(18)  # made at run time: no secret in the source


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    crate = tmp_path / "crates" / "svc"
    crate.mkdir(parents=True)
    (crate / "Cargo.toml").write_text("[package]\n")
    (crate / "README.md").write_text("svc\n")
    (tmp_path / "README.md").write_text("workspace\n")
    (tmp_path / "LICENSE-MIT").write_text("MIT\n")
    (tmp_path / "LICENSE-APACHE").write_text("Apache\n")
    return tmp_path


def _facts(ws: Path, tag: str = "v1.2.3", **git: object) -> Facts:
    crate = Crate("svc", "1.2.3", ws / "crates" / "svc" / "Cargo.toml", "svc", "MIT OR Apache-2.0")
    state = GitState(HEAD, HEAD, (), 1_700_000_000, 1_700_000_000)
    return Facts(
        tag=parse_tag(tag),
        crate=crate,
        workspace=ws,
        target_dir=ws / "target",
        git=replace(state, **git),  # type: ignore[arg-type]
        host="x86_64-unknown-linux-gnu",
        rustc="1.95.0",
        auditable="0.7.7",
    )


def _cfg(ws: Path, **env: str) -> ReleaseConfig:
    return ReleaseConfig.from_settings(load(ws, {"GITHUB_REPOSITORY": "acme/svc", **env}))


def test_config_defaults_and_environment(ws: Path) -> None:
    cfg = _cfg(ws, GITHUB_TOKEN=TOKEN, CIPIPE_RELEASE__BACKOFF="0.5", CIPIPE_RELEASE__STRIP="none")
    assert cfg.api_url == "https://api.github.com"
    assert (cfg.repository, cfg.strip, cfg.conflict) == ("acme/svc", "none", "refuse")
    assert (cfg.backoff.attempts, cfg.backoff.first) == (4, 0.5)
    assert cfg.token == TOKEN and TOKEN not in repr(cfg)
    own = _cfg(ws, GITHUB_API_URL="https://ghe.example/api/v3", CIPIPE_RELEASE__REPOSITORY="o/r")
    assert (own.api_url, own.repository) == ("https://ghe.example/api/v3", "o/r")


def test_clean_tagged_release_plan(ws: Path) -> None:
    plan = make_plan(Options("v1.2.3"), _cfg(ws, GITHUB_TOKEN=TOKEN), _facts(ws), ws / "out")
    assert plan.failures == []
    assert [c.status for c in plan.checks] == ["ok"] * 6
    assert plan.archive == ws / "out" / "dist" / "svc-1.2.3-x86_64-unknown-linux-gnu.tar.gz"
    assert [d.name for d in plan.documents] == ["README.md", "LICENSE-APACHE", "LICENSE-MIT"]
    assert plan.documents[0] == ws / "crates" / "svc" / "README.md"  # the crate's own first
    assert (plan.epoch, plan.epoch_source) == (1_700_000_000, "the tag's commit time")
    text = "\n".join(show(plan, "0.7.7"))
    assert TOKEN not in text
    assert (
        "release svc v1.2.3 for x86_64-unknown-linux-gnu (commit c0ffee000000; prerelease: no)"
        in text
    )
    assert "cargo auditable build --release --locked -p svc --bin svc" in text
    assert "CARGO_PROFILE_RELEASE_STRIP=symbols" in text
    assert "svc, README.md, LICENSE-APACHE, LICENSE-MIT (mtime 2023-11-14T22:13:20Z" in text
    assert "publish    release v1.2.3 on acme/svc via https://api.github.com" in text
    assert text.isascii()


def test_every_failed_check_is_listed_with_its_fix(ws: Path) -> None:
    facts = _facts(ws, "v2.0.0-rc.1", tag_commit=None, changes=(" M src/main.rs",))
    plan = make_plan(Options("v2.0.0-rc.1"), _cfg(ws), facts, ws / "out")
    failures = plan.failures
    assert len(failures) == 4, failures
    assert "does not match svc's version 1.2.3" in failures[0]
    assert "tag v2.0.0-rc.1 does not exist" in failures[1]
    assert "uncommitted changes" in failures[2]
    assert "GITHUB_TOKEN is not set" in failures[3] and "--no-publish" in failures[3]
    assert "prerelease: yes" in show(plan, "0.7.7")[0]


def test_no_publish_needs_no_token_and_allow_dirty_warns(ws: Path) -> None:
    facts = _facts(ws, tag_commit="f" * 40, changes=("?? scratch.rs",))
    plan = make_plan(Options("v1.2.3", allow_dirty=True, publish=False), _cfg(ws), facts, ws / "o")
    assert plan.failures == []
    assert [c.status for c in plan.checks].count("warn") == 2
    assert "publish    skipped: --no-publish" in "\n".join(show(plan, "0.7.7"))
    assert plan.epoch_source == "HEAD's commit time"  # the tag is elsewhere: HEAD is built


def test_explicit_target_goes_to_its_own_folder_and_zip(ws: Path) -> None:
    opts = Options("v1.2.3", target="x86_64-pc-windows-msvc", publish=False)
    plan = make_plan(opts, _cfg(ws), _facts(ws), ws / "out")
    assert plan.build.output == ws / "target" / "x86_64-pc-windows-msvc" / "release" / "svc.exe"
    assert plan.archive.name == "svc-1.2.3-x86_64-pc-windows-msvc.zip"
    assert plan.staged_binary == ws / "out" / "bin" / "svc.exe"


def test_a_target_without_its_standard_library_is_a_precondition(ws: Path) -> None:
    opts = Options("v1.2.3", target="aarch64-unknown-linux-gnu", publish=False)
    facts = replace(_facts(ws), target_std=False)
    assert make_plan(opts, _cfg(ws), facts, ws / "o").failures == [
        "the standard library for target aarch64-unknown-linux-gnu is not installed: "
        "rustup target add aarch64-unknown-linux-gnu (and a linker for it)"
    ]
    assert make_plan(opts, _cfg(ws), replace(facts, target_std=None), ws / "o").failures == []


def test_missing_readme_and_licence_are_preconditions(tmp_path: Path) -> None:
    crate = Crate("svc", "1.0.0", tmp_path / "Cargo.toml", "svc", "MIT")
    docs, problems = find_documents(crate, tmp_path)
    assert docs == []
    assert "no README to ship" in problems[0]
    assert "no licence file to ship (Cargo.toml declares 'MIT')" in problems[1]


def test_declared_licence_file_wins(ws: Path) -> None:
    own = ws / "crates" / "svc" / "COPYING.txt"
    own.write_text("own licence\n")
    crate = Crate("svc", "1.0.0", ws / "crates" / "svc" / "Cargo.toml", "svc", license_file=own)
    docs, problems = find_documents(crate, ws)
    assert problems == [] and docs[1:] == [own]


def test_a_main_build_is_versioned_apart_from_releases_and_never_published(ws: Path) -> None:
    from ci.release.version import is_snapshot, snapshot_tag

    tag = snapshot_tag("1.2.3", HEAD)
    assert tag.version == "1.2.3-main.gc0ffee000000" and tag.prerelease
    assert is_snapshot(tag.version) and not is_snapshot("1.2.3") and not is_snapshot("1.2.3-rc.1")
    facts = replace(_facts(ws), tag=tag, git=GitState(HEAD, None, (), 1_700_000_000, None))
    plan = make_plan(Options("", publish=False, snapshot=True), _cfg(ws), facts, ws / "out")
    assert plan.failures == [], plan.failures
    assert plan.archive.name == "svc-1.2.3-main.gc0ffee000000-x86_64-unknown-linux-gnu.tar.gz"
    assert "publish    skipped: --no-publish" in "\n".join(show(plan, "0.7.7"))
    published = make_plan(Options("", snapshot=True), _cfg(ws, GITHUB_TOKEN=TOKEN), facts, ws)
    assert any("never published" in f for f in published.failures)
    dirty = replace(facts, git=GitState(HEAD, None, (" M a.rs",), 1_700_000_000, None))
    plan = make_plan(Options("", publish=False, snapshot=True), _cfg(ws), dirty, ws / "out")
    assert len(plan.failures) == 1 and "uncommitted changes" in plan.failures[0]
