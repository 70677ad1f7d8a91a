"""`invoke history.*` as a user (and a CI workflow) runs them: history carried between
fresh runners by export/import, clear one-line failures, the Postgres URL never
printed, and separate processes writing one SQLite file at once."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import ROOT, run_invoke

from ci import settings
from ci.history import open_store
from ci.services import provision

# A stage recording a run, as bench/coverage/ci will: context from the environment.
RECORD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from ci import settings
    from ci.history import GitState, Measurement, current_context, open_store
    cfg = settings.load(Path({root!r}))
    for i in range(int(sys.argv[2])):
        info = current_context(cfg, "bench", meta={{"mode": "wall"}},
                               git=GitState(sys.argv[1] * 40, "main", False))
        with open_store(cfg) as store:
            store.record(info.finished("passed"),
                         [Measurement("bench.wall", "book/insert", 50.0 + i, "ns")])
    """
)


def env_for(store: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIPIPE_", "GITHUB_"))}
    env["CIPIPE_HISTORY__PATH"] = str(store)
    env.update(extra)
    return env


def record(env: dict[str, str], commit_char: str, count: int = 1) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", RECORD.format(root=str(ROOT)), commit_char, str(count)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> None:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err


def test_history_survives_fresh_runners_through_export_and_import(tmp_path: Path) -> None:
    artifact = tmp_path / "cache" / "history.jsonl"
    # First run ever: nothing to restore yet.
    runner1 = env_for(tmp_path / "runner1" / "history.sqlite3", GITHUB_RUN_ID="100")
    first = run_invoke(["history.import", "--path", str(artifact), "--missing-ok"], runner1)
    assert first.returncode == 0 and "nothing imported" in first.stdout
    finish(record(runner1, "a"))
    exported = run_invoke(["history.export", "--out", str(artifact)], runner1)
    assert exported.returncode == 0, exported.stderr
    assert "exported 1 runs (1 measurements)" in exported.stdout

    # Next run, a fresh machine: restore, record, save again.
    runner2 = env_for(tmp_path / "runner2" / "history.sqlite3", GITHUB_RUN_ID="101")
    restored = run_invoke(["history.import", "--path", str(artifact)], runner2)
    assert restored.returncode == 0 and "imported 1 runs (0 already present)" in restored.stdout
    finish(record(runner2, "b"))
    assert run_invoke(["history.export", "--out", str(artifact)], runner2).returncode == 0
    lines = artifact.read_text().splitlines()
    assert [json.loads(line)["run_id"] for line in lines[1:]] == ["100", "101"]

    # A third runner sees both; the baseline for commit a is the first runner's run.
    runner3 = env_for(tmp_path / "runner3" / "history.sqlite3")
    assert run_invoke(["history.import", "--path", str(artifact)], runner3).returncode == 0
    again = run_invoke(["history.import", "--path", str(artifact)], runner3)
    assert "imported 0 runs (2 already present)" in again.stdout
    shown = run_invoke(["history.show", "--kind", "bench"], runner3)
    assert shown.returncode == 0, shown.stderr
    rows = shown.stdout.splitlines()[3:]
    assert len(rows) == 2 and "a" * 12 in rows[0] and "b" * 12 in rows[1]


def test_failures_are_one_line_with_their_exit_code(tmp_path: Path) -> None:
    store = tmp_path / "history.sqlite3"
    # File arguments are options: `--help` after the task is help, never a file name.
    for task, flag in (("history.export", "--out"), ("history.import", "--path")):
        unset = run_invoke([task], env_for(store))
        assert unset.returncode == 2 and unset.stderr.strip() == f"error: {flag} FILE is required"
        swallowed = run_invoke([task, flag, "--help"], env_for(store))
        assert swallowed.returncode == 2 and "not an option" in swallowed.stderr
        assert not (Path.cwd() / "--help").exists()
    missing = run_invoke(["history.import", "--path", str(tmp_path / "nope.jsonl")], env_for(store))
    assert missing.returncode == 7
    assert missing.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope.jsonl'}: no such history export (--missing-ok on a first run)"
    ]
    store.write_bytes(b"\x00garbage, not sqlite" * 100)
    shown = run_invoke(["history.show"], env_for(store))
    assert shown.returncode == 7
    assert len(shown.stderr.strip().splitlines()) == 1 and "Traceback" not in shown.stderr
    assert "is not an SQLite database" in shown.stderr
    assert store.read_bytes() == b"\x00garbage, not sqlite" * 100


def test_the_postgres_url_is_never_printed(tmp_path: Path) -> None:
    cfg = settings.load(ROOT, {"CIPIPE_SERVICES__BACKEND": "local"})
    with provision(cfg, ["postgres"]) as services:
        port = services["postgres"].port
        [password] = services["postgres"].secrets  # generated per run: password auth
        url = f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"
        env = env_for(tmp_path / "unused.sqlite3", CIPIPE_HISTORY__URL=url)
        finish(record(env, "c"))
        outputs = [
            run_invoke(["history.show"], env),
            run_invoke(["history.export", "--out", str(tmp_path / "pg.jsonl")], env),
            run_invoke(
                ["history.show"], {**env, "CIPIPE_HISTORY__URL": url.replace(str(port), "1")}
            ),
        ]
    assert [o.returncode for o in outputs] == [0, 0, 7]
    assert "postgresql://postgres:***@127.0.0.1" in outputs[0].stdout
    assert "c" * 12 in outputs[0].stdout
    for out in outputs:
        assert password not in out.stdout + out.stderr
    assert password not in (tmp_path / "pg.jsonl").read_text()
    assert not (tmp_path / "unused.sqlite3").exists()


def test_two_processes_writing_one_file_lose_nothing(tmp_path: Path) -> None:
    env = env_for(tmp_path / "shared.sqlite3")
    procs = [record(env, "d", 40), record(env, "e", 40)]
    for proc in procs:
        finish(proc)
    shown = run_invoke(["history.show", "--limit", "1000"], env)
    rows = shown.stdout.splitlines()[3:]
    assert len(rows) == 80
    assert sum("d" * 12 in r for r in rows) == 40 and sum("e" * 12 in r for r in rows) == 40


KEEP_RECORDING = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from ci import settings
    from ci.history import GitState, Measurement, current_context, open_store
    cfg = settings.load(Path({root!r}))
    with open_store(cfg) as store:
        i = 0
        while True:
            info = current_context(cfg, "bench", git=GitState("f" * 40, "main", False))
            values = [Measurement("bench.wall", f"case{{n}}", n + i, "ns") for n in range(50)]
            print(store.record(info.finished("passed"), values), flush=True)
            i += 1
    """
)


def test_a_killed_writer_loses_nothing_it_recorded(tmp_path: Path) -> None:
    env = env_for(tmp_path / "history.sqlite3")
    proc = subprocess.Popen(
        [sys.executable, "-c", KEEP_RECORDING.format(root=str(ROOT))],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    recorded = [proc.stdout.readline().strip() for _ in range(30)]
    proc.kill()  # SIGKILL, most likely in the middle of the next transaction
    proc.wait(timeout=30)
    cfg = settings.load(ROOT, env)
    with open_store(cfg) as store:
        stored = {r.id for r in store.runs()}
        assert set(recorded) <= stored
        assert all(len(store.measurements(rid)) == 50 for rid in stored)
    conn = sqlite3.connect(tmp_path / "history.sqlite3")
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
