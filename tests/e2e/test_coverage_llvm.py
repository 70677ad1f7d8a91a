"""`nox -s coverage` with the llvm-cov engine (the default): the same gate on the same
fixture, the pinned cargo-llvm-cov, and LLVM tools of another major than rustc's refused
in one line before anything is built."""

from __future__ import annotations

from pathlib import Path

from helpers import run_nox

from .test_coverage import checks, result


def llvm_env(fixture_env, name: str, **extra: str) -> dict[str, str]:
    return fixture_env(
        name, **{"CIPIPE_COVERAGE__CRITICAL": "", "CIPIPE_COVERAGE__ENGINE": "llvm-cov", **extra}
    )


def test_low_coverage_is_blocked_with_the_llvm_cov_figure(fixture_env) -> None:
    env = llvm_env(fixture_env, "coverage_low")
    r = run_nox(["coverage"], env)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "is below the minimum of 80%" in out
    data = result(env)
    assert data["status"] == "failed"
    assert [f["rule"] for f in data["findings"]] == ["min-total"]
    assert checks(data)["tests"]["tool_version"] == "0.9.1"
    assert float(data["outputs"]["total"]) < 80
    assert Path(data["artifacts"]["cobertura"]).is_file()


def test_llvm_tools_of_another_major_are_one_line(fixture_env, tmp_path: Path) -> None:
    fake = tmp_path / "llvm19"
    fake.mkdir()
    for tool in ("llvm-profdata", "llvm-cov"):
        (fake / tool).write_text("#!/bin/sh\necho 'Debian LLVM version 19.1.7'\n")
        (fake / tool).chmod(0o755)
    env = llvm_env(fixture_env, "coverage_low", CIPIPE_COVERAGE__LLVM_BIN=str(fake))
    r = run_nox(["coverage"], env)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "Traceback" not in out, out
    lines = [line for line in out.splitlines() if "reports LLVM 19 but rustc uses LLVM" in line]
    assert lines, out
    assert "apt-get install llvm-" in lines[0]
    assert result(env)["status"] == "error"
