"""Converge a GitHub release to the local assets, then verify it.

Each round lists the release's assets, computes what differs (`plan_round`, pure), acts on
that only, and lists again; the round that finds nothing to do is the verification (names,
sizes and digests). Re-running is therefore idempotent: an existing release is reused, an
identical asset is left alone. An asset with this name but other bytes means another build
was published under this version: refused by default (`asset_conflict = "refuse"`; the
reproducible archives make an honest rebuild identical), replaced with "replace".

Several jobs of a matrix publish to one release at once. Creating it is safe (the loser of
the race gets 422 already_exists and reuses the winner's release). SHA256SUMS is shared:
each job merges its lines into the published file (read, merge, replace) and the next
round checks its own lines are there, redoing the merge when another job overwrote them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.release.checksums import SUMS_NAME, format_sums, merge, parse_sums, sha256_bytes
from ci.release.errors import PublishError, VerifyFailed
from ci.release.github import GitHubReleases

MAX_ROUNDS = 6
Json = dict[str, Any]


class _Moved(Exception):
    """An asset listed a moment ago is gone: another job is publishing too."""


def _jittered_pause(round_no: int) -> None:
    """After a race, wait a little, randomly, so racing jobs stop colliding."""
    time.sleep(random.uniform(0.1, 0.5) * round_no)


@dataclass(frozen=True)
class LocalAsset:
    """A file to publish: its name on the release, bytes, digest and media type."""

    name: str
    path: Path
    size: int
    sha256: str
    content_type: str


@dataclass(frozen=True)
class Action:
    """One change to the release: `upload` a missing asset or `replace` one (delete, then
    upload). `data` is set for generated assets (SHA256SUMS)."""

    kind: str
    name: str
    reason: str
    asset: LocalAsset | None = None
    data: bytes | None = None
    remote: Json | None = None


@dataclass
class PublishReport:
    """What publishing did and what it verified."""

    release_id: int
    url: str
    created: bool
    uploaded: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    rounds: int = 0


def api_digest(asset: Mapping[str, Any]) -> str | None:
    """The hex SHA-256 GitHub reports for an asset (`"digest": "sha256:..."`), if any."""
    digest = asset.get("digest")
    if isinstance(digest, str) and digest.startswith("sha256:"):
        return digest.split(":", 1)[1].lower()
    return None


def _same(local: LocalAsset, remote: Mapping[str, Any], digest_of: Callable[[Json], str]) -> str:
    """Empty when the remote asset holds exactly the local bytes, else why not."""
    if remote.get("size") != local.size:
        return f"size {remote.get('size')} on GitHub, {local.size} here"
    remote_digest = api_digest(remote) or digest_of(dict(remote))
    if remote_digest != local.sha256:
        return f"sha256 {remote_digest[:12]}... on GitHub, {local.sha256[:12]}... here"
    return ""


def plan_round(
    assets: Sequence[LocalAsset],
    ours: Mapping[str, str],
    remote: Mapping[str, Json],
    remote_sums: str | None,
    conflict: str,
    digest_of: Callable[[Json], str],
) -> tuple[list[Action], list[str]]:
    """(actions, names already correct) for one round. `remote_sums` is the published
    SHA256SUMS text (None when absent). Raises PublishError for a refused conflict."""
    actions: list[Action] = []
    unchanged: list[str] = []
    for local in assets:
        have = remote.get(local.name)
        if have is None:
            actions.append(Action("upload", local.name, "missing", asset=local))
        elif have.get("state", "uploaded") != "uploaded":
            why = f"left half-uploaded (state {have.get('state')})"
            actions.append(Action("replace", local.name, why, asset=local, remote=have))
        elif why := _same(local, have, digest_of):
            if conflict != "replace":
                raise PublishError(
                    f"{local.name} is already on the release with other content ({why}): "
                    "another build was published under this version; delete that asset to "
                    "publish this one, or set CIPIPE_RELEASE__ASSET_CONFLICT=replace"
                )
            actions.append(Action("replace", local.name, why, asset=local, remote=have))
        else:
            unchanged.append(local.name)
    published = parse_sums(remote_sums, f"{SUMS_NAME} on the release") if remote_sums else {}
    wanted = format_sums(merge(published, ours))
    have_sums = remote.get(SUMS_NAME)
    data = wanted.encode()
    if have_sums is None:
        actions.append(Action("upload", SUMS_NAME, "missing", data=data))
    elif remote_sums != wanted:
        missing = sorted(n for n in ours if published.get(n) != ours[n])
        why = f"lacks {', '.join(missing)}" if missing else "differs"
        actions.append(Action("replace", SUMS_NAME, why, data=data, remote=have_sums))
    else:
        unchanged.append(SUMS_NAME)
    return actions, unchanged


class Publisher:
    """Drives one GitHub release to the local assets."""

    def __init__(
        self,
        client: GitHubReleases,
        conflict: str,
        say: Callable[[str], None],
        pause: Callable[[int], None] | None = None,
    ) -> None:
        self.client = client
        self.conflict = conflict
        self.say = say
        self.pause = pause or _jittered_pause

    def release(self, tag: str, commit: str, prerelease: bool, body: str) -> tuple[Json, bool]:
        """(the release of `tag`, whether this run created it); its pre-release flag is
        corrected when it differs from the tag's."""
        found = self.client.release_by_tag(tag)
        if found is None:
            return self.client.create_release(tag, commit=commit, prerelease=prerelease, body=body)
        if bool(found.get("prerelease")) != prerelease:
            self.say(f"publish: setting prerelease={str(prerelease).lower()} on release {tag}")
            found = self.client.update_release(found, prerelease=prerelease)
        return found, False

    def _download(self, asset: Json) -> bytes:
        data = self.client.download(asset)
        if data is None:
            raise _Moved(asset["name"])
        return data

    def _digest_of(self, asset: Json) -> str:
        return sha256_bytes(self._download(asset))

    def _sums_text(self, remote: Mapping[str, Json]) -> str | None:
        have = remote.get(SUMS_NAME)
        if have is None or have.get("state", "uploaded") != "uploaded":
            return None
        return self._download(have).decode("utf-8", "replace")

    def converge(
        self, release: Json, assets: Sequence[LocalAsset], ours: Mapping[str, str]
    ) -> PublishReport:
        """Act until a round finds nothing to change; that round is the verification."""
        report = PublishReport(int(release["id"]), str(release.get("html_url", "")), False)
        for round_no in range(1, MAX_ROUNDS + 1):
            report.rounds = round_no
            remote = {a["name"]: a for a in self.client.assets(release)}
            try:
                actions, unchanged = plan_round(
                    assets, ours, remote, self._sums_text(remote), self.conflict, self._digest_of
                )
            except _Moved as gone:
                self.say(f"publish: {gone} changed while being read (another job?); again")
                actions = [Action("recheck", str(gone), "changed while being read")]
                self.pause(round_no)
                continue
            if round_no == 1:
                report.unchanged = [n for n in unchanged if n != SUMS_NAME]
            if not actions:
                report.verified = self._verified(assets, remote)
                return report
            raced = False
            for action in actions:
                raced = not self._act(release, action, report) or raced
            if raced:
                self.pause(round_no)
        left = ", ".join(f"{a.name} ({a.reason})" for a in actions)
        raise VerifyFailed(
            f"release {release.get('tag_name')} still differs after {MAX_ROUNDS} rounds: {left}; "
            "another job may be publishing the same assets: run the release again"
        )

    def _act(self, release: Json, action: Action, report: PublishReport) -> bool:
        """Carry out one action; False when another job got in the way."""
        if action.remote is not None:
            self.client.delete_asset(action.remote)
        if action.asset is not None:
            data = action.asset.path.read_bytes()
            kind = action.asset.content_type
        else:
            data, kind = action.data or b"", "text/plain; charset=utf-8"
        self.say(f"publish: {action.kind} {action.name} ({action.reason}, {len(data)} bytes)")
        if self.client.upload(release, action.name, data, kind) is None:
            # Another job uploaded this name between our listing and our upload: the
            # next round sees it and decides again.
            self.say(f"publish: {action.name} appeared meanwhile; checking it next round")
            return False
        names = report.replaced if action.kind == "replace" else report.uploaded
        if action.name not in names:
            names.append(action.name)
        return True

    def _verified(self, assets: Sequence[LocalAsset], remote: Mapping[str, Json]) -> list[str]:
        lines = []
        for local in assets:
            have = remote[local.name]
            source = "GitHub's digest" if api_digest(have) else "downloaded and hashed"
            lines.append(
                f"{local.name}: {have['size']} bytes, sha256 {local.sha256[:16]}... ({source})"
            )
        lines.append(f"{SUMS_NAME}: lists {', '.join(sorted(a.name for a in assets))}")
        return lines
