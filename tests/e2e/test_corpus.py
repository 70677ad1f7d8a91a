"""The pipeline on published crates nobody here wrote, as a team adopting it would run it
first: `invoke ci --stages lint,security,unit,integration,coverage` with CIPIPE_WORKSPACE
pointing at the crate's published source. Its verdicts must equal what the crate's own
`cargo fmt --check`, `cargo clippy --all-targets -- -D warnings` and `cargo test` say on
the same checkout, and every stage must end in a verdict with its reason (passed, failed
with the cause, skipped with why), never an error of the pipeline's own.

Selected with `-m corpus`; the table of verdicts and times is printed at the end of the
session (and written to <corpus cache>/report.md)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from helpers import git, run_invoke

from . import corpus
from .corpus import Case, Crate

pytestmark = pytest.mark.corpus

# Two runs, so the test stages run even where lint is red (the comparison needs them).
RUNS = (("lint", "security"), ("unit", "integration", "coverage"))
STAGES = tuple(s for run in RUNS for s in run)
CASES = (
    Case("cfg-if 1.0.4", "no_std, no dependencies", (Crate("cfg-if", "1.0.4"),)),
    Case(
        "cfg-if 1.0.0",
        "no_std; its own tests deny today's warnings",
        (Crate("cfg-if", "1.0.0"),),
    ),
    Case("rustversion", "proc-macro with a build script", (Crate("rustversion", "1.0.17"),)),
    Case("semver", "build script, nightly-only bench", (Crate("semver", "1.0.23"),)),
    Case("smallvec", "test target behind required-features", (Crate("smallvec", "1.13.2"),)),
    Case(
        "lazy_static",
        "ships a Cargo.lock its .gitignore excludes",
        (Crate("lazy_static", "1.5.0"),),
    ),
    Case(
        "enumflags2 workspace",
        "two members (lib + its proc-macro), no Cargo.lock",
        (Crate("enumflags2", "0.7.12"), Crate("enumflags2_derive", "0.7.12")),
        members=("enumflags2", "enumflags2_derive"),
    ),
)
ROWS: list[dict[str, str]] = []  # printed by conftest's terminal summary


@pytest.fixture(scope="module")
def cache() -> Path:
    where = corpus.cache_dir()
    missing = [c for case in CASES for c in case.crates if not (where / c.file).is_file()]
    if missing and (why := corpus.unreachable()):
        pytest.skip(f"corpus not cached and {why}")
    return where


def cargo(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["cargo", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def passed_tests(output: str) -> int:
    """The tests `cargo test` ran and passed: the sum of its `test result:` lines."""
    return sum(int(m) for m in re.findall(r"^test result: \w+\. (\d+) passed", output, re.M))


def counted(summary: str, check: str) -> int:
    found = re.search(rf"(?:^|; ){check}: (\d+) passed", summary)
    return int(found.group(1)) if found else 0


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_pipeline_verdicts_equal_the_crate_s_own(
    case: Case, cache: Path, tmp_path: Path, real_advisory_db: Path
) -> None:
    ws = corpus.checkout(case, cache, tmp_path / "src")
    git(ws, "init", "-q")
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", f"{case.id}: the published source")
    target = cache / "target"  # its own: no lock contention with other builds
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIPIPE_")}
    env.pop("GITHUB_ACTIONS", None)
    env.update(
        CIPIPE_WORKSPACE=str(ws),
        CIPIPE_CARGO_TARGET_DIR=str(target),
        CIPIPE_HISTORY__PATH=str(tmp_path / "history.sqlite3"),
        CIPIPE_CACHE__ENABLED="false",
        CIPIPE_PROGRESS="plain",
        # A cold first build may take longer than a budget; the hard limit is not the
        # subject here (the gate table flags the budget).
        CIPIPE_TIMEOUT_FACTOR="10",
        # The real RustSec database (a snapshot: GitHub is not reachable from CI here).
        CIPIPE_SECURITY__OFFLINE="true",
        CIPIPE_SECURITY__ADVISORY_DB=str(real_advisory_db),
        CIPIPE_SECURITY__MAX_AGE_DAYS="36500",
    )
    results: dict[str, dict] = {}
    log = ""
    took = 0.0
    for i, stages in enumerate(RUNS):
        out = tmp_path / f"out{i}"
        started = time.monotonic()
        run = run_invoke(
            ["ci", "--stages", ",".join(stages)], {**env, "CIPIPE_OUTPUT_DIR": str(out)}, 1800
        )
        took += time.monotonic() - started
        log += run.stdout + run.stderr
        results.update({s: json.loads((out / f"{s}.json").read_text()) for s in stages})

    # The crate's own verdicts, on the same checkout (and the lock file the run resolved),
    # in the target dirs the stages used (so nothing is built twice).
    own = {**env, "CARGO_TARGET_DIR": str(target), "CARGO_TERM_COLOR": "never"}
    fmt = cargo(["fmt", "--all", "--check"], ws, own)
    lint_args = ["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]
    clippy = cargo(lint_args, ws, {**own, "CARGO_TARGET_DIR": str(target / "clippy")})
    test = cargo(["test", "--workspace"], ws, own)
    checks = {s: {c["name"]: c for c in r["checks"]} for s, r in results.items()}
    row = {"crate": case.id, "shape": case.shape}
    for stage, data in results.items():
        row[stage] = f"{data['status']} {data['duration_s']:.0f}s"
    row["total"] = f"{took:.0f}s"
    row["cargo"] = (
        f"fmt {'ok' if fmt.returncode == 0 else 'red'}, clippy "
        f"{'ok' if clippy.returncode == 0 else 'red'}, test "
        f"{'ok' if test.returncode == 0 else 'red'} ({passed_tests(test.stdout)} passed)"
    )
    ROWS.append(row)

    for stage, data in results.items():
        # blocked: integration and coverage need a green unit stage, as in CI.
        assert data["status"] in ("passed", "failed", "skipped", "blocked"), (stage, data, log)
        assert data["summary"].strip(), (stage, data)
        if data["status"] == "failed":
            assert data["findings"], (stage, data)  # failed with its cause named
    assert (checks["lint"]["fmt"]["status"] == "passed") == (fmt.returncode == 0), fmt.stdout
    assert (checks["lint"]["clippy"]["status"] == "passed") == (clippy.returncode == 0), (
        clippy.stderr[-3000:],
        results["lint"],
    )
    green = results["unit"]["status"] == "passed" and results["integration"]["status"] in (
        "passed",
        "skipped",
    )
    assert green == (test.returncode == 0), (test.stdout[-3000:], results["unit"], log[-3000:])
    if green:  # the same tests ran: lib, bin and doc tests in unit, tests/ in integration
        ours = sum(
            counted(results[s]["summary"], c)
            for s, c in (("unit", "tests"), ("unit", "doctests"), ("integration", "tests"))
        )
        assert ours == passed_tests(test.stdout), (results["unit"], results["integration"])
    # Nothing of the reference workspace's configuration reached this crate.
    text = "\n".join(json.dumps(r) for r in results.values())
    assert "trading-core" not in text and "trading-system" not in text
    # The stages that ran say which file configured them: the crate configures nothing.
    configured = [r["config"] for r in results.values() if r["status"] != "blocked"]
    assert configured and all("the pipeline's defaults" in c for c in configured)
