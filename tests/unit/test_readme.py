"""Check-mode twins of the docs: the README's quick start and stage list stay true."""

from __future__ import annotations

import re
from pathlib import Path

from ci.registry import STAGES

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)]


def test_exactly_two_fresh_machine_commands() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert main_job.endswith("invoke ci")
    assert "pytest" in tests


def test_ci_run_runs_the_readme_test_command() -> None:
    run = (ROOT / ".ci" / "run").read_text().splitlines()
    test_command = quick_start_commands()[1]
    assert run[-1].strip() == test_command


def test_every_stage_is_documented() -> None:
    for spec in STAGES:
        assert f"`nox -s {spec.name}`" in README, spec.name


def test_noxfile_generates_a_session_per_stage() -> None:
    import importlib.util

    from nox.registry import get

    spec_ = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
    assert spec_ is not None and spec_.loader is not None
    spec_.loader.exec_module(importlib.util.module_from_spec(spec_))
    sessions = get()
    for spec in STAGES:
        func = sessions[spec.name]
        assert func.__doc__ == spec.description
        assert func.venv_backend == ("uv|virtualenv" if spec.python else "none"), spec.name


# Stage tools that live only in their stage's virtualenv, with why they cannot join [dev].
VENV_ONLY = {
    # Codecov's uploader pins click < 8.3 and pulls sentry-sdk: kept out of the developer
    # environment; the coverage stage finds it beside its own python (codecov.find_cli).
    "codecov-cli",
}


def test_dev_extras_pin_every_stage_tool_like_the_registry() -> None:
    import tomllib

    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for spec in STAGES:
        for requirement in spec.python:
            if requirement.split("==")[0] in VENV_ONLY:
                assert requirement not in dev["dev"], f"{requirement}: venv-only, not in [dev]"
                continue
            assert requirement in dev["dev"], f"{spec.name}: {requirement} missing from [dev]"
