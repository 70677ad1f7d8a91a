"""The reference trading workspace through the real pipeline: `invoke ci` is green."""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers import ROOT, run_invoke, shared_target_dir

from .leftovers import assert_nothing_left

STAGES = ("lint", "security", "unit", "integration")


def test_invoke_ci_passes_on_the_reference_workspace(tmp_path: Path, advisory_db: Path) -> None:
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIPIPE_")}
    env.update(
        CIPIPE_OUTPUT_DIR=str(out),
        CIPIPE_CARGO_TARGET_DIR=shared_target_dir(),
        # No network here: the advisory checks use a local database (nothing fetched).
        CIPIPE_SECURITY__OFFLINE="true",
        CIPIPE_SECURITY__ADVISORY_DB=str(advisory_db),
    )
    r = run_invoke(["ci"], env, timeout=1800)
    output = r.stdout + r.stderr
    assert r.returncode == 0, output
    table = output[output.index("stage ") :]
    for stage in STAGES:
        row = next(line for line in table.splitlines() if line.startswith(stage + " "))
        assert " PASS " in row, row
        data = json.loads((out / f"{stage}.json").read_text())
        assert data["status"] == "passed", data
    unit = json.loads((out / "unit.json").read_text())
    assert "doctests: 0 passed" not in unit["summary"]  # the library's doc tests ran
    assert (out / "summary.md").read_text().startswith("## Pipeline: passed")
    assert (out / "security" / "security.sarif").is_file()
    assert_nothing_left(out / "integration.log")
    assert ROOT.joinpath("Cargo.lock").is_file()
