"""Publishing against the local GitHub API server, in-process (no cargo): idempotence,
retries, races between matrix jobs, conflicts and the one-line explanations."""

from __future__ import annotations

import hashlib
import secrets
import threading
from pathlib import Path

import pytest
from fakes.github_api import FakeGitHub
from fakes.github_releases import add_asset

from ci.github.retry import Backoff
from ci.release.checksums import format_sums, parse_sums
from ci.release.errors import PublishError, VerifyFailed
from ci.release.github import GitHubReleases as GitHub
from ci.release.publish import LocalAsset, Publisher

TOKEN = "ghp_" + secrets.token_hex(18)  # made at run time: no secret in the source
WRONG_TOKEN = "ghp_" + secrets.token_hex(18)
REPO = "acme/trading"
TAG = "v1.2.3"


@pytest.fixture
def api():
    with FakeGitHub(TOKEN, (REPO,)) as server:
        yield server


def _asset(tmp_path: Path, name: str, data: bytes) -> LocalAsset:
    path = tmp_path / name
    path.write_bytes(data)
    return LocalAsset(name, path, len(data), hashlib.sha256(data).hexdigest(), "application/gzip")


def _client(api: FakeGitHub, token: str = TOKEN, said: list[str] | None = None) -> GitHub:
    sink = said if said is not None else []
    return GitHub(api.url, REPO, token, backoff=Backoff(attempts=4, first=0.01), say=sink.append)


def _publish(api: FakeGitHub, assets: list[LocalAsset], *, conflict="refuse", said=None):
    said = said if said is not None else []
    client = _client(api, said=said)
    try:
        publisher = Publisher(client, conflict, said.append)
        release, created = publisher.release(TAG, "c" * 40, prerelease=False, body="notes")
        report = publisher.converge(release, assets, {a.name: a.sha256 for a in assets})
        report.created = created
        return report
    finally:
        client.close()


def _published(api: FakeGitHub) -> dict[str, bytes]:
    (release,) = api.releases(REPO)
    return {a["name"]: api.state.blobs[a["id"]] for a in release["assets"].values()}


def test_creates_once_uploads_each_asset_then_changes_nothing(api, tmp_path: Path) -> None:
    linux = _asset(tmp_path, "ts-1.2.3-linux.tar.gz", b"linux archive bytes")
    first = _publish(api, [linux])
    assert first.created and first.uploaded == [linux.name, "SHA256SUMS"]
    assert len(api.requests("POST", r"/releases$")) == 1
    files = _published(api)
    assert files[linux.name] == b"linux archive bytes"
    assert parse_sums(files["SHA256SUMS"].decode()) == {linux.name: linux.sha256}
    writes_before = len([r for r in api.log if r.method != "GET"])
    second = _publish(api, [linux])
    assert not second.created and second.uploaded == second.replaced == []
    assert second.unchanged == [linux.name]
    assert len([r for r in api.log if r.method != "GET"]) == writes_before  # no write at all
    assert len(api.releases(REPO)) == 1
    assert second.verified[0].startswith(f"{linux.name}: 19 bytes, sha256 ")


def test_502_then_201_succeeds_after_a_retry(api, tmp_path: Path) -> None:
    api.fail("POST", r"/releases$", 502)
    api.fail("POST", r"^/uploads/", 503)
    said: list[str] = []
    report = _publish(api, [_asset(tmp_path, "a.tar.gz", b"a")], said=said)
    assert report.created
    assert len(api.requests("POST", r"/releases$")) == 2
    assert any("502" in line and "attempt 2/4" in line for line in said), said
    assert any("503" in line for line in said)
    assert set(_published(api)) == {"a.tar.gz", "SHA256SUMS"}


def test_a_lost_response_after_the_upload_happened_converges(api, tmp_path: Path) -> None:
    # the server stores the asset but the client sees 502, retries and gets 422 already_exists
    api.fail("POST", r"^/uploads/.*name=|^/uploads/", 502, apply=True)
    report = _publish(api, [_asset(tmp_path, "a.tar.gz", b"a")])
    assert set(_published(api)) == {"a.tar.gz", "SHA256SUMS"}
    assert report.rounds == 2


def test_persistent_5xx_gives_up_with_one_line(api, tmp_path: Path) -> None:
    api.fail("GET", r"/releases/tags/", 500, times=10)
    with pytest.raises(PublishError, match=r"GitHub answered 500 .* look up the release v1\.2\.3"):
        _publish(api, [_asset(tmp_path, "a.tar.gz", b"a")])
    assert len(api.requests("GET", r"/releases/tags/")) == 4  # attempts, bounded


def test_wrong_token_and_unknown_repository_are_explained(api, tmp_path: Path) -> None:
    client = _client(api, token=WRONG_TOKEN)
    with pytest.raises(PublishError) as err:
        Publisher(client, "refuse", print).release(TAG, "c" * 40, False, "")
    assert "401 Bad credentials" in str(err.value) and "GITHUB_TOKEN is invalid" in str(err.value)
    assert WRONG_TOKEN not in str(err.value)
    other = GitHub(api.url, "acme/nope", TOKEN, backoff=Backoff(attempts=1))
    with pytest.raises(PublishError, match="repository acme/nope does not exist"):
        other.release_by_tag(TAG)
    api.fail("POST", r"/releases$", 422, body={"message": "Validation Failed", "errors": [
        {"resource": "Release", "code": "custom", "field": "tag_name",
         "message": "tag_name is not a valid tag"}]})  # fmt: skip
    with pytest.raises(PublishError, match="422 Validation Failed: Release tag_name custom"):
        _publish(api, [_asset(tmp_path, "a.tar.gz", b"a")])


