"""The bench stage end to end on the benchmark fixture (tests/fixtures/bench) committed
in a throwaway git repository: unchanged code passes in both modes, a committed 15%
slowdown is flagged with its name and numbers in both modes, targets fail with the
numbers, bad input is one line, Ctrl-C during a --base run leaves nothing behind, and
the trend chart draws several recorded runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import FIXTURES, ROOT, git, run_invoke, run_nox

from .leftovers import processes_mentioning
from .test_interrupt import wait_for

COST = 4000  # tests/fixtures/bench/src/lib.rs


@pytest.fixture
def bench_repo(tmp_path: Path) -> Path:
    """The fixture crate as the only commit of a new repository (branch main)."""
    repo = tmp_path / "repo"
    # Fresh modification times (shutil.copy, not copy2): cargo judges freshness by mtime,
    # and every test's copy builds into the same shared target dir.
    shutil.copytree(
        FIXTURES / "bench", repo, ignore=shutil.ignore_patterns("target"), copy_function=shutil.copy
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "fixture")
    return repo


def commit_cost(repo: Path, factor: float) -> None:
    """Commit the fixture with its cost scaled by `factor` (1.15: 15% slower)."""
    lib = repo / "src" / "lib.rs"
    text = lib.read_text()
    new = re.sub(
        r"pub const COST: u64 = \d+;", f"pub const COST: u64 = {round(COST * factor)};", text
    )
    assert new != text
    lib.write_text(new)
    git(repo, "commit", "-qam", f"cost x{factor}")


@pytest.fixture
def env(fixture_env, bench_repo: Path, tmp_path: Path):
    def make(**extra: str) -> dict[str, str]:
        return fixture_env(
            "bench",
            CIPIPE_WORKSPACE=str(bench_repo),
            CIPIPE_HISTORY__PATH=str(tmp_path / "history.sqlite3"),
            CIPIPE_BENCH__WORKTREE=str(tmp_path / "base-worktree"),
            **extra,
        )

    return make


def result(env: dict[str, str]) -> dict:
    return json.loads((Path(env["CIPIPE_OUTPUT_DIR"]) / "bench.json").read_text())


def comparison(env: dict[str, str]) -> dict:
    return json.loads((Path(env["CIPIPE_OUTPUT_DIR"]) / "bench" / "comparison.json").read_text())


def worktrees(repo: Path) -> list[str]:
    out = git(repo, "worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


def assert_nothing_left(repo: Path, worktree: Path) -> None:
    assert worktrees(repo) == [str(repo)], worktrees(repo)
    assert not worktree.exists()


@pytest.mark.parametrize("mode", ["wall", "instructions"])
def test_unchanged_code_passes(env, bench_repo: Path, tmp_path: Path, mode: str) -> None:
    e = env()
    r = run_nox(["bench"], e, "--", "--base", "HEAD", "--mode", mode)
    assert r.returncode == 0, r.stdout[-4000:]
    data = result(e)
    assert data["status"] == "passed", data
    rows = comparison(e)["rows"]
    names = {row["name"] for row in rows}
    if mode == "wall":  # the bench behind required-features ran too
        assert names == {"fixture/spin", "fixture/gated"}
    else:
        assert names == {"instructions::fixture::spin::cost"}
        assert rows[0]["change"]["percent"] == pytest.approx(0.0, abs=0.01)
    assert all(row["verdict"] != "regression" for row in rows), rows
    assert comparison(e)["base_commit"] == git(bench_repo, "rev-parse", "HEAD").strip()
    assert_nothing_left(bench_repo, tmp_path / "base-worktree")


@pytest.mark.parametrize("mode", ["wall", "instructions"])
def test_a_15_percent_slowdown_fails_with_its_name_and_numbers(
    env, bench_repo: Path, tmp_path: Path, mode: str
) -> None:
    commit_cost(bench_repo, 1.15)
    e = env(CIPIPE_BENCH__ON_REGRESSION="fail")
    r = run_nox(["bench"], e, "--", "--base", "HEAD~1", "--mode", mode, "--filter", "spin")
    output = r.stdout + r.stderr
    assert r.returncode == 1, output[-4000:]
    data = result(e)
    assert data["status"] == "failed"
    [finding] = [f for f in data["findings"] if f["check"] == "regressions"]
    name = "fixture/spin" if mode == "wall" else "instructions::fixture::spin::cost"
    m = re.match(rf"{re.escape(name)}: \+(\d+\.\d)% \(.+ → .+; 95% interval", finding["message"])
    assert m, finding["message"]
    assert 10.0 < float(m[1]) < 22.0
    assert finding["message"] in output  # the error line names it on the console too
    md = (tmp_path / "out" / "bench" / "bench.md").read_text()
    assert f"| {name} |" in md and "**regression**" in md
    assert_nothing_left(bench_repo, tmp_path / "base-worktree")


def test_warn_mode_says_review_required_and_stays_green(env, bench_repo: Path) -> None:
    commit_cost(bench_repo, 1.15)
    e = env()  # on_regression = "warn", the default
    r = run_invoke(["bench", "--base", "HEAD~1", "--mode", "instructions"], e)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    data = result(e)
    assert data["status"] == "passed"
    assert data["summary"].startswith("regressions: review required: 1 regression(s) over 10%")
    assert [f["severity"] for f in data["findings"]] == ["warning"]
    assert "review required" in r.stdout


def test_a_5_percent_slowdown_is_not_a_regression(env, bench_repo: Path) -> None:
    commit_cost(bench_repo, 1.05)
    e = env(CIPIPE_BENCH__ON_REGRESSION="fail")
    r = run_nox(["bench"], e, "--", "--base", "HEAD~1", "--mode", "instructions")
    assert r.returncode == 0, r.stdout[-3000:]
    [row] = comparison(e)["rows"]
    assert row["verdict"] == "within threshold"
    assert row["change"]["percent"] == pytest.approx(5.0, abs=0.2)


def test_latency_and_memory_targets_fail_with_the_numbers(env) -> None:
    e = env(
        CIPIPE_BENCH__LATENCY_TARGETS="fixture/spin < 1ns",
        CIPIPE_BENCH__MEMORY_LIMITS="fixture/spin < 1KiB",
    )
    r = run_nox(["bench"], e, "--", "--filter", "fixture/spin")
    assert r.returncode == 1, r.stdout[-3000:]
    messages = [f["message"] for f in result(e)["findings"] if f["check"] == "targets"]
    assert len(messages) == 2, messages
    assert re.match(r"fixture/spin: [\d.]+ µs exceeds its latency target 1 ns", messages[0])
    assert re.match(
        r"fixture/spin: peak RSS [\d.]+ MiB exceeds its memory limit 1 KiB", messages[1]
    )


def assert_one_line_error(r, expected: str) -> None:
    output = r.stdout + r.stderr
    assert r.returncode != 0, output
    assert "Traceback" not in output, output
    assert expected in output, output


def test_a_base_that_does_not_exist_is_one_line(env, bench_repo: Path, tmp_path: Path) -> None:
    e = env()
    r = run_nox(["bench"], e, "--", "--base", "no-such-branch")
    assert_one_line_error(r, "--base no-such-branch: no such commit in")
    assert result(e)["status"] == "error"
    assert_nothing_left(bench_repo, tmp_path / "base-worktree")


def test_a_path_in_the_way_is_left_untouched(env, bench_repo: Path, tmp_path: Path) -> None:
    in_the_way = tmp_path / "base-worktree"
    in_the_way.mkdir()
    (in_the_way / "notes.txt").write_text("mine")
    r = run_nox(["bench"], env(), "--", "--base", "HEAD")
    assert_one_line_error(r, f"the base worktree path {in_the_way} is in the way")
    assert (in_the_way / "notes.txt").read_text() == "mine"
    # our own leftover with uncommitted changes: refused, changes kept
    shutil.rmtree(in_the_way)
    git(bench_repo, "worktree", "add", "--detach", "-q", str(in_the_way), "HEAD")
    (in_the_way / "src" / "lib.rs").write_text("// edited\n")
    r = run_nox(["bench"], env(), "--", "--base", "HEAD")
    assert_one_line_error(r, "has uncommitted changes")
    assert (in_the_way / "src" / "lib.rs").read_text() == "// edited\n"


def test_bad_values_are_one_line(env) -> None:
    r = run_nox(["bench"], env(CIPIPE_BENCH__THRESHOLD="ten percent"))
    assert_one_line_error(r, "bench.threshold (or $CIPIPE_BENCH__THRESHOLD): expected a number")


def _bin_without(tmp_path: Path, *missing: str) -> str:
    """A PATH with git, cargo and python but without `missing` programs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "cargo", "rustc", "valgrind", "cc"):
        found = shutil.which(tool)
        if found and tool not in missing:
            (bin_dir / tool).symlink_to(found)
    return f"{bin_dir}:{Path(sys.executable).parent}"


