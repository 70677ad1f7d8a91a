"""`invoke release` end to end: the real release build of trading-system (once per
session, in a temporary clone whose tag points at HEAD), packaging, and publishing
against the local GitHub API server."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import tarfile
from pathlib import Path

import pytest
from fakes.github_api import FakeGitHub
from helpers import ROOT, git, run_invoke

from .release_build import TAG, VERSION, release_env

TOKEN = "ghp_" + secrets.token_hex(18)  # made at run time: no secret in the source
WRONG_TOKEN = "ghp_" + secrets.token_hex(18)
REPO = "acme/trading"
TARGET = next(
    line.split(":", 1)[1].strip()
    for line in subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout.splitlines()
    if line.startswith("host:")
)
ARCHIVE = f"trading-system-{VERSION}-{TARGET}.tar.gz"


def publish_env(workspace: Path, out: Path, api: FakeGitHub, **extra: str) -> dict[str, str]:
    github = {"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": REPO, "CIPIPE_RELEASE__API_URL": api.url}
    return release_env(workspace, out, **{**github, **extra})


def output(r: subprocess.CompletedProcess) -> str:
    return r.stdout + r.stderr


# ---- validation before any build ---------------------------------------------------------
@pytest.mark.parametrize(
    ("tag", "reason"),
    [
        ("1.2.3", "must start with 'v'"),
        ("v1.2", "is not vMAJOR.MINOR.PATCH"),
        ("v1.2.3-", "has an empty pre-release"),
        ("v01.2.3", "has a leading zero in '01'"),
    ],
)
def test_malformed_tags_are_rejected_before_anything_runs(tag, reason, tmp_path: Path) -> None:
    r = run_invoke(["release", "--tag", tag], release_env(ROOT, tmp_path / "out"))
    assert r.returncode == 10, output(r)
    assert r.stderr.strip().startswith(f"error: tag '{tag}' {reason}")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in output(r)
    assert "+ " not in r.stdout  # not even cargo metadata ran
    assert not (tmp_path / "out").exists()


def test_tag_other_than_the_crate_version_is_rejected_before_building(clone, tmp_path) -> None:
    r = run_invoke(["release", "--tag", "v9.9.9", "--no-publish"], release_env(clone, tmp_path))
    assert r.returncode == 10, output(r)
    assert f"error: tag v9.9.9 does not match trading-system's version {VERSION}" in r.stderr
    assert f"tag {TAG} instead" in r.stderr
    assert "+ cargo auditable" not in r.stdout and "Compiling" not in output(r)
    assert not (tmp_path / "release").exists()


def test_missing_token_is_one_clear_line_before_building(clone, tmp_path: Path) -> None:
    env = release_env(clone, tmp_path / "out", GITHUB_REPOSITORY=REPO)
    r = run_invoke(["release", "--tag", TAG], env)
    assert r.returncode == 10, output(r)
    lines = r.stderr.strip().splitlines()
    assert lines == [
        "error: GITHUB_TOKEN is not set: export a token with 'contents: write' on the "
        "repository to publish, or pass --no-publish"
    ]
    assert "+ cargo auditable" not in r.stdout
    # only the log of the checks was written: nothing built or packaged
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["release.log"]
    assert "FAIL GITHUB_TOKEN is not set" in (tmp_path / "out" / "release.log").read_text()


def test_dry_run_on_the_reference_workspace_prints_the_plan_and_touches_nothing(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    env = release_env(ROOT, out, GITHUB_TOKEN=TOKEN, GITHUB_REPOSITORY=REPO)
    # this checkout has no release tag (and may have local edits): a trial
    r = run_invoke(["release", "--tag", TAG, "--dry-run", "--allow-dirty"], env)
    text = output(r)
    assert r.returncode == 0, text
    assert f"release trading-system {TAG} for {TARGET}" in text
    assert f"ok   trading-system {VERSION} matches the tag" in text
    assert "cargo auditable build --release --locked -p trading-system --bin trading-system" in text
    assert f"publish    release {TAG} on {REPO} via https://api.github.com" in text
    assert "dry run: nothing built, written or published" in text
    assert "+ cargo auditable" not in text and "+ cargo install --locked" not in text
    assert not out.exists()
    assert TOKEN not in text


def test_dry_run_of_the_tagged_clone_passes_every_check(clone, tmp_path: Path) -> None:
    r = run_invoke(
        ["release", "--tag", TAG, "--dry-run", "--no-publish"], release_env(clone, tmp_path)
    )
    assert r.returncode == 0, output(r)
    assert f"ok   tag {TAG} points at HEAD" in r.stdout and "ok   work tree clean" in r.stdout
    assert "FAIL" not in r.stdout and "warn" not in r.stdout


def test_dirty_clone_is_refused_then_allowed_with_a_warning(clone, tmp_path: Path) -> None:
    scratch = clone / "scratch.txt"
    scratch.write_text("local edit\n")
    try:
        env = release_env(clone, tmp_path)
        r = run_invoke(["release", "--tag", TAG, "--dry-run", "--no-publish"], env)
        assert r.returncode == 10
        assert "uncommitted changes (?? scratch.txt)" in r.stderr
        assert "--allow-dirty" in r.stderr
        r = run_invoke(["release", "--tag", TAG, "--dry-run", "--no-publish", "--allow-dirty"], env)
        assert r.returncode == 0 and "warn the work tree has uncommitted changes" in r.stdout
    finally:
        scratch.unlink()


# ---- the build ---------------------------------------------------------------------------
def test_release_binary_is_stripped_and_carries_its_dependency_list(built, tmp_path) -> None:
    out: Path = built["out"] / "release"
    manifest = built["manifest"]
    binary = out / manifest["binary"]["path"]
    assert manifest["binary"]["sha256"] == hashlib.sha256(binary.read_bytes()).hexdigest()
    described = subprocess.run(["file", "-b", str(binary)], capture_output=True, text=True).stdout
    assert "ELF" in described and ", stripped" in described, described
    sections = subprocess.run(["readelf", "-S", "-W", str(binary)], capture_output=True, text=True)
    assert ".symtab" not in sections.stdout and ".dep-v0" in sections.stdout
    # The embedded list is what `cargo audit bin` reads, years later, without the lockfile.
    db = make_advisory_db(tmp_path / "db", package="axum")
    audit = subprocess.run(
        ["cargo", "audit", "--db", str(db), "--no-fetch", "--json", "bin", str(binary)],
        capture_output=True,
        text=True,
    )
    report = json.loads(audit.stdout)
    assert report["lockfile"]["dependency-count"] > 100
    assert [v["advisory"]["package"] for v in report["vulnerabilities"]["list"]] == ["axum"]


def test_archive_layout_checksums_and_manifest(built) -> None:
    out: Path = built["out"] / "release"
    manifest = built["manifest"]
    assert (manifest["tag"], manifest["version"], manifest["target"]) == (TAG, VERSION, TARGET)
    assert manifest["dirty"] is False and manifest["published"] is None
    assert manifest["tools"]["cargo-auditable"] and manifest["tools"]["rustc"]
    (archive,) = manifest["archives"]
    assert archive["name"] == ARCHIVE
    with tarfile.open(out / archive["path"]) as tar:
        names = {m.name: m for m in tar.getmembers()}
    top = ARCHIVE.removesuffix(".tar.gz")
    assert sorted(names) == [
        top,
        *(f"{top}/{n}" for n in ("LICENSE-APACHE", "LICENSE-MIT", "README.md", "trading-system")),
    ]
    assert names[f"{top}/trading-system"].mode == 0o755
    assert names[f"{top}/trading-system"].size == manifest["binary"]["size"]
    dist = out / "dist"
    assert sorted(p.name for p in dist.iterdir()) == ["SHA256SUMS", ARCHIVE]
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=dist, capture_output=True, text=True
    )
    assert check.returncode == 0 and check.stdout.strip() == f"{ARCHIVE}: OK"


def test_rebuilding_the_same_tag_gives_identical_archive_bytes(built, clone, tmp_path) -> None:
    r = run_invoke(["release", "--tag", TAG, "--no-publish"], release_env(clone, tmp_path))
    assert r.returncode == 0, output(r)
    again = tmp_path / "release" / "dist" / ARCHIVE
    assert again.read_bytes() == (built["out"] / "release" / "dist" / ARCHIVE).read_bytes()


# ---- publishing ----------------------------------------------------------------------------
@pytest.fixture
def api():
    with FakeGitHub(TOKEN, (REPO,)) as server:
        yield server


def _writes(api: FakeGitHub) -> list[str]:
    return [f"{r.method} {r.path}" for r in api.log if r.method != "GET"]


def test_publish_creates_once_uploads_each_asset_and_a_rerun_changes_nothing(
    built, clone, api, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    api.fail("POST", r"/releases$", 502)  # transient: retried, then 201
    r = run_invoke(["release", "--tag", TAG], publish_env(clone, out, api))
    first = output(r)
    assert r.returncode == 0, first
    assert "github: 502" in first and "attempt 2/4" in first
    (release,) = api.releases(REPO)
    assert (release["tag_name"], release["prerelease"], release["draft"]) == (TAG, False, False)
    assert sorted(a["name"] for a in release["assets"].values()) == ["SHA256SUMS", ARCHIVE]
    assert len(api.requests("POST", r"^/uploads/")) == 2
    assert f"verified {ARCHIVE}: " in first
    manifest = json.loads((out / "release" / "manifest.json").read_text())
    assert manifest["published"]["created"] is True
    assert manifest["published"]["uploaded"] == [ARCHIVE, "SHA256SUMS"]

    # Acceptance: download every asset and let sha256sum check them.
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for asset in release["assets"].values():
        (downloads / asset["name"]).write_bytes(api.state.blobs[asset["id"]])
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=downloads, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == f"{ARCHIVE}: OK"

    writes = _writes(api)
    r = run_invoke(["release", "--tag", TAG], publish_env(clone, out, api))
    assert r.returncode == 0, output(r)
    assert _writes(api) == writes  # nothing created, uploaded or deleted
    assert f"published {TAG} to {REPO}: nothing to change" in r.stdout
    assert len(api.releases(REPO)) == 1
    assert (
        json.loads((out / "release" / "manifest.json").read_text())["published"]["created"] is False
    )


def test_prerelease_tag_publishes_a_prerelease(clone, api, tmp_path: Path) -> None:
    # a clone whose crate version is a release candidate, tagged accordingly
    rc_clone = tmp_path / "rc"
    git(ROOT, "clone", "-q", str(clone), str(rc_clone))
    cargo_toml = rc_clone / "Cargo.toml"
    cargo_toml.write_text(
        cargo_toml.read_text().replace(f'version = "{VERSION}"', f'version = "{VERSION}-rc.1"', 1)
    )
    r = run_invoke(
        ["release", "--tag", f"{TAG}-rc.1", "--dry-run", "--allow-dirty"],
        publish_env(rc_clone, tmp_path / "out", api),
    )
    assert r.returncode == 0, output(r)
    assert "prerelease: yes" in r.stdout and f"publish    pre-release {TAG}-rc.1" in r.stdout


def test_the_token_never_appears_in_output_or_any_written_file(
    built, clone, api, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    r = run_invoke(["release", "--tag", TAG], publish_env(clone, out, api))
    assert r.returncode == 0, output(r)
    assert TOKEN not in output(r)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"manifest.json", "release.log", "SHA256SUMS", ARCHIVE}
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path
    # it was really sent, and only in the Authorization header
    assert all(r.authorization == f"Bearer {TOKEN}" for r in api.log if "/downloads/" not in r.path)
    assert not any(TOKEN in (r.path + str(r.query)) for r in api.log)


def test_wrong_token_is_explained_in_one_line(built, clone, api, tmp_path: Path) -> None:
    env = publish_env(clone, tmp_path, api, GITHUB_TOKEN=WRONG_TOKEN)
    r = run_invoke(["release", "--tag", TAG], env)
    assert r.returncode == 12, output(r)
    assert r.stderr.strip().splitlines() == [
        f"error: GitHub rejected the token while trying to look up the release {TAG} "
        "(401 Bad credentials): GITHUB_TOKEN is invalid or expired; set a valid token"
    ]
    assert WRONG_TOKEN not in output(r)


def make_advisory_db(db: Path, package: str) -> Path:
    """A one-advisory RustSec database marking every version of `package` vulnerable."""
    folder = db / "crates" / package
    folder.mkdir(parents=True)
    (folder / "RUSTSEC-2099-0002.md").write_text(
        "```toml\n[advisory]\n"
        f'id = "RUSTSEC-2099-0002"\npackage = "{package}"\ndate = "2099-01-01"\n'
        'url = "https://example.invalid/RUSTSEC-2099-0002"\n\n'
        '[versions]\npatched = [">= 99.0.0"]\n```\n\n'
        "# Test advisory\n\nNot a real vulnerability: marks the release binary's dependency.\n"
    )
    git(db, "init", "-q")
    git(db, "add", "-A")
    git(db, "commit", "-qm", "test advisory database")
    return db
