"""Release tags, prerelease detection, the crate that owns the binary, git checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci.cargo import Crate, find_crate
from ci.errors import WorkspaceError
from ci.release.errors import PreconditionFailed
from ci.release.repo import GitState, problems, source_date_epoch
from ci.release.version import parse_tag, version_problem

HEAD = "a" * 40
OTHER = "b" * 40


@pytest.mark.parametrize(
    ("tag", "reason", "fix"),
    [
        ("1.2.3", "must start with 'v'", "v1.2.3"),
        ("v1.2", "is not vMAJOR.MINOR.PATCH", "v1.2.0"),
        ("v1.2.3.4", "is not vMAJOR.MINOR.PATCH", "v1.2.3"),
        ("v1.2.3-", "empty pre-release", "v1.2.3-rc.1"),
        ("v1.2.3-rc..1", "empty identifier", "v1.2.3-rc.1"),
        ("v1.2.3-rc.01", "leading zero in pre-release identifier '01'", "v1.2.3-rc.1"),
        ("v1.2.3+", "empty build metadata", "v1.2.3-rc.1"),
        ("v01.2.3", "leading zero in '01'", "v1.2.3"),
        ("v1.02.3", "leading zero in '02'", "v1.2.3"),
        ("v1.2.x", "is not vMAJOR.MINOR.PATCH", "v1.2.3"),
        ("vx", "is not vMAJOR.MINOR.PATCH", "v1.2.3"),
        ("v1.2.3-rc_1", "only [0-9A-Za-z-] allowed", "v1.2.3-rc.1"),
        ("release-1", "must start with 'v'", "v1.2.3"),
    ],
)
def test_bad_tags_are_one_line_with_the_reason_and_a_valid_example(tag, reason, fix) -> None:
    with pytest.raises(PreconditionFailed) as err:
        parse_tag(tag)
    message = str(err.value)
    assert "\n" not in message
    assert reason in message
    assert f"use a tag like {fix}" in message
    assert repr(tag) in message


def test_empty_tag_says_to_pass_one() -> None:
    with pytest.raises(PreconditionFailed, match=r"pass --tag vX\.Y\.Z"):
        parse_tag("")


@pytest.mark.parametrize(
    ("tag", "version", "prerelease"),
    [
        ("v1.2.3", "1.2.3", False),
        ("v0.0.0", "0.0.0", False),
        ("v10.20.30", "10.20.30", False),
        ("v1.2.3-alpha", "1.2.3-alpha", True),
        ("v1.2.3-alpha.1", "1.2.3-alpha.1", True),
        ("v1.2.3-beta.2", "1.2.3-beta.2", True),
        ("v1.2.3-rc.1", "1.2.3-rc.1", True),
        ("v1.2.3-RC1", "1.2.3-RC1", True),
        ("v1.2.3-0.3.7", "1.2.3-0.3.7", True),
        ("v1.2.3+build.5", "1.2.3+build.5", False),
        ("v1.2.3-rc.1+build.007", "1.2.3-rc.1+build.007", True),
    ],
)
def test_valid_tags_and_prerelease_detection(tag, version, prerelease) -> None:
    parsed = parse_tag(tag)
    assert parsed.name == tag
    assert parsed.version == version
    assert parsed.prerelease is prerelease


def _meta(*packages: dict, members: list[str] | None = None) -> dict:
    ids = [p["id"] for p in packages]
    return {"packages": list(packages), "workspace_members": ids if members is None else members}


def _pkg(name: str, version: str, bins: list[str], **extra) -> dict:
    targets = [{"name": name.replace("-", "_"), "kind": ["lib"]}]
    targets += [{"name": b, "kind": ["bin"]} for b in bins]
    return {
        "id": f"{name} {version}",
        "name": name,
        "version": version,
        "manifest_path": f"/ws/crates/{name}/Cargo.toml",
        "targets": targets,
        **extra,
    }


def test_the_crate_owning_the_binary_is_found_with_its_documents() -> None:
    meta = _meta(
        _pkg("trading-core", "0.1.0", []),
        _pkg("trading-system", "0.3.0", ["trading-system"], readme="README.md", license="MIT"),
    )
    crate = find_crate(meta, "trading-system")
    assert (crate.name, crate.version, crate.license) == ("trading-system", "0.3.0", "MIT")
    assert crate.readme == Path("/ws/crates/trading-system/README.md")
    assert crate.license_file is None


def test_a_binary_no_member_has_is_named_with_the_known_ones() -> None:
    meta = _meta(_pkg("svc", "1.0.0", ["svc", "svc-admin"]))
    with pytest.raises(
        WorkspaceError, match=r"binary named 'nope'.*binaries in the workspace: svc, svc-admin"
    ):
        find_crate(meta, "nope")


def test_non_members_do_not_count() -> None:
    meta = _meta(_pkg("dep", "1.0.0", ["tool"]), members=[])
    with pytest.raises(WorkspaceError, match="no workspace member"):
        find_crate(meta, "tool")


def test_tag_different_from_the_crate_version_is_explained() -> None:
    crate = Crate("trading-system", "0.1.0", Path("/ws/crates/ts/Cargo.toml"), "trading-system")
    assert version_problem(parse_tag("v0.1.0"), crate, Path("/ws")) is None
    problem = version_problem(parse_tag("v0.2.0"), crate, Path("/ws"))
    assert problem is not None
    assert (
        "tag v0.2.0 does not match trading-system's version 0.1.0 (crates/ts/Cargo.toml)" in problem
    )
    assert "tag v0.1.0 instead" in problem
    # a pre-release tag is not the release it precedes
    assert version_problem(parse_tag("v0.1.0-rc.1"), crate, Path("/ws")) is not None


def _state(tag_commit: str | None = HEAD, changes: tuple[str, ...] = ()) -> GitState:
    return GitState(
        HEAD, tag_commit, changes, head_time=2000, tag_time=1000 if tag_commit else None
    )


def test_clean_tagged_head_has_no_problems() -> None:
    assert problems(_state(), "v1.0.0", allow_dirty=False) == ([], [])


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (
            _state(tag_commit=None),
            "tag v1.0.0 does not exist: create it on the release commit (git tag v1.0.0)",
        ),
        (_state(tag_commit=OTHER), "tag v1.0.0 points at bbbbbbbbbbbb, not HEAD aaaaaaaaaaaa"),
        (
            _state(changes=(" M src/lib.rs", "?? new.rs")),
            "uncommitted changes (M src/lib.rs and 1 more)",
        ),
    ],
)
def test_git_problems_fail_and_allow_dirty_turns_them_into_warnings(state, expected) -> None:
    failures, warnings = problems(state, "v1.0.0", allow_dirty=False)
    assert len(failures) == 1 and expected in failures[0] and not warnings
    failures, warnings = problems(state, "v1.0.0", allow_dirty=True)
    assert not failures and len(warnings) == 1 and expected in warnings[0]
    assert "--allow-dirty" in warnings[0]


def test_source_date_epoch_env_then_tag_commit_then_head() -> None:
    assert source_date_epoch(_state(), "12345") == (12345, "SOURCE_DATE_EPOCH")
    assert source_date_epoch(_state(), None) == (1000, "the tag's commit time")
    assert source_date_epoch(_state(tag_commit=None), "") == (2000, "HEAD's commit time")
    assert source_date_epoch(_state(tag_commit=OTHER), None)[0] == 2000
    with pytest.raises(PreconditionFailed, match="SOURCE_DATE_EPOCH='yesterday'"):
        source_date_epoch(_state(), "yesterday")


def test_an_unconfigured_binary_is_the_workspace_s_only_one() -> None:
    meta = _meta(_pkg("lib", "1.0.0", []), _pkg("svc", "1.0.0", ["svc"]))
    assert find_crate(meta, "").binary == "svc"
    two = _meta(_pkg("svc", "1.0.0", ["svc", "svc-admin"]))
    with pytest.raises(WorkspaceError, match=r"set \[tool.pipeline\] binary.*svc, svc-admin"):
        find_crate(two, "")
