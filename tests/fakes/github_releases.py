"""The releases part of the fake GitHub API: releases, assets, uploads, downloads."""

from __future__ import annotations

import hashlib
from typing import Any

from fakes.github_api import REPO, FakeGitHub, Request, Response, error, invalid

Json = dict[str, Any]


def _release_json(api: FakeGitHub, repo: str, rel: Json) -> Json:
    rid = rel["id"]
    return {
        **{k: v for k, v in rel.items() if k != "assets"},
        "url": f"{api.url}/repos/{repo}/releases/{rid}",
        "html_url": f"https://github.example/{repo}/releases/tag/{rel['tag_name']}",
        "assets_url": f"{api.url}/repos/{repo}/releases/{rid}/assets",
        "upload_url": f"{api.url}/uploads/repos/{repo}/releases/{rid}/assets{{?name,label}}",
        "assets": [_asset_json(api, repo, a) for a in rel["assets"].values()],
    }


def _asset_json(api: FakeGitHub, repo: str, asset: Json) -> Json:
    data = {
        **asset,
        "url": f"{api.url}/repos/{repo}/releases/assets/{asset['id']}",
        "browser_download_url": f"{api.url}/downloads/{asset['id']}/{asset['name']}",
    }
    if not api.asset_digests:
        data.pop("digest", None)
    return data


def _find(api: FakeGitHub, repo: str, release_id: str) -> Json | None:
    return api.state.repos[repo].get(int(release_id))


def register(api: FakeGitHub) -> None:
    """Add the releases routes to `api`."""

    @api.route("GET", REPO)
    def get_repo(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        return Response(200, {"full_name": g["repo"], "private": False})

    @api.route("GET", REPO + "/releases")
    def list_releases(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        rels = api.state.repos[g["repo"]].values()
        return Response(200, [_release_json(api, g["repo"], r) for r in rels])

    @api.route("GET", REPO + r"/releases/tags/(?P<tag>.+)")
    def by_tag(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        for rel in api.state.repos[g["repo"]].values():
            if rel["tag_name"] == g["tag"] and not rel["draft"]:
                return Response(200, _release_json(api, g["repo"], rel))
        return error(404, "Not Found")

    @api.route("POST", REPO + "/releases")
    def create(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        body = req.json() or {}
        tag = body.get("tag_name")
        if not tag:
            return invalid("Release", "missing_field", "tag_name")
        releases = api.state.repos[g["repo"]]
        if any(r["tag_name"] == tag and not r["draft"] for r in releases.values()):
            return invalid("Release", "already_exists", "tag_name")
        rel = {
            "id": api.new_id(),
            "tag_name": tag,
            "target_commitish": body.get("target_commitish", "main"),
            "name": body.get("name") or tag,
            "body": body.get("body", ""),
            "draft": bool(body.get("draft", False)),
            "prerelease": bool(body.get("prerelease", False)),
            "assets": {},
        }
        releases[rel["id"]] = rel
        return Response(201, _release_json(api, g["repo"], rel))

    @api.route("GET", REPO + r"/releases/(?P<id>\d+)")
    def get_release(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        rel = _find(api, g["repo"], g["id"])
        return Response(200, _release_json(api, g["repo"], rel)) if rel else error(404, "Not Found")

    @api.route("PATCH", REPO + r"/releases/(?P<id>\d+)")
    def update(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        rel = _find(api, g["repo"], g["id"])
        if rel is None:
            return error(404, "Not Found")
        for key in ("name", "body", "draft", "prerelease", "tag_name"):
            if key in (req.json() or {}):
                rel[key] = req.json()[key]
        return Response(200, _release_json(api, g["repo"], rel))

    @api.route("GET", REPO + r"/releases/(?P<id>\d+)/assets")
    def list_assets(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        rel = _find(api, g["repo"], g["id"])
        if rel is None:
            return error(404, "Not Found")
        per_page = min(int(req.query.get("per_page", 30)), api.page_size_cap)
        page = int(req.query.get("page", 1))
        assets = list(rel["assets"].values())
        chunk = assets[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(assets):
            nxt = f"{api.url}{req.path}?per_page={per_page}&page={page + 1}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        return Response(200, [_asset_json(api, g["repo"], a) for a in chunk], headers)

    @api.route("POST", "/uploads" + REPO + r"/releases/(?P<id>\d+)/assets")
    def upload(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        rel = _find(api, g["repo"], g["id"])
        name = req.query.get("name")
        if rel is None:
            return error(404, "Not Found")
        if not name:
            return invalid("ReleaseAsset", "missing_field", "name")
        if any(a["name"] == name for a in rel["assets"].values()):
            return invalid("ReleaseAsset", "already_exists", "name")
        kind = req.headers.get("content-type", "")
        asset = add_asset(api, rel, name, req.body, kind)
        return Response(201, _asset_json(api, g["repo"], asset))

    @api.route("GET", REPO + r"/releases/assets/(?P<id>\d+)")
    def get_asset(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        for rel in api.state.repos[g["repo"]].values():
            asset = rel["assets"].get(int(g["id"]))
            if asset is None:
                continue
            if req.headers.get("accept") == "application/octet-stream":
                where = f"{api.url}/downloads/{asset['id']}/{asset['name']}"
                return Response(302, None, {"Location": where})
            return Response(200, _asset_json(api, g["repo"], asset))
        return error(404, "Not Found")

    @api.route("DELETE", REPO + r"/releases/assets/(?P<id>\d+)")
    def delete_asset(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        for rel in api.state.repos[g["repo"]].values():
            if rel["assets"].pop(int(g["id"]), None) is not None:
                api.state.blobs.pop(int(g["id"]), None)
                return Response(204)
        return error(404, "Not Found")

    @api.route("GET", r"/downloads/(?P<id>\d+)/(?P<name>[^/]+)")
    def download(api: FakeGitHub, req: Request, g: dict[str, str]) -> Response:
        blob = api.state.blobs.get(int(g["id"]))
        return Response(200, blob) if blob is not None else error(404, "Not Found")


def add_asset(
    api: FakeGitHub, rel: Json, name: str, data: bytes, content_type: str, state: str = "uploaded"
) -> Json:
    """Store an asset on a release (also for tests that set up a release by hand, e.g. a
    half-uploaded asset with state "starter")."""
    asset = {
        "id": api.new_id(),
        "name": name,
        "label": None,
        "state": state,
        "content_type": content_type,
        "size": len(data),
        "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
        "download_count": 0,
    }
    rel["assets"][asset["id"]] = asset
    api.state.blobs[asset["id"]] = data
    return asset
