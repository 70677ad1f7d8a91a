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
    s = load(root, {"PIPELINE_BUDGETS__LINT": "45", "PIPELINE_SERVICES__BACKEND": "local"})
    assert s.workspace == (tmp_path / "ws").resolve()
    assert s.budget("lint") == 45
    assert s.section("services").choice("backend", ("auto", "docker", "local"), "auto") == "local"


def test_env_list_is_comma_separated(tmp_path: Path) -> None:
    s = load(tmp_path, {"PIPELINE_INTEGRATION__SERVICES": "redis, postgres"})
    assert s.section("integration").strings("services") == ["redis", "postgres"]


def test_malformed_number_names_key_and_env_var(tmp_path: Path) -> None:
    s = load(tmp_path, {"PIPELINE_BUDGETS__LINT": "fast"})
    with pytest.raises(ConfigError) as err:
        s.budget("lint")
    msg = str(err.value)
    assert "budgets.lint" in msg and "PIPELINE_BUDGETS__LINT" in msg and "'fast'" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("raw", ["maybe", "2"])
def test_malformed_bool(tmp_path: Path, raw: str) -> None:
    s = load(tmp_path, {"PIPELINE_SERVICES__PULL": raw})
    with pytest.raises(ConfigError, match="expected true or false"):
        s.section("services").flag("pull")


def test_bool_words(tmp_path: Path) -> None:
    s = load(tmp_path, {"PIPELINE_SERVICES__PULL": "yes"})
    assert s.section("services").flag("pull") is True


def test_choice_rejects_unknown(tmp_path: Path) -> None:
    s = load(tmp_path, {"PIPELINE_SERVICES__BACKEND": "podman"})
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
    missing = load(tmp_path, {"PIPELINE_WORKSPACE": str(tmp_path / "nope")})
    with pytest.raises(WorkspaceError, match="does not exist"):
        missing.require_workspace()


def test_merge_env_does_not_mutate_input() -> None:
    data = {"budgets": {"lint": 60}}
    merged = merge_env(data, {"PIPELINE_BUDGETS__LINT": "1", "OTHER": "x"})
    assert data == {"budgets": {"lint": 60}}
    assert merged == {"budgets": {"lint": "1"}}


def test_empty_env_segment_rejected() -> None:
    with pytest.raises(ConfigError, match="empty key segment"):
        merge_env({}, {"PIPELINE_BUDGETS____LINT": "1"})
