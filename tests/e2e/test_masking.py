"""Masking is a sink, never a filter in front of a parser: a secret that is also a common
word cannot change any gate's verdict, and a planted token appears in no file the
pipeline writes (the add-mask commands reach only the runner's terminal)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import run_invoke, run_nox

TOKEN = "ghp_PLANTED0TOKEN0for0masking0tests"
URL_PASSWORD = re.compile(r"postgres://postgres:([^@\s]+)@")


def statuses(out: Path) -> dict[str, str]:
    return {p.stem: json.loads(p.read_text())["status"] for p in out.glob("*.json")}


def every_file(out: Path) -> dict[Path, str]:
    return {p: p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()}


@pytest.mark.parametrize("secret", ["test", "error", "warning"])
def test_a_secret_that_is_a_common_word_never_changes_a_verdict(
    fixture_env, advisory_db: Path, secret: str
) -> None:
    cases = [
        ("clean", ["lint", "unit", "integration"], {"lint", "unit", "integration"}, set()),
        ("fmt_fault", ["lint"], set(), {"lint"}),
        ("test_fault", ["unit"], set(), {"unit"}),
        ("integration_fault", ["integration"], set(), {"integration"}),
        ("security/gpl_license", ["security"], set(), {"security"}),
    ]
    for fixture, sessions, passing, failing in cases:
        env = fixture_env(
            fixture,
            POSTGRES_PASSWORD=secret,
            CIPIPE_SECURITY__ADVISORY_DB=str(advisory_db),
        )
        out = Path(env["CIPIPE_OUTPUT_DIR"])
        r = run_nox(sessions, env)
        got = statuses(out)
        assert got == {**dict.fromkeys(passing, "passed"), **dict.fromkeys(failing, "failed")}, (
            fixture,
            got,
            r.stdout[-3000:],
        )
        assert (r.returncode == 0) == (not failing)
        for junit in out.rglob("junit.xml"):
            ET.fromstring(junit.read_text())  # the masked copy is still a JUnit report
        if fixture == "security/gpl_license":
            policy = json.loads((out / "security.json").read_text())
            [check] = [c for c in policy["checks"] if c["name"] == "policy"]
            assert check["status"] == "failed"  # a licence error is never read as a warning
        for path in out.glob("*.json"):  # free text is masked (paths and keys are not)
            data = json.loads(path.read_text())
            texts = [data["summary"], *(f["message"] for f in data["findings"])]
            assert not any(secret in t for t in texts), (path, texts)
        for p in out.iterdir():  # fresh output folder for the next case
            if p.is_file():
                p.unlink()


def test_planted_token_and_generated_password_are_in_no_file(fixture_env) -> None:
    env = fixture_env("integration_fault", GITHUB_TOKEN=TOKEN, GITHUB_ACTIONS="true")
    out = Path(env["CIPIPE_OUTPUT_DIR"])
    r = run_invoke(["ci", "--stages", "unit,integration"], env)
    assert r.returncode == 1, r.stdout
    assert statuses(out) == {"unit": "passed", "integration": "failed"}
    files = every_file(out)
    assert any(p.name == "junit.xml" for p in files) and any(
        p.name.endswith(".console.log") for p in files
    )
    shown_passwords = []
    for path, text in files.items():
        assert TOKEN not in text, f"token in {path}"
        assert "add-mask" not in text, f"add-mask command saved in {path}"
        shown_passwords += URL_PASSWORD.findall(text)
    # The failing test printed DATABASE_URL: everywhere it was kept, masked.
    assert shown_passwords and set(shown_passwords) == {"***"}
    # The runner's own terminal got the add-mask commands: the token from the environment
    # and the password generated inside the stage process.
    masks = re.findall(r"^::add-mask::(.+)$", r.stdout, re.M)
    assert TOKEN in masks
    assert len(masks) >= 2, masks
    terminal = r.stdout.replace(f"::add-mask::{TOKEN}", "")
    assert TOKEN not in terminal and TOKEN not in r.stderr


def test_child_processes_get_only_declared_secrets(fixture_env) -> None:
    # The clean fixture has a test asserting GITHUB_TOKEN and NPM_TOKEN are not set.
    env = fixture_env("clean", GITHUB_TOKEN=TOKEN, NPM_TOKEN=TOKEN + "2")
    r = run_nox(["integration"], env)
    assert r.returncode == 0, r.stdout[-3000:]
    # Declared (pass_env), the secret does reach the tests: the check above is not vacuous.
    env = fixture_env(
        "clean", GITHUB_TOKEN=TOKEN, NPM_TOKEN=TOKEN + "2", CIPIPE_PASS_ENV="NPM_TOKEN"
    )
    r = run_nox(["integration"], env)
    assert r.returncode != 0
    assert "NPM_TOKEN reached the test process" in r.stdout + r.stderr
    assert TOKEN not in r.stdout + r.stderr
