"""GitHub annotations of findings: escaping, locations re-based to the repository root,
failing tests located from their panic message."""

from __future__ import annotations

import io
from pathlib import Path

from ci.annotations import MAX_ANNOTATIONS, command, commands, escape_data, escape_property
from ci.result import Finding


def test_escaping_follows_the_workflow_command_rules() -> None:
    assert escape_data("50% done\r\nnext: a,b") == "50%25 done%0D%0Anext: a,b"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_clippy_finding_points_at_the_line_relative_to_the_repository(tmp_path: Path) -> None:
    ws = tmp_path / "svc"
    ws.mkdir()
    f = Finding(
        "clippy",
        "this `if` has identical blocks",
        "clippy::if_same_then_else",
        file="src/lib.rs",
        line=12,
    )
    line = command(f, "lint", ws, tmp_path)
    assert line == (
        "::error file=svc/src/lib.rs,line=12,title=lint%3A clippy (clippy%3A%3Aif_same_then_else)"
        "::this `if` has identical blocks"
    )


def test_failing_test_is_located_from_its_panic_location(tmp_path: Path) -> None:
    f = Finding(
        "tests",
        "tests::planted failed: assertion `left == right` failed: 2 + 2 "
        "is not 5 (at src/lib.rs:17:9)",
        "test-failure",
        crate="fixture-test-fault",
    )
    line = command(f, "unit", tmp_path, tmp_path)
    assert line.startswith("::error file=src/lib.rs,line=17,title=unit%3A tests (test-failure)::")
    assert line.endswith("is not 5 (at src/lib.rs:17:9)")


def test_file_outside_the_repository_gets_no_location(tmp_path: Path) -> None:
    f = Finding(
        "clippy",
        "a\nb",
        file="/root/.cargo/registry/src/x/lib.rs",
        line=3,
        crate="dep",
        severity="warning",
    )
    line = command(f, "lint", tmp_path, tmp_path)
    assert line == "::warning title=lint%3A clippy::dep: a%0Ab"


def test_errors_first_and_capped(tmp_path: Path) -> None:
    many = [Finding("clippy", f"w{i}", severity="warning") for i in range(60)]
    many.append(Finding("clippy", "the error"))
    lines = commands(many, "lint", tmp_path, tmp_path)
    assert len(lines) == MAX_ANNOTATIONS
    assert lines[0].startswith("::error ") and lines[0].endswith("::the error")


def test_stage_execute_emits_annotations_under_github(tmp_path: Path, monkeypatch) -> None:
    """The stage framework turns a stage's findings into annotations (GITHUB_ACTIONS)."""
    import ci.stage as stage_mod
    from ci.registry import StageSpec
    from ci.result import StageResult, Status

    (tmp_path / "pyproject.toml").write_text("[tool.pipeline]\n")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "Cargo.toml").write_text('[package]\nname = "x"\nversion = "0.1.0"\n')

    def fake(ctx: stage_mod.StageContext) -> StageResult:
        finding = Finding("clippy", "bad, very: bad", "clippy::x", file="src/a.rs", line=3)
        return StageResult("lint", Status.FAILED, 0, 0, "1 diagnostic", findings=[finding])

    monkeypatch.setattr(stage_mod, "resolve", lambda target: fake)
    specs = (StageSpec("lint", "lint", "x:y"),)
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(tmp_path),
        "CIPIPE_WORKSPACE": str(ws),
        "CIPIPE_OUTPUT_DIR": str(tmp_path / "out"),
        "CIPIPE_HISTORY__PATH": str(tmp_path / "h.sqlite3"),
    }
    out = io.StringIO()
    code, _ = stage_mod.execute("lint", tmp_path, env=env, stream=out, stages=specs)
    assert code == 1
    assert (
        "::error file=ws/src/a.rs,line=3,title=lint%3A clippy (clippy%3A%3Ax)::bad, very: bad"
        in out.getvalue()
    )
