"""Which test targets a feature set builds, and which it leaves out for their
required-features, as `cargo test` decides (from `cargo metadata`)."""

from __future__ import annotations

from ci.features import FeatureSet
from ci.features import test_targets as targets_of


def meta() -> dict:
    pkg = {
        "id": "p",
        "name": "book",
        "features": {"default": ["std"], "std": [], "metrics": ["dep:prom"], "all": ["metrics"]},
        "dependencies": [{"name": "serde", "optional": False}],
        "targets": [
            {"name": "plain", "kind": ["test"]},
            {"name": "std_only", "kind": ["test"], "required-features": ["std"]},
            {"name": "metered", "kind": ["test"], "required-features": ["metrics"]},
            {"name": "serde_t", "kind": ["test"], "required-features": ["serde/derive"]},
            {"name": "tool", "kind": ["bin"], "required-features": ["metrics"]},
            {"name": "visual", "kind": ["test"], "test": False, "required-features": ["x"]},
        ],
    }
    return {"workspace_members": ["p"], "packages": [pkg]}


def test_default_features_build_what_cargo_test_builds() -> None:
    built, gated = targets_of(meta(), FeatureSet())
    assert built == ["plain", "serde_t", "std_only"]
    assert [g.describe() for g in gated] == ["metered (book) needs feature metrics"]


def test_a_feature_enables_what_it_implies() -> None:
    built, gated = targets_of(meta(), FeatureSet(features=("all",)))
    assert "metered" in built and not gated


def test_no_default_features_and_all_features() -> None:
    _, gated = targets_of(meta(), FeatureSet(no_default_features=True))
    assert {g.target for g in gated} == {"std_only", "metered"}
    assert FeatureSet(no_default_features=True, features=("a", "b")).cargo_args() == [
        "--no-default-features",
        "--features",
        "a,b",
    ]
    built, gated = targets_of(meta(), FeatureSet(all_features=True))
    assert len(built) == 4 and not gated
    assert FeatureSet(all_features=True).cargo_args() == ["--all-features"]


def test_bins_are_judged_the_same_way() -> None:
    built, gated = targets_of(meta(), FeatureSet(features=("book/metrics",)), ("bin",))
    assert built == ["tool"] and not gated


def test_a_target_cargo_test_never_runs_is_neither_built_nor_listed() -> None:
    built, gated = targets_of(meta(), FeatureSet(all_features=True))
    assert "visual" not in built and not gated


def test_a_report_without_coverable_lines_is_told_apart(tmp_path) -> None:
    from ci.stages.coverage import coverable

    empty = tmp_path / "empty.xml"
    empty.write_text('<?xml version="1.0"?><coverage lines-covered="0" lines-valid="0"/>')
    some = tmp_path / "some.xml"
    some.write_text('<?xml version="1.0"?><coverage lines-covered="1" lines-valid="2"/>')
    assert not coverable(empty) and coverable(some)
