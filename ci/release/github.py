"""Releases and their assets on GitHub: the release flow's view of the shared client
(`ci.github`), raising `PublishError` with the release wording."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ci.errors import PipelineError
from ci.github.client import GitHub, Json, already_exists, explain
from ci.release.errors import PublishError


class GitHubReleases(GitHub):
    """Releases and assets of one repository."""

    def __init__(
        self, *args: Any, error: type[PipelineError] = PublishError, **kwargs: Any
    ) -> None:
        kwargs.setdefault("agent", "rust-trading-pipeline-release")
        super().__init__(*args, error=error, **kwargs)

    def release_by_tag(self, tag: str) -> Json | None:
        """The published release of `tag`, or None."""
        url = self.repo_url(f"/releases/tags/{quote(tag, safe='')}")
        resp = self.request("GET", url, f"look up the release {tag}", allow=(404,))
        if resp.status_code == 404:
            # 404 is also what an unknown repository gives: tell the two apart.
            self.request("GET", self.repo_url(""), f"read repository {self.repository}")
            return None
        return resp.json()

    def create_release(
        self, tag: str, *, commit: str, prerelease: bool, body: str
    ) -> tuple[Json, bool]:
        """(the release of `tag`, True) after creating it, published rather than a draft.
        When another job created it first (422 already_exists): (that release, False)."""
        payload = {
            "tag_name": tag,
            "target_commitish": commit,
            "name": tag,
            "body": body,
            "draft": False,
            "prerelease": prerelease,
        }
        action = f"create the release {tag}"
        url = self.repo_url("/releases")
        resp = self.request("POST", url, action, ok=(201,), allow=(422,), json=payload)
        if resp.status_code == 201:
            return resp.json(), True
        if already_exists(resp):
            existing = self.release_by_tag(tag)
            if existing is not None:
                return existing, False
        raise PublishError(explain(resp, action, self.repository))

    def update_release(self, release: Mapping[str, Any], **fields: Any) -> Json:
        """Change fields of a release (e.g. `prerelease`)."""
        url = self.repo_url(f"/releases/{release['id']}")
        action = f"update the release {release.get('tag_name')}"
        return self.request("PATCH", url, action, json=fields).json()

    def assets(self, release: Mapping[str, Any]) -> list[Json]:
        """Every asset of the release (following pagination)."""
        url: str | None = self.repo_url(f"/releases/{release['id']}/assets?per_page=100")
        found: list[Json] = []
        while url:
            resp = self.request("GET", url, f"list the assets of release {release['tag_name']}")
            found.extend(resp.json())
            url = resp.links.get("next", {}).get("url")
        return found

    def upload(
        self, release: Mapping[str, Any], name: str, data: bytes, content_type: str
    ) -> Json | None:
        """Upload one asset through the release's `upload_url`. None when an asset of that
        name appeared meanwhile (422 already_exists): the caller lists again and decides."""
        url = str(release["upload_url"]).split("{", 1)[0]
        resp = self.request(
            "POST",
            url,
            f"upload {name}",
            ok=(201,),
            allow=(422,),
            params={"name": name},
            data=data,
            headers={"Content-Type": content_type},
        )
        if resp.status_code == 201:
            return resp.json()
        if already_exists(resp):
            return None
        raise PublishError(explain(resp, f"upload {name}", self.repository))

    def delete_asset(self, asset: Mapping[str, Any]) -> None:
        """Delete one asset (already gone is fine)."""
        url = self.repo_url(f"/releases/assets/{asset['id']}")
        self.request("DELETE", url, f"delete asset {asset['name']}", ok=(204,), allow=(404,))

    def download(self, asset: Mapping[str, Any]) -> bytes | None:
        """The asset's bytes, or None when it is gone (another job replaced it). The API
        redirects to storage; requests does not forward the token to another host."""
        url = self.repo_url(f"/releases/assets/{asset['id']}")
        resp = self.request(
            "GET",
            url,
            f"download asset {asset['name']}",
            allow=(404,),
            headers={"Accept": "application/octet-stream"},
        )
        return None if resp.status_code == 404 else resp.content
