"""The release tag and the crate it releases.

A tag is `v` + a semantic version (https://semver.org): `v1.2.3`, `v1.2.3-rc.1`,
`v1.2.3+build.5`. The crate (`ci.cargo.find_crate`) is the workspace member that owns
the binary named by `[tool.pipeline] binary`; its version must equal the tag's.
Everything here is pure: the facts come in, a verdict or a one-line reason with its
fix goes out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ci.cargo import Crate
from ci.release.errors import PreconditionFailed

_NUMBER = re.compile(r"^(0|[1-9][0-9]*)$")
_IDENT = re.compile(r"^[0-9A-Za-z-]+$")
# The pre-release labels that mark a test release; any pre-release part counts too.
PRERELEASE_LABELS = ("alpha", "beta", "rc")


@dataclass(frozen=True)
class Tag:
    """A valid release tag: `name` is the tag as given, `version` without the `v`."""

    name: str
    version: str
    core: tuple[int, int, int]
    pre: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    @property
    def prerelease(self) -> bool:
        """True for a semver pre-release (`-alpha.1`, `-beta`, `-rc.2`, any `-...`):
        GitHub marks the release as a pre-release, never as the latest."""
        return bool(self.pre)


def _bad(tag: str, why: str, example: str) -> PreconditionFailed:
    return PreconditionFailed(f"tag {tag!r} {why}: use a tag like {example}")


def _check_identifiers(tag: str, part: str, text: str, numeric_rule: bool) -> tuple[str, ...]:
    if not text:
        raise _bad(tag, f"has an empty {part} after its separator", "v1.2.3-rc.1")
    idents = tuple(text.split("."))
    for ident in idents:
        if not ident:
            raise _bad(tag, f"has an empty identifier in its {part} {text!r}", "v1.2.3-rc.1")
        if not _IDENT.match(ident):
            raise _bad(
                tag, f"has {ident!r} in its {part}: only [0-9A-Za-z-] allowed", "v1.2.3-rc.1"
            )
        if numeric_rule and ident.isdigit() and not _NUMBER.match(ident):
            raise _bad(tag, f"has a leading zero in {part} identifier {ident!r}", "v1.2.3-rc.1")
    return idents


def parse_tag(tag: str) -> Tag:
    """The parsed tag; PreconditionFailed naming what is wrong and a valid example."""
    text = tag.strip()
    if not text:
        raise PreconditionFailed("no tag given: pass --tag vX.Y.Z (e.g. --tag v1.2.3)")
    if not text.startswith("v"):
        example = f"v{text}" if re.match(r"^\d", text) else "v1.2.3"
        raise _bad(text, "must start with 'v'", example)
    rest = text[1:]
    rest, plus, build_text = rest.partition("+")
    core_text, dash, pre_text = rest.partition("-")
    parts = core_text.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        digits = all(p.isdigit() for p in parts)
        example = (
            "v" + ".".join(str(int(p)) for p in [*parts, "0", "0"][:3]) if digits else "v1.2.3"
        )
        raise _bad(text, "is not vMAJOR.MINOR.PATCH (semantic version)", example)
    for p in parts:
        if not _NUMBER.match(p):
            fixed = "v" + ".".join(str(int(x)) for x in parts)
            raise _bad(text, f"has a leading zero in {p!r} (semver forbids it)", fixed)
    pre = _check_identifiers(text, "pre-release", pre_text, True) if dash else ()
    build = _check_identifiers(text, "build metadata", build_text, False) if plus else ()
    major, minor, patch = (int(p) for p in parts)
    return Tag(name=text, version=text[1:], core=(major, minor, patch), pre=pre, build=build)


def version_problem(tag: Tag, crate: Crate, workspace: Path) -> str | None:
    """Why the tag cannot release this crate (one line with the fix), or None."""
    if tag.version == crate.version:
        return None
    try:
        where = crate.manifest.relative_to(workspace)
    except ValueError:
        where = crate.manifest
    return (
        f"tag {tag.name} does not match {crate.name}'s version {crate.version} ({where}): "
        f"tag v{crate.version} instead, or set the version to {tag.version} (in {where} "
        "or the workspace's [workspace.package]) and commit"
    )


SNAPSHOT_LABEL = "main"


def snapshot_tag(crate_version: str, commit: str) -> Tag:
    """The tag-like name of a main build: `v<crate version>-main.g<12 hex>` (the `g`
    keeps the identifier alphanumeric, as git describe does). It is never a git tag."""
    base = crate_version.split("+", 1)[0].split("-", 1)[0]
    return parse_tag(f"v{base}-{SNAPSHOT_LABEL}.g{commit[:12]}")


def is_snapshot(version: str) -> bool:
    """A version `snapshot_tag` made (a main build, not a release)."""
    pre = version.split("+", 1)[0].partition("-")[2]
    return pre.split(".")[0] == SNAPSHOT_LABEL
