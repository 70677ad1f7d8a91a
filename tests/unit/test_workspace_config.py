"""Per-workspace configuration: settings that name a workspace's paths come from that
workspace (its pyproject.toml [tool.pipeline], or [workspace|package.metadata.pipeline]
in its Cargo.toml), over the pipeline's defaults, under the environment. The reference
workspace's own settings never leak into another workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci.coverage.config import load as coverage_config
from ci.errors import ConfigError
from ci.settings import DEFAULTS_FILE, load

ROOT = Path(__file__).resolve().parents[2]


def crate(folder: Path, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Cargo.toml").write_text(
        '[package]\nname = "other"\nversion = "0.1.0"\nedition = "2021"\n' + extra
    )
    return folder


def test_reference_settings_do_not_leak_into_another_workspace(tmp_path: Path) -> None:
    other = crate(tmp_path / "other")
    ref = load(ROOT, {})
    assert any("trading-core" in c for c in coverage_config(ref).critical)
    s = load(ROOT, {"CIPIPE_WORKSPACE": str(other)})
    assert s.workspace == other.resolve()
    assert coverage_config(s).critical == ()
    assert s.top.text("binary") == ""  # no default names the reference's binary either
    assert s.source == DEFAULTS_FILE
    assert "trading-system" not in repr(s.data) and "trading-core" not in repr(s.data)


def test_the_reference_is_configured_by_its_own_pyproject() -> None:
    s = load(ROOT, {})
    assert s.source == ROOT / "pyproject.toml"
    assert s.top.text("binary") == "trading-system"


def test_a_workspace_pyproject_configures_it(tmp_path: Path) -> None:
    other = crate(tmp_path / "other")
    (other / "pyproject.toml").write_text(
        '[tool.pipeline.coverage]\ncritical = ["src/lib.rs"]\n'
        "[tool.pipeline.budgets]\nlint = 200\nunit = 300\n"
    )
    s = load(ROOT, {"CIPIPE_WORKSPACE": str(other), "CIPIPE_BUDGETS__UNIT": "400"})
    assert s.source == other / "pyproject.toml"
    assert coverage_config(s).critical == ("src/lib.rs",)
    assert s.budget("lint") == 200  # budgets are per workspace
    assert s.budget("unit") == 400  # the environment is over the workspace's file
    assert s.budget("coverage") == 120  # the pipeline's default underneath
    assert s.workspace == other.resolve()


@pytest.mark.parametrize("table", ["workspace.metadata.pipeline", "package.metadata.pipeline"])
def test_cargo_metadata_configures_it(tmp_path: Path, table: str) -> None:
    other = crate(tmp_path / "other", f"\n[{table}.budgets]\nlint = 240\n")
    if table.startswith("workspace"):
        text = (other / "Cargo.toml").read_text()
        (other / "Cargo.toml").write_text(
            text.replace("[workspace.metadata", "[workspace]\n[workspace.metadata")
        )
    s = load(ROOT, {"CIPIPE_WORKSPACE": str(other)})
    assert s.budget("lint") == 240
    assert s.source == other / "Cargo.toml"
    assert s.source_label() == f"{other / 'Cargo.toml'} [{table}]"


def test_unknown_key_in_cargo_metadata_names_the_file(tmp_path: Path) -> None:
    other = crate(tmp_path / "other", "\n[package.metadata.pipeline]\nbugdets = 1\n")
    with pytest.raises(ConfigError) as err:
        load(ROOT, {"CIPIPE_WORKSPACE": str(other)})
    assert str(other / "Cargo.toml") in str(err.value) and "bugdets" in str(err.value)


def test_two_configurations_in_one_workspace_are_refused(tmp_path: Path) -> None:
    other = crate(tmp_path / "other", "\n[package.metadata.pipeline.budgets]\nlint = 5\n")
    (other / "pyproject.toml").write_text("[tool.pipeline.budgets]\nlint = 6\n")
    with pytest.raises(ConfigError, match="configured twice"):
        load(ROOT, {"CIPIPE_WORKSPACE": str(other)})


def test_a_pyproject_without_pipeline_table_falls_through_to_cargo(tmp_path: Path) -> None:
    other = crate(tmp_path / "other", "\n[package.metadata.pipeline.budgets]\nlint = 7\n")
    (other / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert load(ROOT, {"CIPIPE_WORKSPACE": str(other)}).budget("lint") == 7


def test_relative_workspace_in_env_is_relative_to_the_project(tmp_path: Path) -> None:
    crate(tmp_path / "ws")
    (tmp_path / "pyproject.toml").write_text('[tool.pipeline]\nbinary = "host-bin"\n')
    (tmp_path / "ws" / "pyproject.toml").write_text('[tool.pipeline]\nbinary = "ws-bin"\n')
    s = load(tmp_path, {"CIPIPE_WORKSPACE": "ws"})
    assert s.workspace == (tmp_path / "ws").resolve()
    assert s.top.text("binary") == "ws-bin"


def test_deny_config_of_a_workspace_is_relative_to_its_file(tmp_path: Path) -> None:
    other = crate(tmp_path / "other")
    (other / "pyproject.toml").write_text('[tool.pipeline.security]\ndeny_config = "policy.toml"\n')
    s = load(ROOT, {"CIPIPE_WORKSPACE": str(other)})
    assert s.config_path(s.section("security"), "deny_config") == other / "policy.toml"
    ref = load(ROOT, {})
    assert ref.config_path(ref.section("security"), "deny_config") == ROOT / "deny.toml"


def test_the_reference_policy_never_judges_another_workspace(tmp_path: Path) -> None:
    from ci.stages.security import policy_file

    other = crate(tmp_path / "other")
    s = load(ROOT, {"CIPIPE_WORKSPACE": str(other)})
    assert policy_file(s) == DEFAULTS_FILE.with_name("deny.toml")  # the pipeline's default
    (other / "deny.toml").write_text("[licenses]\nallow = []\n")
    assert policy_file(s) == other / "deny.toml"  # the workspace's own, found like cargo-deny
    assert policy_file(load(ROOT, {})) == ROOT / "deny.toml"


def test_the_gate_table_and_summary_say_which_file_configured_the_run(tmp_path: Path) -> None:
    from ci.report import markdown, table
    from ci.result import StageResult, Status, read_result, write_result

    label = "/ws/Cargo.toml [package.metadata.pipeline]"
    written = StageResult("lint", Status.PASSED, 1.0, 60.0, summary="ok", config=label)
    write_result(tmp_path, written)
    result = read_result(tmp_path, "lint")
    assert result is not None and result.config == label
    assert f"configured by {label}" in table([result])
    assert f"Configured by `{label}`" in markdown([result])