def test_instruction_mode_without_valgrind_or_runner_is_one_line(env, tmp_path: Path) -> None:
    e = env(PATH=_bin_without(tmp_path, "valgrind"))
    r = run_nox(["bench"], e, "--", "--mode", "instructions")
    assert_one_line_error(r, "valgrind not found on PATH: install it (apt-get install valgrind)")
    shutil.rmtree(tmp_path / "bin")
    e = env(
        PATH=_bin_without(tmp_path),
        CIPIPE_INSTALL_TOOLS="false",
        CARGO_HOME=str(tmp_path / "no-tools"),
        RUSTUP_HOME=os.environ.get("RUSTUP_HOME", str(Path.home() / ".rustup")),
    )
    r = run_nox(["bench"], e, "--", "--mode", "instructions")
    assert_one_line_error(r, "gungraun-runner not found on PATH: the pipeline pins 0.20.0")


def scratch_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("cipipe-bench-scratch-*"))


def test_ctrl_c_during_a_base_run_leaves_nothing_behind(
    env, bench_repo: Path, tmp_path: Path
) -> None:
    commit_cost(bench_repo, 1.01)
    e = env(CIPIPE_BENCH__MEASUREMENT_TIME="2")
    out = Path(e["CIPIPE_OUTPUT_DIR"])
    before = scratch_dirs()
    running = set(processes_mentioning("cipipe-bench-scratch-"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nox",
            "-f",
            str(ROOT / "noxfile.py"),
            "-s",
            "bench",
            "--",
            "--base",
            "HEAD~1",
        ],
        cwd=ROOT,
        env=e,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        log = out / "bench.log"
        wait_for(
            lambda: log.is_file() and "--exact fixture/" in log.read_text(), 300, "a benchmark run"
        )
        assert (tmp_path / "base-worktree").is_dir()
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # nox runs this stage in its own process and ends a failed session with 1; the
    # stage's verdict (cancelled, torn down) is in its result.
    assert proc.returncode != 0, output
    assert "bench cancelled" in output and "torn down" in output
    assert "Traceback" not in output
    assert result(e)["status"] == "cancelled"
    assert_nothing_left(bench_repo, tmp_path / "base-worktree")
    assert scratch_dirs() <= before
    assert processes_mentioning(str(tmp_path)) == []  # git, cargo
    assert set(processes_mentioning("cipipe-bench-scratch-")) <= running  # benchmarks


def test_the_trend_chart_shows_several_recorded_runs(env, bench_repo: Path, tmp_path: Path) -> None:
    e = env(CIPIPE_BENCH__MEASUREMENT_TIME="0.1", CIPIPE_BENCH__WARM_UP="0.05")
    for factor in (1.0, 1.2, 1.4):
        if factor != 1.0:
            commit_cost(bench_repo, factor)
        r = run_nox(["bench"], e, "--", "--filter", "fixture/spin")
        assert r.returncode == 0, r.stdout[-3000:]
    r = run_invoke(["bench.history", "--branch", "main"], e)
    assert r.returncode == 0, r.stdout + r.stderr
    page = tmp_path / "out" / "bench" / "history.html"
    assert f"wrote {page}: 1 benchmark(s), up to 3 runs each" in r.stdout
    text = page.read_text()
    assert text.count('<circle class="point"') == 3
    commits = git(bench_repo, "log", "--format=%H").split()
    assert all(c[:12] in text for c in commits)