def test_a_different_asset_under_our_name_is_refused_then_replaced_on_request(
    api, tmp_path: Path
) -> None:
    _publish(api, [_asset(tmp_path, "a.tar.gz", b"first build")])
    rebuilt = _asset(tmp_path, "a.tar.gz", b"another build")
    with pytest.raises(
        PublishError, match=r"a\.tar\.gz is already on the release with other content"
    ):
        _publish(api, [rebuilt])
    assert _published(api)["a.tar.gz"] == b"first build"  # refused: nothing touched
    report = _publish(api, [rebuilt], conflict="replace")
    assert report.replaced == ["a.tar.gz", "SHA256SUMS"]
    files = _published(api)
    assert files["a.tar.gz"] == b"another build"
    assert parse_sums(files["SHA256SUMS"].decode()) == {"a.tar.gz": rebuilt.sha256}


def test_without_api_digests_assets_are_downloaded_to_compare(api, tmp_path: Path) -> None:
    api.asset_digests = False
    a = _asset(tmp_path, "a.tar.gz", b"a")
    _publish(api, [a])
    report = _publish(api, [a])
    assert report.uploaded == [] and "downloaded and hashed" in report.verified[0]
    assert api.requests("GET", r"^/downloads/")  # followed the storage redirect


def test_a_half_uploaded_asset_is_replaced(api, tmp_path: Path) -> None:
    a = _asset(tmp_path, "a.tar.gz", b"full")
    _publish(api, [_asset(tmp_path, "other.tar.gz", b"o")])
    (release,) = api.releases(REPO)
    add_asset(api, release, "a.tar.gz", b"", "application/gzip", state="starter")
    report = _publish(api, [a])
    assert report.replaced == ["a.tar.gz", "SHA256SUMS"]  # the sums gain its line too
    assert _published(api)["a.tar.gz"] == b"full"


def test_matrix_jobs_share_one_release_and_one_sums_file(api, tmp_path: Path) -> None:
    assets = [
        _asset(tmp_path, f"ts-1.2.3-{t}.{'zip' if t == 'win' else 'tar.gz'}", t.encode() * 50)
        for t in ("linux", "mac", "win")
    ]
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def job(asset: LocalAsset) -> None:
        try:
            start.wait()
            _publish(api, [asset])
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=job, args=(a,)) for a in assets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(api.releases(REPO)) == 1  # the losers of the create race reused it
    files = _published(api)
    assert set(files) == {a.name for a in assets} | {"SHA256SUMS"}
    # jobs that finish together may overwrite each other's SHA256SUMS; a re-run of any
    # job repairs it (each run merges and verifies its own lines)
    for a in assets:
        _publish(api, [a])
    assert parse_sums(_published(api)["SHA256SUMS"].decode()) == {a.name: a.sha256 for a in assets}


def test_sums_of_another_target_are_kept(api, tmp_path: Path) -> None:
    mac = _asset(tmp_path, "ts-mac.tar.gz", b"mac")
    linux = _asset(tmp_path, "ts-linux.tar.gz", b"linux")
    _publish(api, [mac])
    report = _publish(api, [linux])
    assert report.uploaded == ["ts-linux.tar.gz"] and report.replaced == ["SHA256SUMS"]
    sums = _published(api)["SHA256SUMS"].decode()
    assert sums == format_sums({mac.name: mac.sha256, linux.name: linux.sha256})


def test_release_that_never_settles_fails_verification(api, tmp_path: Path) -> None:
    # every upload is swallowed: the asset never shows up, rounds run out
    @api.route("POST", r"/uploads/repos/(?P<repo>[^/]+/[^/]+)/releases/(?P<id>\d+)/assets")
    def swallow(api, req, groups):
        from fakes.github_api import Response

        return Response(201, {"id": 0, "name": req.query["name"]})

    with pytest.raises(VerifyFailed, match=r"still differs after 6 rounds: a\.tar\.gz"):
        _publish(api, [_asset(tmp_path, "a.tar.gz", b"a")])


def test_prerelease_flag_is_corrected_on_an_existing_release(api, tmp_path: Path) -> None:
    _publish(api, [_asset(tmp_path, "a.tar.gz", b"a")])
    client = _client(api)
    said: list[str] = []
    release, created = Publisher(client, "refuse", said.append).release(TAG, "c" * 40, True, "")
    assert release["prerelease"] is True and not created
    assert api.releases(REPO)[0]["prerelease"] is True
    assert said == ["publish: setting prerelease=true on release v1.2.3"]


def test_assets_listing_follows_pagination(api, tmp_path: Path) -> None:
    api.page_size_cap = 2
    many = [_asset(tmp_path, f"f{i}.tar.gz", bytes([i])) for i in range(5)]
    report = _publish(api, many)
    assert len(report.verified) == 6
    assert len(_publish(api, many).uploaded) == 0
