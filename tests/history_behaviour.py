"""Behaviour of the history store, written once and run against every backend.

A test module imports these tests (`from history_behaviour import *`) and provides a
`backend` fixture: tests/unit/test_history.py with SQLite files,
tests/e2e/test_history_postgres.py with a real Postgres server.

The backend fixture offers:
  settings(place)                     Settings for an empty store called `place`
  create_raw(place, version, sql)     a store made by hand at an old schema version
  set_version(place, version)         stamp a store's schema version (newer-than-code)
  version(place)                      the schema version a store is at
  fingerprint(place)                  something that changes when the store is written
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ci.errors import HistoryError
from ci.history import (
    Deployment,
    HistoryStore,
    Machine,
    Measurement,
    RunInfo,
    open_store,
)
from ci.history.schema import LATEST

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SHA_A = "a" * 40
SHA_B = "b" * 40
BOX = Machine("m-box", "box (Xeon, 4 cores)")
OTHER_BOX = Machine("m-other", "other (Epyc, 2 cores)")


def run(
    kind: str = "bench",
    *,
    commit: str = SHA_A,
    branch: str = "main",
    minutes: float = 0,
    machine: Machine = BOX,
    meta: dict[str, Any] | None = None,
    dirty: bool = False,
    status: str = "passed",
) -> RunInfo:
    start = T0 + timedelta(minutes=minutes)
    return RunInfo(
        kind=kind,
        commit=commit,
        branch=branch,
        run_id="4242/1",
        machine=machine,
        started_at=start,
        finished_at=start + timedelta(seconds=42.5),
        status=status,
        tool_versions={"cargo": "1.88.0", "criterion": "0.5.1"},
        meta=meta if meta is not None else {"mode": "wall"},
        dirty=dirty,
    )


def wall(name: str, value: float, **extra: Any) -> Measurement:
    return Measurement("bench.wall", name, value, "ns", extra)


@contextmanager
def opened(backend: Any, place: str = "main") -> Iterator[HistoryStore]:
    with open_store(backend.settings(place)) as store:
        yield store


@pytest.fixture
def store(backend: Any) -> Iterator[HistoryStore]:
    with opened(backend) as s:
        yield s


# --- runs and measurements -------------------------------------------------------


def test_record_round_trip(store: HistoryStore) -> None:
    info = run(meta={"mode": "wall", "base": SHA_B, "n": 3})
    values = [
        wall("book/insert_deep", 57.1, low=56.9, high=57.4),
        Measurement("coverage.total", "lines", 83.25, "%"),
        Measurement("stage", "lint", 12, "s", {"status": "passed", "budget": 60}),
    ]
    rid = store.record(info, values)
    stored = store.get_run(rid)
    assert stored.id == rid
    assert stored.run == info
    assert stored.run.duration_s == 42.5
    assert stored.recorded_at.tzinfo is not None
    assert store.measurements(rid) == sorted(values, key=lambda m: (m.suite, m.name))
    assert store.measurements(rid, "stage") == [values[2]]
    assert isinstance(store.measurements(rid, "stage")[0].value, float)
    assert store.measurements(rid, "nothing") == []


def test_times_in_other_zones_are_stored_as_the_same_instant(store: HistoryStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    info = replace(run(), started_at=datetime(2024, 5, 1, 14, 0, tzinfo=plus_two))
    stored = store.get_run(store.record(info))
    assert stored.run.started_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert stored.run.started_at.utcoffset() == timedelta(0)


def test_unknown_run_is_a_history_error(store: HistoryStore) -> None:
    with pytest.raises(HistoryError, match="no run 'nope'"):
        store.measurements("nope")
    with pytest.raises(HistoryError, match="no run"):
        store.get_run("nope")


def test_duplicate_measurement_name_records_nothing(store: HistoryStore) -> None:
    with pytest.raises(HistoryError, match=r"bench.wall/x appears twice"):
        store.record(run(), [wall("x", 1), wall("x", 2)])
    assert store.runs() == []


def test_latest_is_the_newest_match_of_every_filter(store: HistoryStore) -> None:
    old = store.record(run(minutes=0))
    new = store.record(run(minutes=10))
    store.record(run(minutes=20, commit=SHA_B))
    store.record(run(minutes=30, branch="feature"))
    store.record(run(minutes=40, machine=OTHER_BOX))
    store.record(run(minutes=50, meta={"mode": "instructions"}))
    store.record(run("coverage", minutes=60))
    latest = store.latest(
        "bench", commit=SHA_A, branch="main", machine=BOX.id, meta={"mode": "wall"}
    )
    assert latest is not None and latest.id == new
    assert store.latest("bench").run.started_at == T0 + timedelta(minutes=50)
    assert store.latest("bench", meta={"mode": "instructions"}).run.meta["mode"] == "instructions"
    assert store.latest("bench", branch="feature").run.branch == "feature"
    assert store.latest("release") is None
    assert store.latest("bench", commit="c" * 40) is None
    assert old != new


def test_latest_meta_filter_is_exact_and_typed(store: HistoryStore) -> None:
    store.record(run(meta={"mode": "wall", "n": 1}))
    assert store.latest("bench", meta={"n": 1}) is not None
    assert store.latest("bench", meta={"n": "1"}) is None
    assert store.latest("bench", meta={"mode": "wall", "n": 1}) is not None
    assert store.latest("bench", meta={"mode": "wall", "n": 2}) is None
    assert store.latest("bench", meta={"missing": None}) is None


def test_latest_by_status(store: HistoryStore) -> None:
    store.record(run("ci", minutes=0, status="passed"))
    store.record(run("ci", minutes=5, status="failed"))
    assert store.latest("ci").run.status == "failed"
    assert store.latest("ci", status="passed").run.started_at == T0


def test_baseline_for_a_base_commit(store: HistoryStore) -> None:
    store.record(run(minutes=0), [wall("a", 10.0), wall("b", 20.0)])
    chosen = store.record(run(minutes=5), [wall("a", 11.0), wall("b", 21.0)])
    # Later runs at the same commit that must not be the baseline:
    store.record(run(minutes=6, dirty=True), [wall("a", 99.0)])  # uncommitted changes
    store.record(
        run(minutes=7, meta={"mode": "instructions"}),
        [Measurement("bench.instructions", "a", 1234, "instr")],
    )  # another suite
    store.record(run(minutes=8, machine=OTHER_BOX), [wall("a", 50.0)])  # another machine
    store.record(run(minutes=9, commit=SHA_B), [wall("a", 12.0)])  # another commit
    base = store.baseline("bench", "bench.wall", SHA_A, machine=BOX.id)
    assert base is not None
    assert base.run.id == chosen
    assert base.run.run.commit == SHA_A
    assert {m.name: m.value for m in base.measurements} == {"a": 11.0, "b": 21.0}
    assert base.get("b") == wall("b", 21.0)
    assert base.get("zzz") is None
    anywhere = store.baseline("bench", "bench.wall", SHA_A)
    assert anywhere is not None and anywhere.get("a").value == 50.0
    instr = store.baseline("bench", "bench.instructions", SHA_A)
    assert instr is not None and instr.get("a").value == 1234
    assert store.baseline("bench", "bench.wall", "c" * 40) is None
    assert store.baseline("coverage", "bench.wall", SHA_A) is None


def test_series_on_main_oldest_first_with_filters(store: HistoryStore) -> None:
    for i in range(5):
        store.record(run(minutes=i, commit=f"{i:040x}"), [wall("x", 100.0 + i, low=99.0)])
    store.record(run(minutes=2.5, branch="feature"), [wall("x", 999.0)])
    store.record(run(minutes=3.5, machine=OTHER_BOX), [wall("x", 500.0)])
    store.record(run(minutes=4.5, dirty=True), [wall("x", 777.0)])
    store.record(run(minutes=6), [wall("y", 1.0)])  # another benchmark
    points = store.series("bench.wall", "x", machine=BOX.id)
    assert [p.value for p in points] == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert [p.commit for p in points] == [f"{i:040x}" for i in range(5)]
    assert points[0].time == T0 and points[0].extra == {"low": 99.0}
    assert all(p.machine == BOX.id for p in points)
    assert store.get_run(points[-1].run_id).run.commit == f"{4:040x}"
    assert [p.value for p in store.series("bench.wall", "x")] == [
        100.0,
        101.0,
        102.0,
        103.0,
        500.0,
        104.0,
    ]
    assert [p.value for p in store.series("bench.wall", "x", limit=2, machine=BOX.id)] == [
        103.0,
        104.0,
    ]
    assert [p.value for p in store.series("bench.wall", "x", branch="feature")] == [999.0]
    assert len(store.series("bench.wall", "x", branch=None)) == 7
    assert store.series("bench.wall", "nothing") == []


def test_runs_by_kind_time_and_branch(store: HistoryStore) -> None:
    for i in range(6):
        store.record(run("ci" if i % 2 else "bench", minutes=i, branch="main" if i < 4 else "pr"))
    assert [r.run.started_at for r in store.runs()] == [T0 + timedelta(minutes=i) for i in range(6)]
    assert [r.run.kind for r in store.runs("ci")] == ["ci"] * 3
    assert len(store.runs(since=T0 + timedelta(minutes=4))) == 2
    assert len(store.runs(branch="pr")) == 2
    latest_two = store.runs(limit=2)
    assert [r.run.started_at for r in latest_two] == [T0 + timedelta(minutes=i) for i in (4, 5)]


class _Interrupt(KeyboardInterrupt):
    pass


class _BreakingTx:
    """Passes statements through, then fails on the bulk insert (a crash mid-record)."""

    def __init__(self, tx: Any) -> None:
        self._tx = tx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def executemany(self, sql: str, rows: Any) -> None:
        raise _Interrupt()


def test_an_interrupted_record_leaves_nothing(store: Any) -> None:
    store.record(run(minutes=0), [wall("kept", 1.0)])
    real = store._db

    class Breaking:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        @contextmanager
        def transaction(self, *, write: bool) -> Iterator[Any]:
            with real.transaction(write=write) as tx:
                yield _BreakingTx(tx)

    store._db = Breaking()
    with pytest.raises(_Interrupt):
        store.record(run(minutes=1), [wall("lost", 2.0)])
    store._db = real
    assert [r.run.started_at for r in store.runs()] == [T0]
    assert store.series("bench.wall", "lost") == []


# --- concurrency -------------------------------------------------------------------


def _in_threads(count: int, work: Any) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def body(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(i)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def test_concurrent_writers_lose_nothing(backend: Any) -> None:
    def writer(i: int) -> None:
        with opened(backend) as s:
            for n in range(15):
                s.record(run(minutes=n, commit=f"{i}" * 40), [wall(f"w{i}", n), wall("n", n)])

    with opened(backend):
        pass  # created first; the next test races creation itself
    _in_threads(4, writer)
    with opened(backend) as s:
        assert len(s.runs()) == 60
        assert len(s.series("bench.wall", "n", limit=1000)) == 60
        for i in range(4):
            assert [p.value for p in s.series("bench.wall", f"w{i}")] == [
                float(n) for n in range(15)
            ]


def test_concurrent_first_opens_migrate_once(backend: Any) -> None:
    ids: list[str] = []

    def first_open(i: int) -> None:
        with opened(backend, "fresh") as s:
            ids.append(s.record(run(minutes=i)))

    _in_threads(4, first_open)
    with opened(backend, "fresh") as s:
        assert sorted(r.id for r in s.runs()) == sorted(ids)
    assert backend.version("fresh") == LATEST


def test_racing_finishers_of_one_deployment_let_exactly_one_win(backend: Any) -> None:
    with opened(backend) as s:
        dep = s.start_deployment("production", "1.0", "sha256:1", trigger="push", at=T0)
    won: list[int] = []
    lost: list[str] = []

    def finish(i: int) -> None:
        with opened(backend) as s:
            try:
                s.finish_deployment(dep, "succeeded", details={"by": i})
                won.append(i)
            except HistoryError as err:
                lost.append(str(err))

    _in_threads(6, finish)
    assert len(won) == 1, won
    assert (
        lost
        == [
            f"deployment {dep}: cannot go from succeeded to succeeded (allowed: "
            "failed, rolled_back)"
        ]
        * 5
    )
    with opened(backend) as s:
        assert s.deployment(dep).details == {"by": won[0]}


# --- export / import ------------------------------------------------------------------


def _fill(store: HistoryStore) -> None:
    store.record(run(minutes=0, meta={"mode": "wall"}), [wall("a", 1.5, low=1.4), wall("b", 2)])
    store.record(
        run("coverage", minutes=1, meta={}), [Measurement("coverage.total", "lines", 81.0, "%")]
    )
    store.record(run("ci", minutes=2, dirty=True, status="failed"))
    dep = store.start_deployment(
        "production",
        "1.2.0",
        "sha256:" + "e" * 64,
        trigger="push",
        from_version="1.1.0",
        details={"strategy": "blue-green"},
        at=T0,
    )
    store.finish_deployment(dep, "rolled_back", at=T0 + timedelta(minutes=3))
    store.mark_recovered(dep, T0 + timedelta(minutes=5))
    store.start_deployment("staging", "1.3.0", "sha256:" + "f" * 64, trigger="manual", at=T0)


def _contents(store: HistoryStore) -> tuple[Any, ...]:
    runs = store.runs()
    return (
        runs,
        {r.id: store.measurements(r.id) for r in runs},
        store.deployments(),
        store.latest("bench", meta={"mode": "wall"}),
    )


def test_export_then_import_into_an_empty_store_is_equal(backend: Any, store: HistoryStore) -> None:
    _fill(store)
    buf = io.StringIO()
    stats = store.export(buf)
    assert (stats.runs, stats.measurements, stats.deployments) == (3, 3, 2)
    with opened(backend, "copy") as copy:
        first = copy.import_(io.StringIO(buf.getvalue()), source="h.jsonl")
        assert (first.runs_added, first.deployments_added) == (3, 2)
        assert _contents(copy) == _contents(store)
        again = copy.import_(io.StringIO(buf.getvalue()))
        assert not again.changed
        assert (again.runs_present, again.deployments_present) == (3, 2)
        assert _contents(copy) == _contents(store)
        second = io.StringIO()
        copy.export(second)
    # Byte-identical apart from the header's export time.
    assert second.getvalue().splitlines()[1:] == buf.getvalue().splitlines()[1:]


def test_import_merges_and_brings_deployments_up_to_date(backend: Any, store: HistoryStore) -> None:
    dep = store.start_deployment("production", "2.0.0", "sha256:" + "1" * 64, trigger="push", at=T0)
    early = io.StringIO()
    store.export(early)
    store.finish_deployment(dep, "failed", at=T0 + timedelta(minutes=1), details={"why": "5xx"})
    store.mark_recovered(dep, T0 + timedelta(minutes=4))
    store.record(run(minutes=9), [wall("a", 1)])
    late = io.StringIO()
    store.export(late)
    with opened(backend, "copy") as copy:
        copy.record(run("ci", minutes=30))  # the copy's own history stays
        copy.import_(io.StringIO(early.getvalue()))
        assert copy.deployment(dep).outcome == "in_progress"
        stats = copy.import_(io.StringIO(late.getvalue()))
        assert (stats.runs_added, stats.deployments_updated) == (1, 1)
        assert copy.deployment(dep) == store.deployment(dep)
        assert len(copy.runs()) == 2
        # An older export never rolls a deployment back to an earlier state.
        assert not copy.import_(io.StringIO(early.getvalue())).changed
        assert copy.deployment(dep) == store.deployment(dep)


def test_a_bad_line_imports_nothing(backend: Any, store: HistoryStore) -> None:
    store.record(run(), [wall("a", 1)])
    buf = io.StringIO()
    store.export(buf)
    broken = buf.getvalue() + '{"type": "run", "id": "x"}\n'
    with opened(backend, "copy") as copy:
        with pytest.raises(
            HistoryError, match=r"^h\.jsonl:3: malformed record .*nothing was imported$"
        ):
            copy.import_(io.StringIO(broken), source="h.jsonl")
        assert copy.runs() == []
        with pytest.raises(HistoryError, match="not a history export"):
            copy.import_(io.StringIO('{"hello": 1}\n'), source="x")
        with pytest.raises(HistoryError, match="newer than this pipeline reads"):
            copy.import_(io.StringIO('{"format": "cipipe-history", "version": 99}\n'))
        with pytest.raises(HistoryError, match="empty file"):
            copy.import_(io.StringIO(""))
        unknown = buf.getvalue().replace('"status":"passed"', '"status":"passed","later":1')
        with pytest.raises(HistoryError, match="unknown fields later"):
            copy.import_(io.StringIO(unknown))
        assert copy.runs() == []


def _mutated(line: str, change: Any) -> str:
    record = json.loads(line)
    change(record)
    return json.dumps(record)


def _set(field: str, value: Any) -> Any:
    return lambda r: r.__setitem__(field, value)


def _set_measurement(field: str, value: Any) -> Any:
    return lambda r: r["measurements"][0].__setitem__(field, value)


@pytest.mark.parametrize(
    ("kind", "change", "why"),
    [
        ("run", _set("dirty", "false"), 'dirty must be true or false, not a string "false"'),
        ("run", _set("dirty", 0), "dirty must be true or false, not a number 0"),
        ("run", _set("meta", [["mode", "wall"]]), "meta must be an object, not a list"),
        ("run", _set("tool_versions", {"cargo": 1}), "tool_versions.cargo must be a string"),
        ("run", _set("commit", 7), "commit must be a string, not a number"),
        ("run", _set("machine", "box"), "machine must be an object, not a string"),
        ("run", _set("measurements", {}), "measurements must be a list, not an object"),
        ("run", _set("started_at", 1714564800), "started_at must be a string, not a number"),
        ("run", _set_measurement("value", "57.1"), "measurements[1].value must be a number"),
        ("run", _set_measurement("value", True), "measurements[1].value must be a number"),
        ("run", _set_measurement("unit", 5), "measurements[1].unit must be a string"),
        ("run", _set_measurement("suite", None), "measurements[1].suite must be a string"),
        ("run", _set_measurement("extra", [["low", 1]]), "measurements[1].extra must be an obj"),
        ("deployment", _set("environment", 1), "environment must be a string, not a number"),
        ("deployment", _set("details", [["why", "x"]]), "details must be an object, not a list"),
        ("deployment", _set("from_version", 1.0), "from_version must be a string"),
    ],
)
def test_every_field_is_read_by_its_json_type(
    backend: Any, store: HistoryStore, kind: str, change: Any, why: str
) -> None:
    """A field of the wrong JSON type is refused, naming the field; nothing is imported
    (bool("false") would have recorded a clean run as dirty)."""
    store.record(run(), [wall("a", 1)])
    store.start_deployment("production", "1.0.0", "sha256:aa", trigger="push", at=T0)
    buf = io.StringIO()
    store.export(buf)
    lines = buf.getvalue().splitlines()
    n = next(i for i, line in enumerate(lines) if json.loads(line).get("type") == kind)
    lines[n] = _mutated(lines[n], change)
    with opened(backend, "copy") as copy:
        with pytest.raises(HistoryError) as err:
            copy.import_(io.StringIO("\n".join(lines) + "\n"), source="h.jsonl")
        assert f"h.jsonl:{n + 1}: malformed record ({why}" in str(err.value)
        assert copy.runs() == [] and copy.deployments() == []


# --- deployments -------------------------------------------------------------------------


def test_deployment_lifecycle_and_recovery(store: HistoryStore) -> None:
    ok = store.start_deployment("production", "1.0.0", "sha256:aa", trigger="push", at=T0)
    bad = store.start_deployment(
        "production",
        "1.1.0",
        "sha256:bb",
        trigger="push",
        from_version="1.0.0",
        at=T0 + timedelta(hours=1),
        details={"canary": 10},
    )
    back = store.start_deployment(
        "production",
        "1.0.0",
        "sha256:aa",
        trigger="rollback",
        from_version="1.1.0",
        at=T0 + timedelta(hours=1, minutes=6),
        id="rollback-1",
    )
    stage = store.start_deployment("staging", "1.1.0", "sha256:bb", trigger="push", at=T0)
    assert back == "rollback-1"
    assert store.deployment(ok).outcome == "in_progress"
    assert store.finish_deployment(ok, "succeeded", at=T0 + timedelta(minutes=3)).ended_at == (
        T0 + timedelta(minutes=3)
    )
    failed = store.finish_deployment(
        bad, "rolled_back", at=T0 + timedelta(hours=1, minutes=5), details={"reason": "p99"}
    )
    assert failed.failed and failed.details == {"canary": 10, "reason": "p99"}
    store.finish_deployment(back, "succeeded", at=T0 + timedelta(hours=1, minutes=8))
    recovered = store.mark_recovered(bad, T0 + timedelta(hours=1, minutes=8))
    assert recovered.time_to_restore == timedelta(minutes=3)
    assert store.deployment(bad) == recovered

    prod = store.deployments("production")
    assert [d.id for d in prod] == [ok, bad, back]
    assert [d.outcome for d in prod] == ["succeeded", "rolled_back", "succeeded"]
    assert [d.id for d in store.deployments(since=T0 + timedelta(minutes=30))] == [bad, back]
    assert {d.id for d in store.deployments()} == {ok, bad, back, stage}
    failures = [d for d in prod if d.failed]
    assert len(failures) / len(prod) == pytest.approx(1 / 3)  # change failure rate
    assert store.deployments("nowhere") == []


def test_deployment_rules(store: HistoryStore) -> None:
    dep = store.start_deployment("production", "1.0.0", "sha256:aa", trigger="push", at=T0)
    with pytest.raises(HistoryError, match="already recorded"):
        store.start_deployment("production", "1.0.0", "sha256:aa", trigger="push", id=dep)
    with pytest.raises(HistoryError, match="only a failed or rolled-back"):
        store.mark_recovered(dep, T0)
    with pytest.raises(HistoryError, match="cannot go from in_progress to in_progress"):
        store.finish_deployment(dep, "in_progress")
    with pytest.raises(HistoryError, match="before its start"):
        store.finish_deployment(dep, "succeeded", at=T0 - timedelta(minutes=1))
    done = store.finish_deployment(dep, "succeeded", at=T0 + timedelta(minutes=2))
    # Found bad later: rolled back, but it had been live since it finished.
    later = store.finish_deployment(dep, "rolled_back", at=T0 + timedelta(hours=5))
    assert later.ended_at == done.ended_at and later.outcome == "rolled_back"
    with pytest.raises(HistoryError, match="cannot go from rolled_back to succeeded"):
        store.finish_deployment(dep, "succeeded")
    with pytest.raises(HistoryError, match="before it ended"):
        store.mark_recovered(dep, T0)
    store.mark_recovered(dep, T0 + timedelta(hours=6))
    with pytest.raises(HistoryError, match="already marked recovered"):
        store.mark_recovered(dep, T0 + timedelta(hours=7))
    with pytest.raises(HistoryError, match="no deployment 'nope'"):
        store.finish_deployment("nope", "failed")
    assert store.deployment(dep).time_to_restore == timedelta(hours=6, minutes=-2)


# --- schema versions ------------------------------------------------------------------------

# The schema as version 1 shipped it (frozen here on purpose: the migration must read
# what old stores really contain, not what the code now thinks version 1 was).
V1_SCHEMA = (
    """CREATE TABLE runs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, commit_sha TEXT NOT NULL,
    branch TEXT NOT NULL, ci_run_id TEXT NOT NULL, machine_id TEXT NOT NULL,
    machine_label TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,
    status TEXT NOT NULL, dirty INTEGER NOT NULL DEFAULT 0, tool_versions TEXT NOT NULL,
    meta TEXT NOT NULL, recorded_at TEXT NOT NULL)""",
    """CREATE TABLE measurements (run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    suite TEXT NOT NULL, name TEXT NOT NULL, value DOUBLE PRECISION NOT NULL,
    unit TEXT NOT NULL, extra TEXT NOT NULL, PRIMARY KEY (run_id, suite, name))""",
    """CREATE TABLE deployments (id TEXT PRIMARY KEY, environment TEXT NOT NULL,
    version TEXT NOT NULL, digest TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT,
    outcome TEXT NOT NULL, triggered_by TEXT NOT NULL, from_version TEXT,
    details TEXT NOT NULL)""",
    """INSERT INTO runs VALUES ('old-run', 'bench', '"""
    + SHA_A
    + """', 'main', '7/1', 'm-box',
    'box', '2024-01-01T00:00:00.000000Z', '2024-01-01T00:01:00.000000Z', 'passed', 0,
    '{"cargo":"1.80.0"}', '{"base":"x","mode":"wall"}', '2024-01-01T00:01:01.000000Z')""",
    """INSERT INTO measurements VALUES ('old-run', 'bench.wall', 'book/insert', 61.5, 'ns',
    '{"low":61.0}')""",
    """INSERT INTO deployments VALUES ('old-dep', 'production', '0.9.0', 'sha256:00',
    '2024-01-02T00:00:00.000000Z', '2024-01-02T00:05:00.000000Z', 'failed', 'push', NULL,
    '{}')""",
)


