"""The stage result cache never lies: a green stage whose inputs are unchanged is
replayed (and says so); any change of an input makes it run again; a failure is never
replayed; concurrent runs share the cache; a corrupt entry is discarded, never trusted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FIXTURES, ROOT, git, run_invoke, run_nox


@pytest.fixture
def project(tmp_path: Path, fixture_env):
    """A copy of a fixture crate as its own git repository, with its own cache."""

    def make(fixture: str = "clean", **extra: str) -> tuple[Path, dict[str, str]]:
        ws = tmp_path / fixture.replace("/", "_")
        shutil.copytree(FIXTURES / fixture, ws, ignore=shutil.ignore_patterns("target"))
        shutil.copy(FIXTURES / "rustfmt.toml", ws / "rustfmt.toml")
        git(ws, "init", "-q")
        git(ws, "add", "-A")
        git(ws, "commit", "-qm", "fixture")
        env = fixture_env(
            fixture,
            CIPIPE_WORKSPACE=str(ws),
            CIPIPE_CACHE__DIR=str(tmp_path / "cache"),
            CIPIPE_CACHE__ENABLED="true",
            **extra,
        )
        return ws, env

    return make


def lint(env: dict[str, str], **extra: str) -> dict:
    r = run_nox(["lint"], {**env, **extra})
    data = json.loads((Path(env["CIPIPE_OUTPUT_DIR"]) / "lint.json").read_text())
    data["_output"] = r.stdout + r.stderr
    data["_code"] = r.returncode
    return data


def test_unchanged_inputs_replay_and_every_change_runs_again(project) -> None:
    ws, env = project()
    first = lint(env)
    assert first["status"] == "passed" and not first["cached"]
    again = lint(env)
    assert again["status"] == "passed" and again["cached"]["run_id"]
    assert "cached: replayed the green result" in again["_output"]

    # a tracked file
    lib = ws / "src" / "lib.rs"
    lib.write_text(lib.read_text() + "// a change that compiles and formats\n")
    changed = lint(env)
    assert not changed["cached"] and "cache: running (changed: workspace)" in changed["_output"]
    assert lint(env)["cached"]  # the new state is remembered

    # an untracked new test file is an input
    (ws / "tests" / "extra.rs").write_text("#[test]\nfn extra() {}\n")
    assert not lint(env)["cached"]
    assert lint(env)["cached"]

    # a Cargo.lock entry
    lock = ws / "Cargo.lock"
    lock.write_text(lock.read_text() + "\n")
    assert not lint(env)["cached"]

    # a setting lint reads (its hard limit), RUSTFLAGS; not a setting it does not read
    assert lint(env)["cached"]
    assert lint(env, CIPIPE_UNIT__RUNNER="nextest")["cached"]
    assert lint(env, CIPIPE_SECURITY__WARN_AGE_DAYS="3")["cached"]
    assert not lint(env, CIPIPE_TIMEOUTS__LINT="400")["cached"]
    assert lint(env)["cached"]
    assert not lint(env, RUSTFLAGS="-Cdebuginfo=0")["cached"]

    # --no-cache for invoke ci runs it anyway
    r = run_invoke(["ci", "--stages", "lint", "--no-cache"], env)
    assert r.returncode == 0, r.stdout
    data = json.loads((Path(env["CIPIPE_OUTPUT_DIR"]) / "lint.json").read_text())
    assert not data["cached"]


def test_a_failing_stage_is_never_replayed(project, tmp_path) -> None:
    _, env = project("fmt_fault")
    for _ in range(2):
        data = lint(env)
        assert data["status"] == "failed" and not data["cached"]
        assert "src/lib.rs:1: not formatted" in data["_output"]
        # the cache was consulted (a lookup that missed, and why), and nothing was stored
        assert "cache: running (no earlier green run recorded)" in data["_output"]
        assert not list((tmp_path / "cache").glob("lint/*/entry.json"))


def test_the_advisory_database_is_an_input_of_security(
    project, advisory_db: Path, tmp_path
) -> None:
    db = tmp_path / "db"
    shutil.copytree(advisory_db, db, symlinks=True)
    _, env = project(CIPIPE_SECURITY__ADVISORY_DB=str(db), CIPIPE_SECURITY__CHECKS="advisories")

    def security() -> dict:
        r = run_nox(["security"], env)
        assert r.returncode == 0, r.stdout[-2000:]
        return json.loads((Path(env["CIPIPE_OUTPUT_DIR"]) / "security.json").read_text())

    assert not security()["cached"]
    assert security()["cached"]
    [advisory] = (db / "crates").rglob("*.md")
    advisory.write_text(advisory.read_text() + "\nUpdated description.\n")
    git(db, "add", "-A")
    git(db, "commit", "-qm", "new advisories")
    assert not security()["cached"]


def test_concurrent_runs_share_the_cache_and_a_corrupt_entry_is_discarded(
    project, tmp_path
) -> None:
    _, env = project()
    cmd = [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), "-s", "lint"]
    outs = [dict(env, CIPIPE_OUTPUT_DIR=str(tmp_path / f"out{i}")) for i in range(2)]
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for e in outs
    ]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    assert lint(env)["cached"]
    # a lookup racing a save: another run stores the same entry again and again while
    # this one looks it up; it replays or runs, never takes the replacement for damage
    [meta] = (tmp_path / "cache").glob("lint/*/entry.json")
    saver = subprocess.Popen([sys.executable, "-c", RESAVE, str(meta)], cwd=ROOT)
    try:
        for _ in range(3):
            data = lint(env)
            assert data["status"] == "passed", data["_output"][-2000:]
            assert "discarded a damaged entry" not in data["_output"]
    finally:
        saver.kill()
        saver.wait()
    assert lint(env)["cached"]
    # damage every stored entry: it must be discarded with a warning and the stage run
    for meta in (tmp_path / "cache").glob("lint/*/entry.json"):
        meta.write_text("{ broken")
    data = lint(env)
    assert not data["cached"] and data["status"] == "passed"
    assert "cache: discarded a damaged entry for lint" in data["_output"]
    assert lint(env)["cached"]


# Saves the entry at argv[1] again and again for 60 s (what a concurrent run's save does).
RESAVE = """
import json, sys, time
from pathlib import Path
from ci.cache.store import CacheStore
meta = Path(sys.argv[1])
data = json.loads(meta.read_text())
files = {n: meta.parent / "files" / r for n, r in data["artifacts"].items()}
copies = Path(meta.parent.parent.parent / "resave")
copies.mkdir(exist_ok=True)
arts = {}
for name, src in files.items():
    (copies / src.name).write_bytes(src.read_bytes())
    arts[name] = copies / src.name
