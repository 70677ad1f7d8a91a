"""The workflows pass zizmor (no finding of high severity, offline) and actionlint, and
`invoke workflows.check` refuses a workflow naming a missing session with one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, run_invoke

from ci.registry import STAGES

WORKFLOWS = ROOT / ".github" / "workflows"


def _tool(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    assert Path(found).exists(), f"{name} missing: pip install -e '.[dev]'"
    return found


def test_zizmor_finds_nothing_of_high_severity() -> None:
    res = subprocess.run(
        [
            _tool("zizmor"),
            "--offline",
            "--format",
            "json",
            "--min-severity",
            "high",
            str(WORKFLOWS),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout) == []


def test_zizmor_catches_a_planted_template_injection(tmp_path: Path) -> None:
    bad = tmp_path / ".github" / "workflows"
    bad.mkdir(parents=True)
    (bad / "bad.yml").write_text(
        "on: pull_request_target\npermissions: write-all\njobs:\n  x:\n"
        "    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    res = subprocess.run(
        [_tool("zizmor"), "--offline", "--format", "json", "--min-severity", "high", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    rules = {f["ident"] for f in json.loads(res.stdout)}
    assert res.returncode != 0 and "template-injection" in rules, res.stdout


def test_actionlint_is_clean() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    res = subprocess.run(
        [_tool("actionlint"), "-no-color", *files], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    needs: nope\n"
        "    steps:\n      - run: echo ${{ matrix.missing }}\n"
    )
    res = subprocess.run(
        [_tool("actionlint"), "-no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert res.returncode != 0 and "nope" in res.stdout, res.stdout


def test_workflows_check_names_a_missing_session_in_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "w.yml").write_text(
        "on: push\npermissions: {}\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: bash .ci/setup python\n      - run: nox -s benchmark\n"
    )
    before = (folder / "w.yml").read_text()
    env = {**os.environ}
    res = run_invoke(["workflows.check", "--path", str(folder)], env)
    assert res.returncode == 3, res.stdout + res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    sessions = ", ".join(s.name for s in STAGES)
    assert lines == [
        f"error: w.yml: job x, step 2: nox session 'benchmark' does not exist "
        f"(sessions: {sessions})"
    ], res.stderr
    assert (folder / "w.yml").read_text() == before
    ok = run_invoke(["workflows.check"], env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