def test_a_version_1_store_is_migrated_in_place(backend: Any) -> None:
    backend.create_raw("old", 1, V1_SCHEMA)
    with opened(backend, "old") as s:
        old = s.latest("bench", meta={"mode": "wall"})  # needs the v3 backfill
        assert old is not None and old.id == "old-run"
        assert old.run.tool_versions == {"cargo": "1.80.0"}
        base = s.baseline("bench", "bench.wall", SHA_A)
        assert base is not None and base.get("book/insert") == wall("book/insert", 61.5, low=61.0)
        dep = s.deployment("old-dep")
        assert dep.outcome == "failed" and dep.recovered_at is None
        s.mark_recovered("old-dep", datetime(2024, 1, 2, 0, 9, tzinfo=UTC))
        s.record(run(minutes=1), [wall("book/insert", 60.0)])
        assert [p.value for p in s.series("bench.wall", "book/insert")] == [61.5, 60.0]
    assert backend.version("old") == LATEST
    with opened(backend, "old") as s:  # reopening an up-to-date store changes nothing
        assert s.deployment("old-dep").time_to_restore == timedelta(minutes=4)


def test_a_schema_newer_than_the_code_is_refused_untouched(backend: Any) -> None:
    with opened(backend, "future") as s:
        s.record(run())
    backend.set_version("future", LATEST + 1)
    before = backend.fingerprint("future")
    with pytest.raises(HistoryError) as err, opened(backend, "future"):
        pass
    message = str(err.value)
    assert "\n" not in message
    assert f"schema version {LATEST + 1}, newer than this pipeline knows ({LATEST})" in message
    assert "update the pipeline" in message
    assert backend.fingerprint("future") == before


def test_records_reject_values_the_store_could_not_round_trip() -> None:
    with pytest.raises(ValueError, match="has no timezone"):
        replace(run(), started_at=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="not finite"):
        wall("x", float("nan"))
    with pytest.raises(TypeError, match="must be a number"):
        wall("x", True)
    with pytest.raises(ValueError, match="outcome"):
        Deployment("d", "prod", "1", "sha", T0, None, "exploded", "push")
    with pytest.raises(ValueError, match="needs a kind"):
        replace(run(), kind="")
