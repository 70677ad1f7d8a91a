"""The feature set the test builds use (`[cargo]`: features, all_features,
no_default_features), and which test targets it leaves out: a target whose
`required-features` are not all enabled is skipped, as `cargo test` skips it, and said
so with the features it needs, instead of turning a green crate into a red gate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ci.contract import Clock
from ci.result import Status
from ci.settings import Settings


@dataclass(frozen=True)
class FeatureSet:
    """What the builds are asked to enable, as the cargo flags say it."""

    features: tuple[str, ...] = ()
    all_features: bool = False
    no_default_features: bool = False

    def cargo_args(self) -> list[str]:
        """The flags for cargo build / test / clippy / nextest / tarpaulin."""
        if self.all_features:
            return ["--all-features"]
        args = ["--no-default-features"] if self.no_default_features else []
        return [*args, "--features", ",".join(self.features)] if self.features else args

    def enabled(self, package: Mapping[str, Any]) -> set[str] | None:
        """The features of `package` (cargo metadata) these flags enable; None = all."""
        if self.all_features:
            return None
        table: Mapping[str, list[str]] = package.get("features") or {}
        name = package.get("name", "")
        wanted = [] if self.no_default_features or "default" not in table else ["default"]
        for feature in self.features:
            pkg, slash, feat = feature.partition("/")
            if not slash:
                wanted.append(feature)
            elif pkg == name:  # `package/feature` names a member's own feature
                wanted.append(feat)
        on: set[str] = set()
        while wanted:
            feature = wanted.pop()
            if feature in on:
                continue
            on.add(feature)
            wanted += [item for item in table.get(feature, []) if item in table]
        return on


def configured(settings: Settings) -> FeatureSet:
    """The `[cargo]` table of the workspace's configuration."""
    sec = settings.section("cargo")
    return FeatureSet(
        features=tuple(f.strip() for f in sec.strings("features") if f.strip()),
        all_features=sec.flag("all_features"),
        no_default_features=sec.flag("no_default_features"),
    )


@dataclass(frozen=True)
class Gated:
    """A test target left out: its package, name and the features it lacks."""

    package: str
    target: str
    missing: tuple[str, ...]

    def describe(self) -> str:
        """`gated (pkg) needs feature extra`."""
        word = "feature" if len(self.missing) == 1 else "features"
        return f"{self.target} ({self.package}) needs {word} {', '.join(self.missing)}"


def _satisfied(requirement: str, on: set[str], package: Mapping[str, Any]) -> bool:
    if requirement in on:
        return True
    dep, slash, _ = requirement.partition("/")
    if not slash:
        return False
    # `dep/feature`: on when the dependency is (a non-optional one always is).
    deps = package.get("dependencies") or []
    required = any(d.get("name") == dep and not d.get("optional") for d in deps)
    return required or dep.rstrip("?") in on


def test_targets(
    meta: Mapping[str, Any], features: FeatureSet, kinds: Iterable[str] = ("test",)
) -> tuple[list[str], list[Gated]]:
    """The workspace members' targets of `kinds` the feature set builds (names, sorted,
    deduplicated) and those it leaves out for their `required-features`."""
    members = set(meta.get("workspace_members", []))
    wanted = set(kinds)
    built: set[str] = set()
    gated: list[Gated] = []
    for pkg in meta.get("packages", []):
        if pkg.get("id") not in members:
            continue
        on = features.enabled(pkg)
        for target in pkg.get("targets", []):
            if not wanted & set(target.get("kind", [])):
                continue
            if target.get("test") is False and "test" in wanted:
                continue  # `test = false`: `cargo test` never runs it, whatever the features
            needs = target.get("required-features") or []
            missing = () if on is None else tuple(f for f in needs if not _satisfied(f, on, pkg))
            if missing:
                gated.append(Gated(pkg["name"], target["name"], missing))
            else:
                built.add(target["name"])
    return sorted(built), sorted(gated, key=lambda g: (g.package, g.target))


def report_gated(clock: Clock, gated: Sequence[Gated]) -> None:
    """A skipped `feature-gated` check listing the targets left out (none: no check)."""
    if not gated:
        return
    with clock.check("feature-gated") as chk:
        chk.status = Status.SKIPPED
        listed = "; ".join(g.describe() for g in gated)
        chk.summary = f"skipped as `cargo test` skips them (features not enabled): {listed}"