store = CacheStore(meta.parent.parent.parent)
end = time.time() + 60
while time.time() < end:
    store.save(data["stage"], data["key"], data["result"], data["inputs"], arts,
               run_id=data["run_id"], commit=data["commit"])
"""


def unit(env: dict[str, str]) -> dict:
    r = run_nox(["unit"], env)
    data = json.loads((Path(env["CIPIPE_OUTPUT_DIR"]) / "unit.json").read_text())
    data["_output"] = r.stdout + r.stderr
    return data


def test_only_affected_packages_are_tested(project) -> None:
    ws, env = project("two_packages")
    first = unit(env)
    assert first["status"] == "passed" and "tests: 2 passed" in first["summary"]
    # a change in the outer package: the inner one's tests are replayed, not run
    app = ws / "app" / "src" / "lib.rs"
    app.write_text(app.read_text() + "// changed\n")
    second = unit(env)
    assert "replayed (inputs unchanged): fixture-core" in second["_output"]
    assert "testing: fixture-app" in second["_output"]
    assert "tests: 2 passed" in second["summary"] and "1 replayed" in second["summary"]
    assert "fixture_core-" not in second["_output"].split("replayed (inputs unchanged)")[1]
    # a change in the inner package: both run (the outer one depends on it)
    core = ws / "core" / "src" / "lib.rs"
    core.write_text(core.read_text() + "// changed\n")
    third = unit(env)
    assert "testing: fixture-core, fixture-app" in third["_output"]
    assert "replayed" not in third["summary"]
    # a root file (the workspace manifest): every package runs
    root = ws / "Cargo.toml"
    root.write_text(root.read_text() + "# changed\n")
    fourth = unit(env)
    assert "testing: fixture-core, fixture-app" in fourth["_output"]


def test_tests_are_built_while_lint_runs_and_dropped_when_lint_fails(project) -> None:
    from .leftovers import processes_mentioning

    _, env = project("clean")
    r = run_invoke(["ci", "--stages", "lint,unit"], env)
    assert r.returncode == 0, r.stdout[-2000:]
    assert "prebuild: building the tests while lint runs" in r.stdout
    log = Path(env["CIPIPE_OUTPUT_DIR"]) / "prebuild.log"
    assert "Finished" in log.read_text() or "Executable" in log.read_text()
    _, bad = project("fmt_fault")
    r = run_invoke(["ci", "--stages", "lint,unit"], bad)
    assert r.returncode == 1
    assert processes_mentioning("--no-run --lib --bins --tests") == []  # stopped, not left
    # unit started beside lint: stopped with its build when lint failed, reported blocked
    assert processes_mentioning("json-render-diagnostics") == []
    unit_result = json.loads((Path(bad["CIPIPE_OUTPUT_DIR"]) / "unit.json").read_text())
    assert unit_result["status"] == "blocked"
    assert unit_result["summary"].startswith("not counted: needs lint failed"), unit_result


def test_bench_is_replayed_only_on_the_machine_and_base_commit_it_measured(
    tmp_path: Path,
) -> None:
    from ci.settings import load
    from ci.stages.bench import cache_inputs

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "a")
    env = {"CIPIPE_WORKSPACE": str(tmp_path)}
    plain = cache_inputs(load(tmp_path, env))
    assert plain is not None and plain["base"] == "" and len(plain["machine"]) == 12
    on_main = cache_inputs(load(tmp_path, {**env, "CIPIPE_BENCH__BASE": "main"}))
    assert on_main is not None and len(on_main["base"]) == 40
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "b")
    moved = cache_inputs(load(tmp_path, {**env, "CIPIPE_BENCH__BASE": "main"}))
    assert moved is not None and moved["base"] != on_main["base"]  # the base moved: re-measure
    other = cache_inputs(load(tmp_path, {**env, "CIPIPE_HISTORY__MACHINE": "runner-x"}))
    assert other is not None and other["machine"] == "runner-x" != plain["machine"]
    # a base that does not resolve is not cacheable: the stage runs and says why
    assert cache_inputs(load(tmp_path, {**env, "CIPIPE_BENCH__BASE": "no-such-ref"})) is None
