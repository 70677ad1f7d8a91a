"""`nox -s e2e` on bad input: one clear line and an error result, never a test run
against nothing."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import run_nox

from .sshd import free_port


def test_no_url_and_nothing_answering_are_one_line_each(fixture_env, tmp_path: Path) -> None:
    env = fixture_env("clean")
    out = Path(env["CIPIPE_OUTPUT_DIR"])
    r = run_nox(["e2e"], env)
    assert r.returncode != 0
    assert "nox -s e2e needs the service's base URL: nox -s e2e -- --url http://host:port" in (
        r.stdout + r.stderr
    )
    assert json.loads((out / "e2e.json").read_text())["status"] == "error"

    url = f"http://127.0.0.1:{free_port()}"
    r = run_nox(["e2e"], env, "--", "--url", url, "--smoke")
    text = r.stdout + r.stderr
    assert r.returncode != 0 and f"nothing answers at {url}" in text
    assert "Traceback" not in text and "collected" not in text  # pytest never started
    result = json.loads((out / "e2e.json").read_text())
    assert result["status"] == "error" and result["findings"][0]["rule"] == "unreachable"
