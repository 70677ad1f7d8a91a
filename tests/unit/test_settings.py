from __future__ import annotations

from pathlib import Path

import pytest

from ci.errors import ConfigError, WorkspaceError
from ci.settings import load, merge_env


def write_pyproject(tmp_path: Path, body: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(body)
    return tmp_path


def test_defaults_without_pyproject(tmp_path: Path) -> None:
    s = load(tmp_path, {})
    assert s.workspace == tmp_path.resolve()
    assert s.out_dir == tmp_path.resolve() / "target" / "pipeline"
    assert s.budget("lint") == 60
    assert s.budget("integration") == 300
    assert s.parallelism == 2
    assert s.cargo_target_dir is None


def test_pyproject_values_and_env_override(tmp_path: Path) -> None:
    root = write_pyproject(
        tmp_path,
        '[tool.pipeline]\nworkspace = "ws"\n[tool.pipeline.budgets]\nlint = 30\n'
        '[tool.pipeline.services]\nbackend = "docker"\n',
    )
    s = load(root, {"CIPIPE_BUDGETS__LINT": "45", "CIPIPE_SERVICES__BACKEND": "local"})
    assert s.workspace == (tmp_path / "ws").resolve()
    assert s.budget("lint") == 45
    assert s.section("services").choice("backend", ("auto", "docker", "local"), "auto") == "local"


def test_env_list_is_comma_separated(tmp_path: Path) -> None:
    s = load(tmp_path, {"CIPIPE_INTEGRATION__SERVICES": "redis, postgres"})
    assert s.section("integration").strings("services") == ["redis", "postgres"]


def test_malformed_number_names_key_and_env_var(tmp_path: Path) -> None:
    s = load(tmp_path, {"CIPIPE_BUDGETS__LINT": "fast"})
    with pytest.raises(ConfigError) as err:
        s.budget("lint")
    msg = str(err.value)
    assert "budgets.lint" in msg and "CIPIPE_BUDGETS__LINT" in msg and "'fast'" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("raw", ["maybe", "2"])
def test_malformed_bool(tmp_path: Path, raw: str) -> None:
    s = load(tmp_path, {"CIPIPE_SERVICES__PULL": raw})
    with pytest.raises(ConfigError, match="expected true or false"):
        s.section("services").flag("pull")


def test_bool_words(tmp_path: Path) -> None:
    s = load(tmp_path, {"CIPIPE_SERVICES__PULL": "yes"})
    assert s.section("services").flag("pull") is True


def test_choice_rejects_unknown(tmp_path: Path) -> None:
    s = load(tmp_path, {"CIPIPE_SERVICES__BACKEND": "podman"})
    with pytest.raises(ConfigError, match="one of auto, docker, local"):
        s.section("services").choice("backend", ("auto", "docker", "local"), "auto")


def test_negative_budget_rejected(tmp_path: Path) -> None:
    root = write_pyproject(tmp_path, "[tool.pipeline.budgets]\nlint = -1\n")
    with pytest.raises(ConfigError, match=">= 1"):
        load(root, {}).budget("lint")


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    root = write_pyproject(tmp_path, "[tool.pipeline\nx = 1\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load(root, {})


def test_table_where_scalar_expected(tmp_path: Path) -> None:
    root = write_pyproject(tmp_path, "[tool.pipeline]\nservices = 3\n")
    with pytest.raises(ConfigError, match="expected a table"):
        load(root, {}).section("services")


def test_not_a_workspace(tmp_path: Path) -> None:
    s = load(tmp_path, {})
    with pytest.raises(WorkspaceError, match="not a Cargo workspace"):
        s.require_workspace()
    missing = load(tmp_path, {"CIPIPE_WORKSPACE": str(tmp_path / "nope")})
    with pytest.raises(WorkspaceError, match="does not exist"):
        missing.require_workspace()


def test_merge_env_does_not_mutate_input() -> None:
    data = {"budgets": {"lint": 60}}
    merged = merge_env(data, {"CIPIPE_BUDGETS__LINT": "1", "OTHER": "x", "PIPELINE_X": "y"})
    assert data == {"budgets": {"lint": 60}}
    assert merged == {"budgets": {"lint": "1"}}


def test_empty_env_segment_rejected() -> None:
    with pytest.raises(ConfigError, match="empty key segment"):
        merge_env({}, {"CIPIPE_BUDGETS____LINT": "1"})


def test_unknown_env_key_is_rejected_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, {"CIPIPE_SECURITY__OFLINE": "true"})
    msg = str(err.value)
    assert "CIPIPE_SECURITY__OFLINE" in msg and "'security.ofline'" in msg
    assert "offline" in msg  # the known keys of the table are listed
    assert "\n" not in msg


def test_unknown_pyproject_key_is_rejected(tmp_path: Path) -> None:
    root = write_pyproject(tmp_path, "[tool.pipeline.budgets]\nlnit = 30\n")
    with pytest.raises(ConfigError, match=r"unknown key 'budgets\.lnit'; known keys in budgets: "):
        load(root, {})


def test_env_naming_a_table_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a table; set one of its keys"):
        load(tmp_path, {"CIPIPE_SERVICES__POSTGRES": "x"})


def test_azure_pipelines_variables_are_not_ours(tmp_path: Path) -> None:
    # Azure Pipelines defines PIPELINE_WORKSPACE in every job: it must not move the workspace.
    s = load(tmp_path, {"PIPELINE_WORKSPACE": "/agent/_work/1"})
    assert s.workspace == tmp_path.resolve()


def test_project_pyproject_keys_are_all_known() -> None:
    from helpers import ROOT

    load(ROOT, {})  # raises on any key ci/defaults.toml does not declare


def test_timeout_is_explicit_or_a_multiple_of_the_budget(tmp_path: Path) -> None:
    s = load(tmp_path, {"CIPIPE_BUDGETS__UNIT": "10", "CIPIPE_TIMEOUT_FACTOR": "4"})
    assert s.timeout("unit") == 40
    s = load(tmp_path, {"CIPIPE_TIMEOUTS__UNIT": "7"})
    assert s.timeout("unit") == 7
