"""Which doc tests the unit stage runs when only some packages changed: a name filter
per package folder (rustdoc names a doc test after its file, relative to the workspace
root), never fewer than the packages in scope."""

from __future__ import annotations

from pathlib import Path

from ci.parsers import parse_libtest
from ci.stages.unit import doc_filters

WS = Path("/ws")


def meta(*packages: tuple[str, str]) -> dict[str, object]:
    return {"packages": [{"name": n, "manifest_path": f"{d}/Cargo.toml"} for n, d in packages]}


def test_only_the_changed_packages_folders_are_selected() -> None:
    m = meta(("trading-core", "/ws/crates/trading-core"), ("trading-system", "/ws/crates/sys"))
    assert doc_filters(m, WS, ["trading-system"]) == ["crates/sys/"]
    assert doc_filters(m, WS, ["trading-system", "trading-core"]) == [
        "crates/sys/",
        "crates/trading-core/",
    ]


def test_whole_workspace_or_a_root_package_means_no_filter() -> None:
    m = meta(("app", "/ws"), ("core", "/ws/core"))
    assert doc_filters(m, WS, None) == []  # no cache: everything
    assert doc_filters(m, WS, ["app"]) == []  # its folder is the root: no filter selects it
    assert doc_filters(m, WS, ["core"]) == ["core/"]
    outside = meta(("vendored", "/elsewhere/vendored"))
    assert doc_filters(outside, WS, ["vendored"]) == []


def test_the_filter_matches_how_rustdoc_names_doc_tests() -> None:
    out = (
        "   Doc-tests trading_system\n\nrunning 1 test\n"
        "test crates/sys/src/config.rs - config::Config::from_lookup (line 63) ... ok\n\n"
        "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n"
    )
    [case] = parse_libtest(out)
    [prefix] = doc_filters(meta(("trading-system", "/ws/crates/sys")), WS, ["trading-system"])
    assert case.name.startswith(prefix) and case.suite == "doc:trading_system"
